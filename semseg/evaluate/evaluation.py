"""Evaluation of a trained model on labelled images, at the labels' own resolution.

Each image is segmented by the `Predictor` (resized to the training size, logits
resized back) and a confusion matrix is accumulated over the whole split (and
one per group value with `group_by`), so memory stays constant however many
images are evaluated. The best and worst images by per-image mIoU are kept for
the visual report.

Example:

    predictor = Predictor.from_work_dir("runs/camvid")
    builder, _ = data.load_builder("full_semantic/camvid")
    examples, total = tfds_examples(builder, "val")
    result = evaluate(predictor, examples, total, num_vis=8)
    eval_report.write_report(result, "runs/camvid/eval/val", predictor.labels)

The report files are `semseg.evaluate.eval_report`'s, the cost figures
`semseg.runtime.cost.measure_cost`'s,
and a folder of images and masks is read by `full_semantic.mask_folder`.
"""

import dataclasses
import heapq
import itertools
import logging
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from full_semantic import mask_folder
from semseg.base.errors import InputError
from semseg.data import data
from semseg.evaluate import eval_report
from semseg.evaluate.metrics import ConfusionMatrix, segmentation_metrics
from semseg.runtime import cost

logger = logging.getLogger(__name__)


def tfds_examples(builder, split, max_examples=None, group_by=None):
    """Examples of a built dataset split as dicts of numpy arrays.

    Args:
        builder: dataset builder (see `semseg.data.data.load_builder`).
        split: split name.
        max_examples: only the first N examples.
        group_by: name of a feature to group the metrics by (e.g. `"daytime"`);
            it must be a scalar feature of the dataset.

    Returns:
        `(iterator, total)`: dicts with `image` uint8 `(H, W, C)`, `mask` uint8
        `(H, W)`, `file_name` str and, with `group_by`, `group` str; and their count.
    """
    total = data.num_examples(builder, split)
    features = builder.info.features
    if group_by is not None and group_by not in features:
        scalar = sorted(name for name in features if name not in ("image", "mask"))
        raise InputError(
            f"--group_by {group_by}: the dataset {builder.data_dir} has no such feature; "
            f"it has {', '.join(scalar) or 'none besides image and mask'}"
        )
    # No automatic caching: with `take` it would warn and discard a partial cache.
    read_config = tfds.ReadConfig(try_autocache=False)
    examples = builder.as_dataset(split=split, read_config=read_config)
    if max_examples:
        examples = examples.take(max_examples)
        total = min(total, max_examples)

    def generate():
        for example in examples.as_numpy_iterator():
            item = {
                "image": example["image"],
                "mask": example["mask"][..., 0],
                "file_name": _text(example.get("file_name", b"")),
            }
            if group_by is not None:
                item["group"] = _text(example[group_by])
            yield item

    return generate(), total


