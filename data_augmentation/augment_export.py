"""Multiplies a labelled dataset offline into a new CVAT "Segmentation mask 1.1" export.

Its options are `data_augmentation.options`; workers, writing and the atomic swap of one
export are here.

`augment_export(AugmentOptions(...))` is what `data_augmentation/augment_data.py`
runs. The output folder is an export `tfds build full_semantic --config cvat`
reads directly:

    OUTPUT/
      labelmap.txt                      copied from the input labelmap
      ImageSets/Segmentation/SPLIT.txt  originals (--keep_originals) and their copies;
                                        an input export's other lists, unchanged
      JPEGImages/NAME.ext               originals, byte for byte
      JPEGImages/NAME_augK.jpg          augmented copies (.png with --image_format png)
      SegmentationClass/NAME*.png       colour masks, labelmap colours only
      SegmentationObject/NAME*.png      instance masks, when the input has them
      VIS_MASK/NAME*.jpg                overlays to look at; not read by the builder
      augmentation.json                 settings, and the source, ops and
                                        background of every written example

Originals are copied (`keep_originals=True`, the default) because the augmented
copies are meant to be trained on together with them; the copies of the other
lists of an input export (e.g. `val.txt`) are never augmented, so validation
stays clean. The output is built in a hidden folder beside `output_path` and
renamed into place at the end: a failure or Ctrl-C leaves nothing behind, and the
inputs are only read. A non-empty `output_path` is replaced only with `overwrite`
and only if it is an earlier output (it holds `augmentation.json`).
"""

import concurrent.futures
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import pathlib
import shutil
import tempfile
import uuid

import cv2
import numpy as np

from data_augmentation import augmentation
from data_augmentation.options import NOT_RECORDED, AugmentSummary
from data_augmentation.source_files import find_sources, list_images, read_rgb
from full_semantic.cvat_writer import (
    ExportWriter,
    image_member,
    mask_member,
    object_mask_member,
)
from full_semantic.label_colors import (
    LabelColors,
    object_ids_from_rgb,
    object_rgb_from_ids,
)
from semseg.base import files
from semseg.base.errors import InputError
from semseg.base.files import write_image, write_json
from semseg.base.labels import IGNORE_INDEX
from semseg.predict.visualization import overlay

logger = logging.getLogger(__name__)

IGNORE_LABEL_NAME = "ignore"
VIS_DIR = "VIS_MASK"
RECORD_FILE = "augmentation.json"
# Temp folders of runs (an extracted zip); one left by a killed run goes at the next.
SCRATCH_PREFIX = "augment_data_"


@dataclasses.dataclass
class _ExampleJob:
    """Reads, validates and augments one source example into the output folder.

    Picklable: worker processes receive it once per example.
    """

    augmenter: augmentation.Augmenter
    colors: LabelColors
    output_dir: pathlib.Path
    num_per_image: int
    seed: int
    keep_originals: bool
    image_extension: str
    vis: bool
    background_class: int

    def __call__(self, example):
        image = read_rgb(example.image, example.describe(example.image))
        class_ids = self._read_mask(example.mask, image, example, self.colors.to_ids)
        object_ids = table = None
        if example.object_mask is not None:
            object_ids, table = self._read_mask(
                example.object_mask, image, example, object_ids_from_rgb
            )
        records = {}
        if self.keep_originals:
            _copy_example(example, self.output_dir, example.object_mask is not None)
            self._write_vis(example.name, image, class_ids)
            records[example.name] = {"source": example.name, "ops": [], "background": None}
        for copy_index, name in enumerate(augmented_names(example.name, self.num_per_image)):
            rng = augmentation.example_rng(self.seed, example.name, copy_index)
            copy = self.augmenter.augment(image, class_ids, object_ids, rng)
            write_image(self.output_dir / image_member(name, self.image_extension), copy.image)
            write_image(
                self.output_dir / mask_member(name),
                self.colors.to_rgb(copy.class_ids),
            )
            if copy.object_ids is not None:
                write_image(
                    self.output_dir / object_mask_member(name),
                    object_rgb_from_ids(copy.object_ids, table),
                )
            self._write_vis(name, copy.image, copy.class_ids)
            records[name] = {
                "source": example.name,
                "ops": list(copy.ops),
                "background": str(copy.background) if copy.background is not None else None,
            }
        return records

    def _read_mask(self, path, image, example, decode):
        rgb = read_rgb(path, example.describe(path))
        if rgb.shape[:2] != image.shape[:2]:
            raise InputError(
                f"{example.describe(path)} is {_size_text(rgb)} but "
                f"{example.describe(example.image)} is {_size_text(image)} (width x height); "
                "a mask must have the size of its image."
            )
        return decode(rgb, example.describe(path))

    def _write_vis(self, name, image, class_ids):
        if self.vis:
            shown = np.where(class_ids == self.background_class, IGNORE_INDEX, class_ids)
            write_image(
                self.output_dir / VIS_DIR / f"{name}.jpg",
                overlay(image, shown, self.colors.palette),
            )


