"""Builds the splits on Apache Beam, each worker writing whole shards.

`tfds build ... --beam_pipeline_options "runner=DirectRunner,direct_num_workers=2,
direct_running_mode=multi_processing"` (or Dataflow, Flink, Spark) comes here.

Why not TFDS's own Beam writer (`_generate_examples` returning a `PTransform`): its
`BeamWriter` sends every serialized example through the runner twice, once for the
shard boundaries (largest hash, total size, as side inputs) and once in a
`GroupByKey` per shard. A cluster's shuffle service carries that; the local
DirectRunner keeps all of it in the runner process. On the 20,000-image export of
`bench/build_scale.py` that took 11.9 GB and ran at 0.92x the plain build's speed.

Here only the items (what names each example's files) go through the runner. An
example's key is known from its item before anything is decoded (`source.key(item)`),
so the main process puts the items in the order TFDS's plain writer gives the records
(by the hash of the key, salted with the split's name) and cuts them into shards with
TFDS's `get_shard_boundaries`; each worker decodes the items of its shards, writes
each shard file itself (TFDS's serializer, through a temp name) and sends back its
length and size. Workers write TFRecords without TensorFlow (`write_tfrecord`), which
keeps each of them about 600 MB smaller. The records, their order and the split's size are
the plain build's. Only the number of shards is chosen before the sizes are known:
TFDS's rule (64 MiB to 1 GiB a shard) applied to the sizes of the files the items
name, and at least one shard per local worker so that every worker has work.

A local build (the DirectRunner, as `runner=DirectRunner` asks) runs on Beam's
FnApiRunner directly (`local_runner`): the DirectRunner would first try the Prism runner,
which it downloads from GitHub on every build and which leaves a `/tmp/beam-temp*`
folder. Its worker processes are marked and watched (`local_workers`): they die with the
build even when it is killed with SIGKILL, and their temporary files go to the build's
scratch folder, removed after it.

Example:

    with split_builder.maybe_beam_pipeline():
        finish = write_split(split_builder.beam_pipeline, read, source, "train", ...)
    split_info = finish()
"""

import collections
import contextlib
import dataclasses
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import typing

import google_crc32c
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core import example_serializer, hashing
from tensorflow_datasets.core.utils import py_utils, shard_utils

from full_semantic import beam_reaper
from semseg.base.errors import InputError

# File formats whose shards this module writes (their writer returns no record index).
FILE_FORMATS = ("tfrecord", "array_record")
_MAX_KEYS_SHOWN = 3
# `runner=` values that mean Beam's local DirectRunner (Beam reads them case-insensitively).
LOCAL_RUNNER_NAMES = ("directrunner", "direct", "switchingdirectrunner")


def item_bytes(item):
    """Total size of the files an item names: the `os.PathLike`s in it, in tuples,
    lists or dataclasses at any depth."""
    if isinstance(item, os.PathLike):
        local = os.fspath(item)
        return os.stat(local).st_size if "://" not in local else epath.Path(item).stat().length
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        values = [getattr(item, field.name) for field in dataclasses.fields(item)]
    elif isinstance(item, (tuple, list)):
        values = item
    else:
        return 0
    return sum(item_bytes(value) for value in values)


def _masked_crc(data):
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def write_tfrecord(path, records):
    """Writes the `records` (bytes) to the TFRecord file `path` (local or, through
    `epath`, on GCS), without TensorFlow.

    Each record is framed as TFRecord files are: its length (8 bytes, little-endian),
    the masked CRC-32C of those 8 bytes, the record, the masked CRC-32C of the record
    (https://www.tensorflow.org/tutorials/load_data/tfrecord#tfrecords_format_details).
    `tf.io.TFRecordWriter` would load TensorFlow into every Beam worker, about 600 MB of
    memory each; nothing else a worker does needs it.
    """
    with epath.Path(path).open("wb") as handle:
        for record in records:
            length = struct.pack("<Q", len(record))
            handle.write(length + _masked_crc(length) + record + _masked_crc(record))


def plan_shards(keyed_items, split, shard_config, min_shards=1):
    """The shards of a split: its `(key, item)` pairs in the plain build's record order.

    Args:
        keyed_items: list of `(key, item)`, the split's examples in source order.
        split: str, the split's name (the salt of the key hash, as in TFDS's `Writer`).
        shard_config: `tfds.core.utils.shard_utils.ShardConfig`, the shard sizes.
        min_shards: int, the fewest shards when there are that many examples.

    Returns:
        list of shards, each a list of `(key, item)`, none empty.

    Raises:
        InputError: when two examples of the split have the same key.
    """
    counts = collections.Counter(key for key, _ in keyed_items)
    repeated = [key for key, count in counts.items() if count > 1]
    if repeated:
        raise InputError(
            f"split {split!r}: {len(repeated)} key(s) name several examples "
            f"(first: {', '.join(map(str, repeated[:_MAX_KEYS_SHOWN]))}); "
            "each example needs its own file name."
        )
    hasher = hashing.Hasher(split)
    ordered = sorted(keyed_items, key=lambda pair: hasher.hash_key(pair[0]))
    estimated_size = sum(item_bytes(item) for _, item in keyed_items)
    num_shards = shard_config.get_number_shards(estimated_size, len(ordered))
    num_shards = min(max(num_shards, min_shards), len(ordered))
    bounds = shard_utils.get_shard_boundaries(len(ordered), num_shards)
    return [ordered[start:end] for start, end in zip([0, *bounds[:-1]], bounds)]


