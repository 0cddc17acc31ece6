"""`full_semantic` on Apache Beam: the same dataset as the plain build, for every source.

The Beam builds run on the DirectRunner with 2 worker processes, as
`tfds build --beam_pipeline_options "runner=DirectRunner,direct_num_workers=2,
direct_running_mode=multi_processing"` does.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from commands import ROOT, run
from cvat_fixtures import write_cvat_export
from source_fixtures import examples_by_name, write_original
from tensorflow_datasets.core import hashing
from tensorflow_datasets.core.utils.shard_utils import ShardConfig
from test_cvat_xml_source import scene_shapes, write_export

from full_semantic import beam_build
from full_semantic.build_errors import worker_input_error
from full_semantic.config import FullSemanticConfig
from full_semantic.fingerprint import source_stat
from full_semantic.prepare import build_dataset
from semseg.base.errors import InputError

DUMMY_DATA = Path(__file__).resolve().parents[2] / "full_semantic" / "dummy_data"
BEAM_OPTIONS = "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"
BIN = Path(sys.executable).parent


def beam_options():
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(flags=[f"--{option}" for option in BEAM_OPTIONS.split(",")])


def build(config, manual_dir, data_dir, on_beam):
    return build_dataset(config, manual_dir, data_dir, beam_options() if on_beam else None)


def write_cvat_xml(root):
    shapes, _ = scene_shapes()
    return write_export(
        root, [("a.png", "Train", shapes), ("b.png", "Train", ""), ("c.png", "Validation", "")]
    )


# config, and the manual dir: a folder of full_semantic/dummy_data or a writer.
SOURCES = {
    "cvat": ("cvat", DUMMY_DATA / "cvat"),
    "cityscapes": ("cityscapes", DUMMY_DATA / "cityscapes"),
    "utokyo_rgbt": ("utokyo_rgbt", DUMMY_DATA / "utokyo"),
    "satellite": ("satellite", DUMMY_DATA / "satellite"),
    "folder": ("folder", DUMMY_DATA / "folder"),
    "rgb_gt": ("rgb_gt", lambda root: write_original(root, count=6)),
    "cvat_xml": ("cvat_xml", write_cvat_xml),
}


def assert_same_builds(plain, beam):
    assert plain.info.metadata["class_names"] == beam.info.metadata["class_names"]
    assert plain.info.metadata["source_fingerprint"] == beam.info.metadata["source_fingerprint"]
    assert sorted(plain.info.splits) == sorted(beam.info.splits)
    for split in plain.info.splits:
        expected, built = examples_by_name(plain, split), examples_by_name(beam, split)
        assert sorted(built) == sorted(expected), split
        for name, example in expected.items():
            for feature in example:
                np.testing.assert_array_equal(built[name][feature], example[feature])
        # TFDS orders both builds by the hash of the key: the files match record by record.
        plain_order = [example["file_name"] for example in tfds.as_numpy(plain.as_dataset(split))]
        beam_order = [example["file_name"] for example in tfds.as_numpy(beam.as_dataset(split))]
        assert beam_order == plain_order


def check_source(name, tmp_path):
    config, manual_dir = SOURCES[name]
    if callable(manual_dir):
        manual_dir = manual_dir(tmp_path / "source")
    plain = build(config, manual_dir, tmp_path / "plain", on_beam=False)
    beam = build(config, manual_dir, tmp_path / "beam", on_beam=True)
    assert_same_builds(plain, beam)


def test_the_beam_build_of_a_cvat_export_equals_the_plain_build(tmp_path):
    check_source("cvat", tmp_path)
    # One shard per local worker at least, each written by its worker.
    beam = tfds.builder_from_directory(tmp_path / "beam" / "full_semantic" / "cvat" / "1.0.0")
    assert beam.info.splits["train"].num_shards == 2
    assert beam.info.metadata["source_stat"] == source_stat(DUMMY_DATA / "cvat")


def test_shards_follow_the_plain_writer_s_order_and_keys_must_differ(tmp_path):
    sizes = {f"k{index}": 1000 * (index + 1) for index in range(10)}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"x" * size)
    keyed = [(name, (name, tmp_path / name)) for name in sizes]
    assert beam_build.item_bytes(keyed[0][1]) == 1000

    shards = beam_build.plan_shards(keyed, "train", ShardConfig(), min_shards=3)

    assert [len(shard) for shard in shards] == [3, 4, 3]  # TFDS's get_shard_boundaries
    hasher = hashing.Hasher("train")  # what TFDS's plain Writer sorts by
    expected = sorted(sizes, key=hasher.hash_key)
    assert [key for shard in shards for key, _ in shard] == expected
    # 55 kB of files: one shard by TFDS's rule (64 MiB - 1 GiB a shard), or as many as
    # `tfds build --num_shards` says.
    assert len(beam_build.plan_shards(keyed, "train", ShardConfig())) == 1
    assert len(beam_build.plan_shards(keyed, "train", ShardConfig(num_shards=4))) == 4
    with pytest.raises(InputError, match=r"split 'val': 1 key\(s\) name several .*first: k1\)"):
        beam_build.plan_shards([*keyed, ("k1", ("k1", tmp_path / "k1"))], "val", ShardConfig())


def test_tfrecords_written_without_tensorflow_read_back_in_tensorflow(tmp_path):
    import tensorflow as tf

    records = [b"", b"one", bytes(range(256)) * 300]
    path = tmp_path / "shard.tfrecord"
    beam_build.write_tfrecord(path, records)
    assert [record.numpy() for record in tf.data.TFRecordDataset(str(path))] == records

    data = bytearray(path.read_bytes())
    data[-10] ^= 1  # a flipped bit in the last record
    path.write_bytes(bytes(data))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(path)))


@pytest.mark.large
@pytest.mark.parametrize("name", [name for name in SOURCES if name != "cvat"])
def test_the_beam_build_of_every_source_equals_the_plain_build(name, tmp_path):
    check_source(name, tmp_path)


def broken_export(root):
    """A CVAT export whose image `b` is not an image, and that file."""
    export = write_cvat_export(root, corrupt_images=["b"])
    return export, next((export / "JPEGImages").glob("b.*"))


@pytest.mark.large
def test_a_worker_error_is_the_plain_build_s_one_line_error(tmp_path):
    export, image = broken_export(tmp_path / "export")
    with pytest.raises(InputError) as plain:
        build(FullSemanticConfig(name="broken", source="cvat"), export, tmp_path / "p", False)

    with pytest.raises(InputError) as beam:
        build(FullSemanticConfig(name="broken", source="cvat"), export, tmp_path / "b", True)

    assert str(beam.value) == str(plain.value)
    assert image.name in str(beam.value) and "\n" not in str(beam.value)
    assert not list((tmp_path / "b").rglob("*.tfrecord*")), "a failed build left records"


@pytest.mark.large
def test_tfds_build_on_beam_prints_the_one_line_error_and_builds_a_good_export(tmp_path):
    export, image = broken_export(tmp_path / "broken")
    command = (BIN / "tfds", "build", "full_semantic", "--config", "cvat")
    failed = run(
        *command, "--manual_dir", export, "--data_dir", tmp_path / "tfds",
        "--beam_pipeline_options", BEAM_OPTIONS,
    )  # fmt: skip
    assert failed.returncode != 0
    # The command's own last word is the plain build's one line (the DirectRunner's
    # worker processes print their traceback to the shared stderr before it: a known gap,
    # docs/SCALING.md).
    last_line = failed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and image.name in last_line, last_line
    assert "cannot decode image (not a format PIL reads)." in last_line
    assert not list((tmp_path / "tfds").rglob("*.tfrecord*")), "a failed build left records"

    good = write_cvat_export(tmp_path / "good")
    built = run(
        *command, "--manual_dir", good, "--data_dir", tmp_path / "tfds2",
        "--beam_pipeline_options", BEAM_OPTIONS, check=True,
    )  # fmt: skip
    assert "built full_semantic/cvat" in built.stdout + built.stderr
    plain = build("cvat", good, tmp_path / "plain", on_beam=False)
    beam = tfds.builder_from_directory(tmp_path / "tfds2" / "full_semantic" / "cvat" / "1.0.0")
    assert_same_builds(plain, beam)


def test_a_worker_s_input_error_is_found_in_beam_s_error_text():
    message = "/data/JPEGImages/b.jpg: cannot decode image (not a format PIL reads)."
    # With several processes, Beam raises a RuntimeError holding the worker's traceback.
    worker_trace = (
        "Pipeline job failed: Error processing instruction bundle_74. Original traceback is\n"
        'Traceback (most recent call last):\n  File "full_semantic/raster.py", line 54\n'
        f"semseg.base.errors.InputError: {message} [while running 'train/read']\n\n"
    )
    assert str(worker_input_error(RuntimeError(worker_trace))) == message
    # In one process, the InputError itself, with the step appended.
    in_process = InputError(f"{message} [while running 'train/read'] [while running 'x']")
    assert str(worker_input_error(in_process)) == message
    assert worker_input_error(RuntimeError("OOM in the runner")) is None


def marked_workers():
    """Pids of processes carrying the mark of a local Beam build's workers."""
    from full_semantic.beam_reaper import MARKER

    pids = []
    for entry in Path("/proc").iterdir():
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(item.startswith(f"{MARKER}=".encode()) for item in environment):
            pids.append(int(entry.name))
    return pids