def augmented_names(name, num_per_image):
    """Names of the copies of `name`: `NAME_aug0`.. (zero-padded to at least 2 digits)."""
    width = max(2, len(str(num_per_image - 1)))
    return [f"{name}_aug{index:0{width}d}" for index in range(num_per_image)]


def augment_export(options, progress=None):
    """Writes the augmented export described by `options`.

    Args:
        options: `AugmentOptions`.
        progress: optional callable wrapping an iterable, called as
            `progress(iterable, total=..., desc=..., unit=...)` (e.g. `tqdm.tqdm`).

    Returns:
        an `AugmentSummary`.

    Raises:
        InputError: for a bad flag or input file (unknown mask colour, image
            and mask of different sizes, missing mask, ...), or an output
            folder that is not empty (without `overwrite`) or overlaps the inputs.
            Nothing is written then.
    """
    progress = progress or _no_progress
    output_path = pathlib.Path(options.output_path).resolve()
    _remove_litter(output_path)
    with files.owned_temp_dir(prefix=SCRATCH_PREFIX) as scratch_dir:
        sources = find_sources(
            options.rgb_path,
            mask_path=options.mask_path,
            obj_mask_path=options.obj_mask_path,
            label_map_path=options.label_map_path,
            split=options.split,
            image_list=options.image_list,
            scratch_dir=scratch_dir,
        )
        colors = LabelColors.from_labelmap(sources.labelmap, sources.labelmap_name)
        background_class = colors.background_index(options.background_label)
        fill_class = _fill_class(options, colors, background_class)
        ops = augmentation.parse_ops(options.ops)
        backgrounds = _backgrounds(options, ops)
        settings = augmentation.AugmentationSettings(
            ops=ops,
            fill_class=fill_class,
            background_class=background_class,
            op_probability=options.op_probability,
            shift_limit=options.shift_limit,
            rotate_limit=options.rotate_limit,
            scale_limit=options.scale_limit,
            foreground_from_objects=sources.has_object_masks,
        )
        if ops == ("flip",) and options.num_per_image > 1:
            logger.warning(
                "--ops flip alone makes one distinct copy per image; the other %d are duplicates.",
                options.num_per_image - 1,
            )
        input_paths = sources.input_paths + ([pathlib.Path(options.bg_path)] if backgrounds else [])
        _check_output(output_path, input_paths, options.overwrite)
        _check_names(sources, options)
        temp_dir = output_path.parent / f".{output_path.name}.partial-{uuid.uuid4().hex[:8]}"
        job = _ExampleJob(
            augmenter=augmentation.Augmenter(settings, backgrounds),
            colors=colors,
            output_dir=temp_dir,
            num_per_image=options.num_per_image,
            seed=options.seed,
            keep_originals=options.keep_originals,
            image_extension=f".{options.image_format}",
            vis=options.vis,
            background_class=background_class,
        )
        created_parents = [parent for parent in output_path.parents if not parent.exists()]
        try:
            with files.owned_dir(temp_dir):
                summary = _write_export(job, sources, options, colors, temp_dir, progress)
                _move_into_place(temp_dir, output_path)
        except BaseException:
            shutil.rmtree(temp_dir, ignore_errors=True)
            for parent in created_parents:  # innermost first
                with contextlib.suppress(OSError):
                    parent.rmdir()
            raise
    summary.output_path = output_path
    summary.void_label = colors.names[fill_class] if options.border == "ignore" else None
    return summary


