"""TFDS builder turning semantic-segmentation datasets and labelling-tool exports into TFRecords.

The configs are `full_semantic.config`, the one-line errors of `tfds build`
`full_semantic.build_errors`, the Beam path `full_semantic.beam_build`.

With no `--config`, the source is detected from what `--manual_dir` (default: TFDS's
`~/tensorflow_datasets/downloads/manual/`) holds, e.g. the original project's
`full_semantic.zip` of `rgb/` images and `gt/` masks:

    cd full_semantic && tfds build

Run from the project root:

    tfds build full_semantic --config cvat --manual_dir path/to/cvat_export \
        --data_dir ~/tensorflow_datasets
    tfds build full_semantic --config cityscapes --manual_dir ~/data/cityscapes
    tfds build full_semantic --config utokyo_thermal --manual_dir ~/data/ir_seg_dataset
    tfds build full_semantic \
        --config '{"name": "camvid", "source": "cvat", "void_labels": ["background"]}' \
        --manual_dir ../shared/data/camvid_cvat --data_dir ~/tensorflow_datasets

On Apache Beam (here 2 local processes; Dataflow, Flink or Spark take their own
options, docs/SCALING.md), each worker decoding and writing whole shards
(`full_semantic/beam_build.py`):

    tfds build full_semantic --config cvat --manual_dir path/to/cvat_export \
        --beam_pipeline_options \
        "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"

Then read the classes back from the dataset:

    builder = tfds.builder_from_directory("~/tensorflow_datasets/full_semantic/camvid/1.0.0")
    builder.info.metadata["class_names"], builder.info.metadata["palette"]

Each `source` lives in its own module, which declares it once as `SOURCE` (a
`full_semantic.source.Source`: reader, channels, class sets, extra features, what the
manual dir holds, homepage); `SOURCES` lists them. A reader is called as
`open(manual_dir, scratch_dir, config)` (the `FullSemanticConfig`) and returns a dataset
with `class_names`, `palette`, `split_names` and `examples(split)` yielding
`(key, {"image", "mask", "file_name", ...})`.
"""

import contextlib
import dataclasses
import functools
import logging
import os
import tempfile

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core import split_builder as split_builder_lib

from full_semantic import (
    beam_build,
    detect,
    fingerprint,
    split_leakage,
)
from full_semantic.build_errors import install_input_error_hook, worker_input_error
from full_semantic.config import (
    AUTO,
    AUTO_CONFIG,
    SOURCES,
    FullSemanticConfig,
    config_from_json_fields,
)
from full_semantic.source import read_example
from semseg.base import files
from semseg.base.errors import InputError
from semseg.base.labels import IGNORE_INDEX

logger = logging.getLogger(__name__)

# Temp folders of builds (an extracted zip); one left by a killed build goes at the next.
SCRATCH_PREFIX = "full_semantic_"


# The splits whose images `split_leakage` compares: train, and the first val name present.
LEAK_SPLITS = ("train", "val", "validation")