@pytest.mark.large
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_a_killed_beam_build_takes_its_workers_and_temporary_files_with_it(tmp_path):
    """SIGKILL of `tfds build` on the local runner: its worker processes die and its
    private temporary folder goes; a build that ends leaves nothing in TMPDIR, never
    tries to download the Prism runner, and removes the folder of a build whose watcher
    died too."""
    import os
    import signal
    import subprocess
    import time

    names = [f"frame{index:04d}" for index in range(240)]
    export = write_cvat_export(
        tmp_path / "export", splits={"train": names[:200], "val": names[200:]},
        image_size=(640, 480),
    )  # fmt: skip
    temp = tmp_path / "tmp"
    temp.mkdir()
    environment = dict(os.environ, TMPDIR=str(temp), TF_CPP_MIN_LOG_LEVEL="3")
    command = [str(BIN / "tfds"), "build", "full_semantic", "--config", "cvat",
               "--manual_dir", str(export), "--beam_pipeline_options", BEAM_OPTIONS]  # fmt: skip
    build = subprocess.Popen(
        [*command, "--data_dir", str(tmp_path / "killed")], env=environment, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not marked_workers() and build.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = marked_workers()
    assert workers, "the build ended before its workers were seen"
    build.send_signal(signal.SIGKILL)
    build.wait()
    deadline = time.monotonic() + 10
    while marked_workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not marked_workers(), "workers outlived the killed build"
    while list(temp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list(temp.iterdir())

    # A build whose watcher died with it (here: made by hand) is cleaned by the next one.
    stale = temp / "full_semantic_dead"
    (stale / "beam-worker").mkdir(parents=True)
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    built = subprocess.run(
        [*command, "--data_dir", str(tmp_path / "built")], env=environment, cwd=ROOT,
        capture_output=True, text=True,
    )  # fmt: skip
    output = built.stdout + built.stderr
    assert built.returncode == 0, output[-3000:]
    assert "prism" not in output.lower() and "built full_semantic/cvat" in output
    assert not list(temp.iterdir()), list(temp.iterdir())