def _write_export(job, sources, options, colors, temp_dir, progress):
    """Fills `temp_dir` with the whole export; returns the `AugmentSummary`."""
    writer = ExportWriter(temp_dir)
    writer.copy_labelmap(sources.labelmap)
    records = {}
    results = _run_jobs(job, sources.examples, options.workers)
    for example_records in progress(
        results, total=len(sources.examples), desc="augmenting", unit="image"
    ):
        records.update(example_records)
    lists = {options.split: list(records)}
    copied = set(records) if options.keep_originals else set()
    for split, examples in sources.other_splits.items():
        for example in examples:
            if example.name not in copied:
                _copy_example(example, temp_dir, sources.has_object_masks)
                copied.add(example.name)
        lists[split] = [example.name for example in examples]
    for split, names in lists.items():
        writer.write_list(split, names)
    recorded = {
        field: value
        for field, value in dataclasses.asdict(options).items()
        if field not in NOT_RECORDED
    }
    write_json(
        temp_dir / RECORD_FILE,
        {
            "tool": "data_augmentation/augment_data.py",
            "albumentations": augmentation.ALBUMENTATIONS_VERSION,
            "options": recorded,
            "classes": colors.names,
            "examples": records,
        },
    )
    num_originals = len(sources.examples) if options.keep_originals else 0
    return AugmentSummary(
        output_path=temp_dir,
        split=options.split,
        num_sources=len(sources.examples),
        num_originals=num_originals,
        num_augmented=len(records) - num_originals,
        other_splits={split: len(examples) for split, examples in sources.other_splits.items()},
    )


def _run_jobs(job, examples, workers):
    """Yields `job(example)` for each example, in order, in `workers` processes."""
    workers = min(workers, len(examples))
    if workers <= 1:
        for example in examples:
            yield job(example)
        return
    # `spawn`: forking a process that may hold TensorFlow or OpenCV threads can deadlock.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker
    ) as executor:
        try:
            yield from executor.map(job, examples, chunksize=1)
        except BaseException:
            executor.shutdown(wait=True, cancel_futures=True)
            raise


def _init_worker():
    # One OpenCV thread per process: the processes already use every core.
    cv2.setNumThreads(1)


def _no_progress(iterable, **unused_kwargs):
    return iterable


def _copy_example(example, output_dir, with_object_mask):
    """Copies an example's files as they are (image extension kept, masks as `.png`)."""
    object_mask = example.object_mask if with_object_mask else None
    ExportWriter(output_dir).copy_example(example.name, example.image, example.mask, object_mask)


def _fill_class(options, colors, background_class):
    """The class painted in uncovered border pixels (`--border`, `--ignore_label`)."""
    if options.border == "background":
        if options.ignore_label is not None:
            raise InputError("--ignore_label is only used with --border ignore.")
        return background_class
    if options.ignore_label is not None:
        return colors.index_of(options.ignore_label, "--ignore_label")
    if IGNORE_LABEL_NAME in colors.names:
        return colors.names.index(IGNORE_LABEL_NAME)
    raise InputError(
        f"--border ignore needs a class of {colors.labelmap_name} to paint the border with, "
        "one you then list in void_labels when building (CVAT masks have no ignore colour): "
        "pass --ignore_label NAME, or add a line like 'ignore:255,255,255::' to the labelmap."
    )