class Builder(tfds.core.GeneratorBasedBuilder):
    """Semantic-segmentation dataset built from a labelling tool's export or a public dataset."""

    # What `tfds build --config '{...json...}'` calls to make a custom config.
    builder_config_cls = staticmethod(config_from_json_fields)

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: CVAT exports, Cityscapes and MiniCity, UTokyo multispectral, "
        "AIHub satellite building/road and plain folders.",
    }
    # What `tfds build` without `--config` builds: TFDS builds every entry of this
    # list then, so it holds only the detecting config; `--config NAME` also finds
    # the named configs below (`get_builder_config`).
    BUILDER_CONFIGS = [AUTO_CONFIG]
    NAMED_CONFIGS = {
        config.name: config
        for config in [
            FullSemanticConfig(
                name="cvat",
                source="cvat",
                description="CVAT 'Segmentation mask 1.1' export, every labelmap class kept.",
            ),
            FullSemanticConfig(
                name="cityscapes",
                source="cityscapes",
                class_set="train_ids",
                description="Cityscapes or MiniCity fine annotations, the 19 evaluated classes.",
            ),
            FullSemanticConfig(
                name="cityscapes_categories",
                source="cityscapes",
                class_set="categories",
                description="Cityscapes or MiniCity fine annotations, the 8 categories as classes.",
            ),
            FullSemanticConfig(
                name="utokyo_rgb",
                source="utokyo",
                channels=3,
                description="UTokyo multispectral (MFNet), RGB channels, 9 classes, day/night.",
            ),
            FullSemanticConfig(
                name="utokyo_thermal",
                source="utokyo",
                channels=1,
                description="UTokyo multispectral (MFNet), thermal channel, 9 classes, day/night.",
            ),
            FullSemanticConfig(
                name="utokyo_rgbt",
                source="utokyo",
                channels=4,
                description="UTokyo multispectral (MFNet), RGB + thermal, 9 classes, day/night.",
            ),
            FullSemanticConfig(
                name="satellite",
                source="satellite",
                description="AIHub satellite tiles, background/building/road from GeoJSON "
                "polygons.",
            ),
            FullSemanticConfig(
                name="rgb_gt",
                source="rgb_gt",
                description="The original layout: rgb/ images, gt/ masks with suffixed names.",
            ),
            FullSemanticConfig(
                name="cvat_xml",
                source="cvat_xml",
                description="CVAT for images 1.1 export: polygons, brush masks and ellipses "
                "of annotations.xml drawn in z-order over background.",
            ),
            FullSemanticConfig(
                name="folder",
                source="folder",
                description="Plain folder: images/, 8-bit index labels/, splits/, classes.json.",
            ),
        ]
    }

    @tfds.core.utils.classproperty
    @classmethod
    def builder_configs(cls):
        """Every config by name, `auto` and `NAMED_CONFIGS` (what `--config NAME` finds)."""
        return {AUTO_CONFIG.name: AUTO_CONFIG, **cls.NAMED_CONFIGS}

    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Pass the source data with `--manual_dir` (layouts in full_semantic/README.md), or
    put it in TFDS's default manual dir (~/tensorflow_datasets/downloads/manual/):
    * auto (no --config): any layout below, detected; also the original rgb/ + gt/
      layout (full_semantic.zip).
    * cvat: a CVAT "Segmentation mask 1.1" export folder (labelmap.txt,
      ImageSets/Segmentation/, JPEGImages/, SegmentationClass/), a .zip of it, or
      a folder holding exactly one such .zip.
    * cityscapes, cityscapes_categories: the folder where leftImg8bit_trainvaltest.zip
      and gtFine_trainvaltest.zip were extracted (leftImg8bit/, gtFine/); MiniCity too.
    * utokyo_rgb, utokyo_thermal, utokyo_rgbt: the released ir_seg_dataset/ folder
      (images/, labels/, train.txt, val.txt, test.txt) or a .zip of it.
    * satellite: images/, labels/building/*.json, labels/road/*.json, optional splits/.
    * folder: classes.json, images/, labels/, optional splits/.
    * rgb_gt: rgb/ images, gt/ masks named like the image plus _SUFFIX, optional
      classes.json or labelmap.txt.
    * cvat_xml: a CVAT "CVAT for images 1.1" export with images (annotations.xml,
      images/), or a .zip of it.
    """

    def _info(self):
        config = self.builder_config
        features = {
            "image": tfds.features.Image(shape=(None, None, config.channels), dtype=np.uint8),
            "mask": tfds.features.Image(
                shape=(None, None, 1), dtype=np.uint8, encoding_format="png"
            ),
            "file_name": tfds.features.Text(),
        }
        for name in SOURCES[config.source].text_features:
            features[name] = tfds.features.Text()
        metadata = self.get_metadata()
        return BuildSummaryInfo(
            builder=self,
            description=metadata.description,
            citation=metadata.citation,
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("image", "mask"),
            homepage=SOURCES[config.source].homepage,
            # Filled in `_split_generators`, once the source's classes are known.
            metadata=tfds.core.MetadataDict(),
        )

    def download_and_prepare(self, **kwargs):
        """Builds the dataset; on failure leaves no empty folder behind.

        A build already there is reused only if its source is unchanged (the
        `source_stat`, else the `source_fingerprint` of its metadata: `fingerprint.py`); a
        changed source stops with one line saying how to rebuild, instead of the old
        classes and masks being kept.

        The build holds a lock on `<data_dir>/full_semantic/<config>/`: a second build
        of the same config stops with one line, and the `incomplete.*` folders and temp
        folders of killed builds are removed first.
        """
        download_dir = epath.Path(kwargs.get("download_dir") or self.data_dir_root / "downloads")
        download_config = kwargs.get("download_config")
        manual_dir = getattr(download_config, "manual_dir", None) or download_dir / "manual"
        # `tfds build --beam_pipeline_options ...` (or a `DownloadConfig` with
        # `beam_options`/`beam_runner`): the examples are read on Beam's workers.
        self._on_beam = bool(
            getattr(download_config, "beam_options", None)
            or getattr(download_config, "beam_runner", None)
        )
        config_dir = epath.Path(self.data_path).parent  # <data_dir>/full_semantic/<config>
        existed = {
            path for path in (download_dir, download_dir / "extracted", config_dir) if path.exists()
        }
        config_dir.mkdir(parents=True, exist_ok=True)
        busy = (
            f"{config_dir}: another build of full_semantic/{self.builder_config.name} is "
            "running in this data dir; wait for it to finish."
        )
        try:
            with files.locked(config_dir, busy):
                self._remove_litter(config_dir)
                self._prepare_once(manual_dir, download_dir, kwargs)
        except BaseException:
            self._remove_empty_folders(download_dir, existed)
            raise

    def _remove_litter(self, config_dir):
        """Removes what killed builds left: TFDS's `incomplete.*` folders of this config
        (no other build of it runs: this one holds its lock) and the temp folders of
        builds whose process is gone."""
        leftovers = [path for path in config_dir.glob("incomplete.*") if path.is_dir()]
        for leftover in leftovers:
            leftover.rmtree(missing_ok=True)
        leftovers += files.remove_abandoned(tempfile.gettempdir(), f"{SCRATCH_PREFIX}*")
        files.log_removed(leftovers, "killed builds")

    def _prepare_once(self, manual_dir, download_dir, kwargs):
        """Builds, or reuses a build of the same source (see `download_and_prepare`)."""
        self._source_stat = fingerprint.source_stat(manual_dir)
        if self.is_prepared():
            self._check_unchanged(manual_dir)
        try:
            with files.owned_temp_dir(prefix=SCRATCH_PREFIX) as scratch_dir:
                self._scratch_dir = epath.Path(scratch_dir)
                self._manual_path = epath.Path(manual_dir)
                super().download_and_prepare(**kwargs)
        except Exception as error:
            input_error = worker_input_error(error) if self._on_beam else None
            if input_error is None:
                raise
            raise input_error from None
        finally:
            self._scratch_dir = None

    def _check_unchanged(self, manual_dir):
        """Stops with one line when the source is not what the build was made of: the
        names, sizes and times are compared first (`source_stat`, no file read), the
        contents only when those differ (`source_fingerprint`)."""
        metadata = self.info.metadata or {}
        stored = metadata.get("source_fingerprint")
        # Builds made before `source_stat` existed kept that hash as their fingerprint.
        stored_stat = metadata.get("source_stat", stored)
        if not stored or self._source_stat is None or stored_stat == self._source_stat:
            return
        if fingerprint.source_fingerprint(manual_dir) != stored:
            raise InputError(
                f"{self.data_path}: built from {manual_dir} before it changed; rebuild it "
                "with --overwrite (tfds build ... --overwrite), or build the new state "
                "under another config name or --data_dir."
            )
        logger.info("%s: touched since the build, same contents: build reused", manual_dir)

    def _remove_empty_folders(self, download_dir, existed):
        """Removes the empty folders a failed build made in `--data_dir`.

        TFDS deletes its `incomplete.*` folder on failure but keeps its parents;
        `<data_dir>/full_semantic/` goes too if it holds nothing but TFDS's `.config`,
        and `downloads/extracted/` (and `downloads/`) if this build created them empty.
        """
        config_dir = epath.Path(self.data_path).parent
        dataset_dir = config_dir.parent
        if config_dir not in existed and config_dir.is_dir() and not any(config_dir.iterdir()):
            config_dir.rmdir()
        if dataset_dir.is_dir() and {entry.name for entry in dataset_dir.iterdir()} <= {".config"}:
            dataset_dir.rmtree()
        for leftover in (download_dir / "extracted", download_dir):
            if leftover not in existed and leftover.is_dir() and not any(leftover.iterdir()):
                leftover.rmdir()

    def _split_generators(self, dl_manager):
        source = self._open_source(dl_manager)
        return {split: self._generate_examples(source, split) for split in source.split_names}

    def _generate_examples(self, source, split):
        features = frozenset(self.info.features)
        examples = (read_example(item, source, features) for item in source.items(split))
        if split not in LEAK_SPLITS:
            return examples
        # Thumbnails of train and val as they are written, for `split_leakage`.
        thumbnails = self._thumbnails.setdefault(split, {})

        def with_thumbnails():
            for key, example in examples:
                thumbnails[example["file_name"]] = split_leakage.thumbnail(example["image"])
                yield key, example

        return with_thumbnails()

    def _generate_splits(self, dl_manager, download_config):
        """On Beam (`--beam_pipeline_options`), each worker decodes and writes whole
        shards (`full_semantic/beam_build.py`); otherwise TFDS's plain build. (TFDS's
        own hook between the splits and their writers, as of the pinned 4.9.10; the
        Beam tests fail if it moves.)"""
        if not getattr(self, "_on_beam", False):
            self._thumbnails = {}
            result = super()._generate_splits(dl_manager, download_config)
            self._record_split_leakage()
            return result
        logger.info("val's leakage from train is measured on plain builds (without Beam)")
        example_writer = self._example_writer()
        shard_config = download_config.get_shard_config()
        beam_runner = download_config.beam_runner
        local = beam_build.is_local(download_config.beam_options, beam_runner)
        if local:
            beam_runner = beam_build.local_runner(download_config.beam_options)
        # TFDS's pipeline, made as for its own Beam datasets (options, type checks off).
        split_builder = split_builder_lib.SplitBuilder(
            split_dict=self.info.splits,
            features=self.info.features,
            dataset_size=self.info.dataset_size,
            max_examples_per_split=download_config.max_examples_per_split,
            beam_options=download_config.beam_options,
            beam_runner=beam_runner,
            shard_config=shard_config,
            example_writer=example_writer,
        )
        source = self._open_source(dl_manager)
        min_shards = beam_build.local_workers_count(download_config.beam_options)
        read = functools.partial(
            read_example, source=source, features=frozenset(self.info.features)
        )
        pending = []
        contained = contextlib.nullcontext()
        if local:
            contained = beam_build.local_workers(self._scratch_dir)
        with contained, split_builder.maybe_beam_pipeline():
            for split in source.split_names:
                items = source.items(split)[: download_config.max_examples_per_split]
                pending.append(
                    beam_build.write_split(
                        split_builder.beam_pipeline,
                        read,
                        [(source.key(item), item) for item in items],
                        split,
                        features=self.info.features,
                        template=self._get_filename_template(split),
                        example_writer=example_writer,
                        shard_config=shard_config,
                        min_shards=min_shards,
                    )
                )
        return [finish() for finish in pending]

    def _record_split_leakage(self):
        """Records how much val leaks from train (`split_leakage`) in the metadata, and
        warns in one line when val is mostly near-duplicates of train."""
        train = self._thumbnails.get("train")
        val_split = next((split for split in LEAK_SPLITS[1:] if self._thumbnails.get(split)), None)
        if not train or val_split is None:
            self.info.metadata["split_leakage"] = None
            return
        report = split_leakage.measure(train, self._thumbnails[val_split])
        self.info.metadata["split_leakage"] = {
            **report.to_dict(),
            "leaks": report.leaks,
            "val_split": val_split,
        }
        if report.leaks:
            config = self.builder_config
            logger.warning("%s", report.warning(config.name, self.info.metadata["source"]))

    def _open_source(self, dl_manager):
        """The source's dataset (`Source.open`); records its classes in the metadata."""
        config = self.builder_config
        scratch_dir = getattr(self, "_scratch_dir", None)
        if scratch_dir is None:
            raise RuntimeError("full_semantic builds only through `download_and_prepare`.")
        manual_path = _manual_path(dl_manager, self._manual_path, config.source)
        source_name = config.source
        if source_name == AUTO:
            source_name, manual_path = detect.detect_source(manual_path)
            logger.info("detected a %s dataset in %s", source_name, manual_path)
            config = dataclasses.replace(config, source=source_name)
        source = SOURCES[source_name].open(manual_path, scratch_dir, config)
        groups = None
        if config.group_by:
            groups = split_leakage.regroup_splits(
                source, config.group_by, config.val_groups, f"--config {config.name!r}"
            )
            logger.info(
                "splits regrouped by %r: val %s, train %s",
                config.group_by,
                groups["val"],
                groups["train"],
            )
        self.info.metadata.update(
            {
                "class_names": list(source.class_names),
                "palette": [list(color) for color in source.palette],
                "ignore_index": IGNORE_INDEX,
                "source": source_name,
                "source_fingerprint": fingerprint.source_fingerprint(self._manual_path),
                "source_stat": getattr(self, "_source_stat", None),
                "split_groups": groups,
            }
        )
        logger.info(
            "%s: %d classes %s, splits %s",
            config.name,
            len(source.class_names),
            source.class_names,
            source.split_names,
        )
        return source


class BuildSummaryInfo(tfds.core.DatasetInfo):
    """`DatasetInfo` whose `repr`, which `tfds build` prints last, is a short summary
    (splits, counts, classes, where it is, the next command) instead of ~300 lines."""

    def initialize_from_bucket(self):
        """Nothing: full_semantic is built from the user's files, never hosted on TFDS's GCS
        bucket. (TFDS's version looks it up over the network and leaves an empty
        `/tmp/tmp*tfds` folder behind at every construction of an unbuilt builder.)"""

    def __repr__(self):
        splits = ", ".join(
            f"{split} {info.num_examples}" for split, info in sorted(self.splits.items())
        )
        if not splits:
            return f"{self.full_name}: not built yet"
        name = self.full_name.rpartition("/")[0]
        metadata = self.metadata or {}
        classes = list(metadata.get("class_names") or [])
        shown = ", ".join(classes[:8]) + (", ..." if len(classes) > 8 else "")
        data_dir = epath.Path(self.data_dir).parents[2]
        default = os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")
        same = os.path.realpath(data_dir) == os.path.realpath(default)
        data_dir_flag = "" if same else f" --data_dir {data_dir}"
        return (
            f"built {name} (source {metadata.get('source', '?')}): {len(classes)} classes "
            f"[{shown}]; examples: {splits}\n"
            f"  in {self.data_dir}\n"
            f"  next: python train.py --dataset {name}{data_dir_flag}"
        )


def _manual_path(dl_manager, given, source):
    """The `--manual_dir` path: a non-empty folder (`dl_manager.manual_dir`), or the `.zip`
    `given` (the `download_config`'s manual dir, which `dl_manager.manual_dir` rejects)."""
    if given.is_file():
        return given
    try:
        return epath.Path(dl_manager.manual_dir)
    except AssertionError:
        raise InputError(
            f"--manual_dir {given} does not exist or is empty: pass {SOURCES[source].manual_dir}."
        ) from None


install_input_error_hook([config.name for config in Builder.builder_configs.values()])