def _text(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _text(value.item())
    return str(value)


def folder_examples(images_dir, masks_dir, labels, num_channels=3, max_examples=None):
    """Examples from a folder of images and a folder of masks with the same names.

    Masks are either single-channel PNGs of class ids (`IGNORE_INDEX` for void)
    or RGB colour masks in the dataset's palette (black = void unless black is a
    class colour), read by `full_semantic.mask_folder`. No TFDS build is needed.

    Returns:
        `(iterator, total)` as `tfds_examples`.
    """
    from semseg.predict.inference import read_image

    pairs = mask_folder.pair_images_and_masks(images_dir, masks_dir)
    if max_examples:
        pairs = pairs[:max_examples]
    masks = mask_folder.MaskReader(labels.palette, labels.num_classes)

    def generate():
        for image_path, mask_path in pairs:
            image = read_image(image_path, num_channels)
            mask = masks.read(mask_path)
            if mask.shape != image.shape[:2]:
                raise InputError(
                    f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but {image_path} is "
                    f"{image.shape[1]}x{image.shape[0]} (width x height)"
                )
            yield {"image": image, "mask": mask, "file_name": image_path.stem}

    return generate(), len(pairs)


@dataclasses.dataclass
class ScoredExample:
    """One image kept for the visual report, with its per-image mIoU."""

    score: float
    file_name: str
    image: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray


@dataclasses.dataclass
class EvaluationResult:
    """What `evaluate` measured.

    Attributes:
        metrics: dict `mIoU`, `mAcc`, `aAcc`, `per_class`, `num_examples` and
            `groups` (`{value: metrics}`, empty without `group_by`).
        confusion: int64 `(C, C)` confusion matrix over all images.
        best: up to `num_vis` `ScoredExample`s, best first.
        worst: up to `num_vis` `ScoredExample`s, worst first.
    """

    metrics: dict
    confusion: np.ndarray
    best: list
    worst: list


def image_score(truth, prediction, num_classes):
    """mIoU of one image over the classes present in its truth or prediction (None if the
    image has no labelled pixel)."""
    confusion = ConfusionMatrix(num_classes)
    confusion.update(truth, prediction)
    if confusion.matrix.sum() == 0:
        return None
    return segmentation_metrics(confusion.matrix, range(num_classes))["mIoU"]


def evaluate(predictor, examples, total=None, num_vis=0, segment=None):
    """Segments every example and measures the result.

    Args:
        predictor: `semseg.predict.inference.Predictor` (its `labels` name the classes).
        examples: iterable of dicts from `tfds_examples` or `folder_examples`.
        total: number of examples, for the progress bar.
        num_vis: keep the `num_vis` best and worst images by per-image mIoU.
        segment: function `image -> class ids (H, W)`; `predictor.predict` by
            default (pass e.g. a test-time-augmented variant).

    Returns:
        `EvaluationResult`.
    """
    labels = predictor.labels
    segment = segment or predictor.predict
    confusion = ConfusionMatrix(labels.num_classes)
    groups = {}
    best, worst = [], []  # min-heaps of (score, counter, example) and (-score, ...)
    counter = itertools.count()
    count = 0
    for example in tqdm.tqdm(examples, total=total, desc="evaluating", unit="image"):
        truth = example["mask"]
        prediction = segment(example["image"])
        confusion.update(truth, prediction)
        if "group" in example:
            group = groups.setdefault(example["group"], [ConfusionMatrix(labels.num_classes), 0])
            group[0].update(truth, prediction)
            group[1] += 1
        if num_vis:
            score = image_score(truth, prediction, labels.num_classes)
            if score is not None:
                kept = ScoredExample(
                    score, example["file_name"], example["image"], truth, prediction
                )
                entry = next(counter)
                _push(best, (score, entry, kept), num_vis)
                _push(worst, (-score, entry, kept), num_vis)
        count += 1
    if count == 0:
        raise InputError("no example to evaluate")
    metrics = segmentation_metrics(confusion.matrix, labels.class_names)
    metrics["num_examples"] = count
    metrics["groups"] = {}
    for value in sorted(groups):
        group_confusion, group_count = groups[value]
        group_metrics = segmentation_metrics(group_confusion.matrix, labels.class_names)
        group_metrics["num_examples"] = group_count
        metrics["groups"][value] = group_metrics
    return EvaluationResult(
        metrics=metrics,
        confusion=confusion.matrix,
        best=[item for _, _, item in sorted(best, key=lambda entry: -entry[0])],
        worst=[item for _, _, item in sorted(worst, key=lambda entry: -entry[0])],
    )


def _push(heap, entry, limit):
    if len(heap) < limit:
        heapq.heappush(heap, entry)
    elif entry[:2] > heap[0][:2]:
        heapq.heapreplace(heap, entry)


def warn_if_rebuilt(trained_on, build):
    """Warns when a run's dataset was rebuilt from other files since the run trained.

    Args:
        trained_on: the run's `dataset_build` (`None` for a run that predates it).
        build: `semseg.data.data.build_record` of the build about to be evaluated.

    Returns:
        bool, whether it warned. Scores on a rebuilt dataset are not comparable with
        the run's own validation figures, but they are still scores, so this is no error.
    """
    before = (trained_on or {}).get("source_fingerprint")
    now = build.get("source_fingerprint")
    if not before or not now or before == now:
        return False
    logger.warning(
        "%s was rebuilt from other files since this run trained on it: source fingerprint %s "
        "now, %s at training (%s); its scores are not comparable with the run's",
        build["version_dir"],
        now,
        before,
        trained_on.get("version_dir"),
    )
    return True


def run_evaluation(config):
    """Everything `eval.py` does: load the run, segment the split, measure, write the report.

    Args:
        config: `semseg.evaluate.options.EvalConfig`, its `work_dir` resolved (a published
            `--weights NAME` is its work dir).

    Returns:
        `(metrics, output_dir)`.
    """
    from semseg.config.run import load_run
    from semseg.predict.inference import Predictor
    from semseg.runtime.runtimes import load_runtime

    run = load_run(config.work_dir)
    predictor = Predictor.from_work_dir(config.work_dir, config.checkpoint)
    if config.images is not None:
        examples, total = folder_examples(
            config.images, config.masks, run.labels, run.num_channels, config.max_examples
        )
        name = f"folder_{Path(config.images).name}"
    else:
        dataset = config.dataset or run.config.dataset
        builder, labels = data.load_builder(dataset, config.data_dir or run.config.data_dir)
        if labels.class_names != run.labels.class_names:
            raise InputError(
                f"{builder.data_dir}: its classes {labels.class_names} differ from the run's "
                f"{run.labels.class_names}"
            )
        build = data.build_record(builder)
        if dataset == run.config.dataset:
            warn_if_rebuilt(run.dataset_build, build)
        examples, total = tfds_examples(builder, config.split, config.max_examples, config.group_by)
        name = config.split
    output_dir = (
        Path(config.output_dir) if config.output_dir else run.config.work_path / "eval" / name
    )

    tta = {}
    if config.flip or list(config.scales) != [1.0] or config.mode != "whole":
        tta = {"flip": config.flip, "scales": list(config.scales), "mode": config.mode}
        if config.mode == "slide":
            tta.update(
                crop=list(config.crop), stride=list(config.stride) if config.stride else None
            )
    if tta:
        options = dict(tta)

        def segment(image):
            return predictor.predict_augmented(image, **options)
    else:
        segment = predictor.predict

    result = evaluate(
        predictor,
        examples,
        total,
        num_vis=config.num_vis if config.visualize else 0,
        segment=segment,
    )
    metrics = result.metrics
    metrics.update(split=name, checkpoint=str(run.checkpoint_path(config.checkpoint)), tta=tta)
    if config.images is None:
        metrics["dataset_build"] = build
        leakage = build.get("split_leakage")
        if leakage and leakage.get("val_split") == config.split:
            metrics["split_leakage"] = leakage
    if config.group_by:
        metrics["group_by"] = config.group_by
    if config.latency_runs:
        cost_model = predictor.model
        if cost_model is None:  # an exported model: count the run's Keras architecture
            cost_model = load_runtime(run.checkpoint_path("best"), run.num_channels).model
        metrics.update(
            cost.measure_cost(predictor, cost_model, config.latency_runs, config.batch_size)
        )
    eval_report.write_report(result, output_dir, run.labels, visualize=config.visualize)
    return metrics, output_dir