def _backgrounds(options, ops):
    if augmentation.BACKGROUND_OP in ops:
        if not options.bg_path:
            raise InputError("--ops bg_replace needs background images: pass --bg_path.")
        return list_images(options.bg_path, "--bg_path")
    if options.bg_path:
        raise InputError(
            f"--bg_path is only used by the bg_replace op, which --ops {options.ops!r} leaves out."
        )
    return []


def _check_output(output_path, input_paths, overwrite):
    """Refuses a file, a folder overlapping an input, or a non-empty folder.

    A non-empty folder is replaced only with `overwrite`, and only if it is an
    earlier output (it holds `RECORD_FILE`): a mistyped path never wipes other data.
    """
    resolved = output_path.resolve()
    for input_path in input_paths:
        input_resolved = pathlib.Path(input_path).resolve()
        if (
            resolved == input_resolved
            or resolved in input_resolved.parents
            or input_resolved in resolved.parents
        ):
            raise InputError(
                f"--output_path {output_path} overlaps the input {input_path}; write the "
                "augmented export to a folder of its own (inputs are never modified)."
            )
    if output_path.exists() and not output_path.is_dir():
        raise InputError(f"--output_path {output_path} is a file; expected a folder.")
    if output_path.is_dir() and any(output_path.iterdir()):
        if not overwrite:
            raise InputError(
                f"--output_path {output_path} is not empty; pass --overwrite to replace it."
            )
        if not (output_path / RECORD_FILE).is_file():
            raise InputError(
                f"--output_path {output_path} is not empty and holds no {RECORD_FILE}, so it is "
                "not an earlier augment_data.py output; --overwrite only replaces those. "
                "Choose another folder or empty it."
            )


def _check_names(sources, options):
    """Refuses outputs whose names collide (e.g. a source already named `a_aug00`)."""
    owner = {}
    planned = []
    for example in sources.examples:
        if options.keep_originals:
            planned.append((example.name, example.name))
        planned += [
            (name, example.name) for name in augmented_names(example.name, options.num_per_image)
        ]
    other_names = {
        example.name for examples in sources.other_splits.values() for example in examples
    }
    for name, source in planned:
        if name in owner or (name != source and name in other_names):
            other = owner.get(name, name)
            raise InputError(
                f"output name {name!r} (from {source!r}) collides with example {other!r}; "
                "rename the source files or augment them in separate runs."
            )
        owner[name] = source


def _remove_litter(output_path):
    """Removes what killed runs left: the `.NAME.partial-*` folders beside `output_path`
    and the temp folders whose process is gone, and puts back an output that a run
    killed while replacing it had moved to `.NAME.old-*`."""
    parent = output_path.parent
    if not output_path.exists():
        moved = sorted(parent.glob(f".{output_path.name}.old-*"), key=os.path.getmtime)
        if moved:
            os.rename(moved[-1], output_path)
            logger.warning(
                "put back %s, which a killed run had moved to %s", output_path, moved[-1]
            )
    leftovers = files.remove_abandoned(parent, f".{output_path.name}.partial-*")
    leftovers += files.remove_abandoned(parent, f".{output_path.name}.old-*")
    leftovers += files.remove_abandoned(tempfile.gettempdir(), f"{SCRATCH_PREFIX}*")
    files.log_removed(leftovers, "killed runs")


def _move_into_place(temp_dir, output_path):
    """Renames the finished `temp_dir` to `output_path`, replacing what was there."""
    old_dir = None
    if output_path.is_dir():
        if any(output_path.iterdir()):
            old_dir = output_path.parent / f".{output_path.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(output_path, old_dir)
        else:
            output_path.rmdir()
    os.rename(temp_dir, output_path)
    if old_dir is not None:
        shutil.rmtree(old_dir, ignore_errors=True)


def _size_text(array):
    height, width = array.shape[:2]
    return f"{width}x{height}"