def write_shard(shard, read, features, template, num_shards, example_writer):
    """Decodes and writes one shard on a worker; `(index, examples, bytes)`.

    Args:
        shard: `(index, [(key, item), ...])`.
        read: callable `item -> (key, example)`.
        features: the builder's `tfds.features.FeaturesDict`.
        template: the split's `naming.ShardedFileTemplate`.
        num_shards: int, the split's number of shards (in the file names).
        example_writer: the builder's `ExampleWriter`.
    """
    index, keyed_items = shard
    serializer = example_serializer.ExampleSerializer(features.get_serialized_info())
    sizes = []

    def records():
        for key, item in keyed_items:
            read_key, example = read(item)
            if read_key != key:
                raise RuntimeError(f"read(item) gave key {read_key!r}; key(item) said {key!r}")
            record = serializer.serialize_example(features.encode_example(example))
            sizes.append(len(record))
            yield key, record

    path = epath.Path(template.sharded_filepath(shard_index=index, num_shards=num_shards))
    with py_utils.incomplete_files(path) as temp_path:
        if example_writer.file_format.value == "tfrecord":
            write_tfrecord(temp_path, (record for _, record in records()))
        else:
            example_writer.write(temp_path, records())
    return index, len(sizes), sum(sizes)


def _store_shard_infos(shard_infos, path):
    path.write_text(json.dumps(sorted(shard_infos)))


def write_split(pipeline, read, keyed_items, split, *, features, template, example_writer,
                shard_config, min_shards=1):  # fmt: skip
    """Adds the writing of one split to `pipeline`; returns what gives its `SplitInfo`.

    Args:
        pipeline: the `beam.Pipeline` (`SplitBuilder.beam_pipeline`).
        read: picklable callable `item -> (key, example)`, run on the workers.
        keyed_items: list of `(key, item)`, the split's examples in source order.
        split: str, the split's name.
        features, template, example_writer: as `write_shard` takes them.
        shard_config, min_shards: as `plan_shards` takes them.

    Returns:
        callable `() -> tfds.core.SplitInfo`, to call once the pipeline has run.
    """
    beam = tfds.core.lazy_imports.apache_beam
    if example_writer.file_format.value not in FILE_FORMATS:
        raise InputError(
            f"--file_format {example_writer.file_format.value}: the Beam build writes "
            f"{' or '.join(FILE_FORMATS)}."
        )
    shards = plan_shards(keyed_items, split, shard_config, min_shards)
    infos_path = epath.Path(f"{template.filepath_prefix()}.shard_infos.json")
    _ = (
        pipeline
        # Typed up front: Beam would otherwise infer the type of every item.
        | f"{split}/shards" >> beam.Create(list(enumerate(shards))).with_output_types(typing.Any)
        | f"{split}/read" >> beam.Map(
            write_shard,
            read=read,
            features=features,
            template=template,
            num_shards=len(shards),
            example_writer=example_writer,
        )
        | f"{split}/collect" >> beam.combiners.ToList()
        | f"{split}/store" >> beam.Map(_store_shard_infos, path=infos_path)
    )  # fmt: skip

    def finish():
        shard_infos = json.loads(infos_path.read_text())
        infos_path.unlink()
        if [index for index, _, _ in shard_infos] != list(range(len(shards))):
            raise RuntimeError(f"split {split!r}: shards missing from {shard_infos}")
        return tfds.core.SplitInfo(
            name=split,
            shard_lengths=[length for _, length, _ in shard_infos],
            num_bytes=sum(size for _, _, size in shard_infos),
            filename_template=template,
        )

    return finish


def is_local(beam_options, beam_runner=None):
    """Whether a build runs on Beam's local DirectRunner (the default runner)."""
    if beam_runner is not None:
        return False
    beam = tfds.core.lazy_imports.apache_beam
    runner = beam_options.view_as(beam.options.pipeline_options.StandardOptions).runner
    return runner is None or str(runner).lower() in LOCAL_RUNNER_NAMES


def local_runner(beam_options):
    """The runner of a local build: the FnApiRunner, which runs the DirectRunner's
    `direct_num_workers` and `direct_running_mode` options, made as the DirectRunner
    makes it once the Prism runner it tries first has failed offline."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(beam_options.get_all_options())
    provision = beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(provision))


@contextlib.contextmanager
def local_workers(folder):
    """Runs the block (a local pipeline) with its worker processes contained.

    The workers inherit a mark in their environment and `folder` as their `TMPDIR`; a
    watcher started beside the build (`beam_reaper.py`, in its own session) kills them
    and removes `folder` if the build dies, even by SIGKILL. After the block the watcher
    is stopped and any marked process left is killed; `folder` is the caller's.

    Args:
        folder: path-like, the build's private temporary folder (it must exist).
    """
    folder = str(folder)
    saved = {name: os.environ.get(name) for name in (beam_reaper.MARKER, "TMPDIR")}
    saved_tempdir = tempfile.tempdir
    watcher = subprocess.Popen(
        [sys.executable, beam_reaper.__file__, str(os.getpid()), folder],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.environ.update({beam_reaper.MARKER: folder, "TMPDIR": folder})
    tempfile.tempdir = folder
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        tempfile.tempdir = saved_tempdir
        watcher.send_signal(signal.SIGTERM)
        watcher.wait()
        beam_reaper.kill_marked(folder)


def local_workers_count(beam_options):
    """The DirectRunner's `direct_num_workers` (0: one per core; 1 unless given)."""
    if beam_options is None:
        return 1
    beam = tfds.core.lazy_imports.apache_beam
    workers = beam_options.view_as(beam.options.pipeline_options.DirectOptions).direct_num_workers
    return workers or os.cpu_count() or 1
