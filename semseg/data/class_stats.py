"""Class statistics of a built `full_semantic` dataset: pixels per class, shares, class weights.

The command `python -m full_semantic.stats` prints them (tables, a bar chart and a JSON);
`train.py --class_weights auto|median|sqrt_median` takes its weights from here.

Ignored pixels (255) are counted apart and take no part in shares or weights.
Suggested class weights, for a weighted cross-entropy, come from the `train`
split (or the first split analysed):

*   `inverse` (`--class_weights auto`): inverse class frequency, `w_c ~ 1 / f_c`;
*   `median`: median frequency balancing (Eigen & Fergus, 2015, as in SegNet),
    `w_c = median(f) / f_c` where `f_c` is the pixels of class c divided by the
    labelled pixels of the images in which c appears;
*   `sqrt_median`: its square root, `w_c = sqrt(median(f) / f_c)`, a milder balance
    (the rarest CamVid classes get 3-5x instead of 8-19x) for models that the full
    weights push into over-painting thin classes.

All are scaled so that the pixel-weighted mean weight is 1 (the loss keeps the
scale of the unweighted one); a class without pixels gets weight 0.

    builder, _ = semseg.data.data.load_builder("full_semantic/camvid", data_dir)
    counts = pixel_counts(builder, "train")        # int64 (num_classes,)
    weights = class_weights(counts, "inverse")     # float64 (num_classes,)
"""

import dataclasses
import logging
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from semseg.base.errors import InputError  # noqa: E402
from semseg.base.files import atomic_path, write_json  # noqa: E402
from semseg.base.labels import IGNORE_INDEX  # noqa: E402
from semseg.data import data  # noqa: E402

logger = logging.getLogger(__name__)

WEIGHT_METHODS = ("inverse", "median", "sqrt_median")
CHART_FILE = "class_pixels.png"
STATS_FILE = "class_stats.json"


@dataclasses.dataclass
class SplitStatistics:
    """Pixel statistics of one split.

    Attributes:
        pixels: int64 `(num_classes,)`, pixels of each class.
        images: int64 `(num_classes,)`, images holding at least one pixel of the class.
        image_pixels: int64 `(num_classes,)`, labelled (not ignored) pixels of
            the images holding the class (the denominator of median frequency).
        ignored: int, pixels marked `IGNORE_INDEX`.
        num_images: int, images in the split.
    """

    pixels: np.ndarray
    images: np.ndarray
    image_pixels: np.ndarray
    ignored: int
    num_images: int

    @property
    def shares(self):
        """float64 `(num_classes,)`, each class's share of the labelled pixels (0 if none)."""
        total = self.pixels.sum()
        return self.pixels / total if total else np.zeros(len(self.pixels))


def _num_classes(builder):
    metadata = builder.info.metadata or {}
    if "class_names" not in metadata:
        raise InputError(
            f"{builder.data_dir}: the dataset metadata has no class_names; was it built by "
            "full_semantic?"
        )
    return len(metadata["class_names"])


def class_statistics(builder, split):
    """Counts the pixels of every class in one split (one pass, images are not decoded).

    Args:
        builder: a built `full_semantic` dataset builder (`semseg.data.data.load_builder`).
        split: str, the split name.

    Returns:
        `SplitStatistics`.

    Raises:
        InputError: if the split does not exist or a mask holds a value that is
            neither a class id nor `IGNORE_INDEX`.
    """
    num_classes = _num_classes(builder)
    num_images = data.num_examples(builder, split)
    masks = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()}).map(
        lambda example: tf.math.bincount(
            tf.reshape(tf.cast(example["mask"], tf.int32), [-1]),
            minlength=256,
            maxlength=256,
            dtype=tf.int64,
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )

    def accumulate(state, histogram):
        totals, images, image_pixels = state
        present = tf.cast(histogram[:num_classes] > 0, tf.int64)
        labelled = tf.reduce_sum(histogram[:num_classes])
        return totals + histogram, images + present, image_pixels + present * labelled

    zeros = tf.zeros([num_classes], tf.int64)
    totals, images, image_pixels = masks.reduce(
        (tf.zeros([256], tf.int64), zeros, zeros), accumulate
    )
    totals = totals.numpy()
    stray = np.flatnonzero(totals[num_classes:IGNORE_INDEX]) + num_classes
    if len(stray):
        shown = ", ".join(f"{value} in {totals[value]} pixel(s)" for value in stray[:5])
        raise InputError(
            f"{builder.data_dir}: split {split!r} has mask values that are no class id "
            f"(0..{num_classes - 1}) nor {IGNORE_INDEX}: {shown}."
        )
    return SplitStatistics(
        pixels=totals[:num_classes].astype(np.int64),
        images=images.numpy().astype(np.int64),
        image_pixels=image_pixels.numpy().astype(np.int64),
        ignored=int(totals[IGNORE_INDEX]),
        num_images=num_images,
    )


def pixel_counts(builder, split):
    """Pixels of each class in one split, ignored pixels excluded.

    Args:
        builder: a built `full_semantic` dataset builder (what
            `semseg.data.data.load_builder` returns).
        split: str, the split name, e.g. `"train"`.

    Returns:
        int64 array `(num_classes,)`.

    Raises:
        InputError: if the split does not exist or a mask holds a value that is
            neither a class id nor 255.
    """
    return class_statistics(builder, split).pixels


def class_weights(counts, method="inverse", image_pixels=None):
    """Class weights for a weighted loss from per-class pixel counts.

    Args:
        counts: `(num_classes,)` non-negative pixel counts (`pixel_counts`).
        method: `"inverse"` (inverse frequency, `1 / f_c`), `"median"`
            (median frequency balancing, `median(f) / f_c`) or `"sqrt_median"`
            (`sqrt(median(f) / f_c)`).
        image_pixels: optional `(num_classes,)` labelled pixels of the images
            holding each class (`SplitStatistics.image_pixels`). For the median
            methods,
            `f_c = counts[c] / image_pixels[c]` as in Eigen & Fergus; without
            it, `f_c = counts[c] / counts.sum()`, and `"median"` equals
            `"inverse"` (both are then proportional to `1 / counts`).

    Returns:
        float64 array `(num_classes,)`, scaled so that
        `sum(counts * weights) / sum(counts) == 1`; classes with no pixel get 0.

    Raises:
        ValueError: for an unknown method or counts that are not a 1-D array of
            non-negative numbers.
        InputError: if every count is 0 (no labelled pixel).
    """
    if method not in WEIGHT_METHODS:
        raise ValueError(f"method must be one of {WEIGHT_METHODS}. Received: method={method!r}")
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or (counts < 0).any() or not np.isfinite(counts).all():
        raise ValueError(
            f"counts must be a 1-D array of non-negative pixel counts. Received: {counts!r}"
        )
    present = counts > 0
    if not present.any():
        raise InputError("no labelled pixel: class weights need at least one class with pixels.")
    median = method in ("median", "sqrt_median")
    if median and image_pixels is not None:
        denominators = np.asarray(image_pixels, dtype=np.float64)
        if denominators.shape != counts.shape or (denominators[present] <= 0).any():
            raise ValueError(
                "image_pixels must have the shape of counts and be positive where counts are. "
                f"Received: image_pixels={image_pixels!r}"
            )
    else:
        denominators = np.full_like(counts, counts.sum())
    frequencies = counts[present] / denominators[present]
    scale = np.median(frequencies) if median else 1.0
    weights = np.zeros_like(counts)
    weights[present] = scale / frequencies
    if method == "sqrt_median":
        weights = np.sqrt(weights)
    return weights * (counts.sum() / np.dot(counts, weights))


def format_split_table(statistics, class_names):
    """The per-class table of one split: pixels, share of labelled pixels, images."""
    width = max(len("ignored (255)"), *(len(name) for name in class_names))
    lines = [f"{'class':<{width}}  {'pixels':>14}  {'share %':>8}  {'images':>7}"]
    for name, count, share, images in zip(
        class_names, statistics.pixels, statistics.shares, statistics.images
    ):
        lines.append(f"{name:<{width}}  {count:>14,}  {100 * share:>8.3f}  {images:>7,}")
    total = statistics.pixels.sum() + statistics.ignored
    ignored_share = statistics.ignored / total if total else 0.0
    lines.append(
        f"{'ignored (255)':<{width}}  {statistics.ignored:>14,}  {100 * ignored_share:>7.3f}*"
    )
    lines.append(f"* share of all {total:,} pixels in {statistics.num_images:,} images")
    return "\n".join(lines)


def format_weights_table(weights, class_names):
    """One row per class, one column per method."""
    width = max(len("class"), *(len(name) for name in class_names))
    methods = list(weights)
    lines = [f"{'class':<{width}}  " + "  ".join(f"{method:>9}" for method in methods)]
    for index, name in enumerate(class_names):
        lines.append(
            f"{name:<{width}}  "
            + "  ".join(f"{weights[method][index]:>9.4f}" for method in methods)
        )
    return "\n".join(lines)


def share_chart(statistics_by_split, class_names, palette, path, title):
    """Writes horizontal bars of each class's pixel share, one panel per split, as PNG.

    Args:
        statistics_by_split: dict split -> `SplitStatistics`.
        class_names: list of str.
        palette: `[r, g, b]` per class; the bars take the class colours.
        path: path-like of the PNG.
        title: str, the figure title.
    """
    splits = list(statistics_by_split)
    height = max(2.5, 0.32 * len(class_names) + 1.2)
    figure = Figure(figsize=(4.2 * len(splits) + 1.5, height))
    axes_list = np.atleast_1d(figure.subplots(1, len(splits), sharey=True, squeeze=False)[0])
    positions = np.arange(len(class_names))
    colors = [np.asarray(color) / 255.0 for color in palette]
    for axes, split in zip(axes_list, splits):
        shares = 100.0 * statistics_by_split[split].shares
        axes.barh(positions, shares, color=colors, edgecolor="black", linewidth=0.5)
        for position, share in zip(positions, shares):
            axes.text(share, position, f" {share:.2f}%", va="center", fontsize=7)
        axes.set_xlim(0, max(float(shares.max()) * 1.25, 1.0))
        axes.set_title(f"{split} ({statistics_by_split[split].num_images} images)")
        axes.set_xlabel("share of labelled pixels (%)")
        axes.invert_yaxis()
    axes_list[0].set_yticks(positions, class_names)
    figure.suptitle(title)
    with atomic_path(path) as temp_path:
        figure.savefig(temp_path, dpi=110, bbox_inches="tight")


@dataclasses.dataclass
class DatasetReport:
    """What `describe_dataset` computed and wrote.

    Attributes:
        dataset: str, `"full_semantic/CONFIG"`.
        class_names: list of str.
        statistics: dict split -> `SplitStatistics`.
        weight_split: str, the split the class weights come from.
        weights: dict method -> float64 `(num_classes,)` class weights.
        chart_path: `Path` of the bar chart PNG.
        json_path: `Path` of the JSON with every number.
    """

    dataset: str
    class_names: list
    statistics: dict
    weight_split: str
    weights: dict
    chart_path: Path
    json_path: Path

    def to_dict(self):
        """The content of the JSON file: plain lists and numbers."""
        return {
            "dataset": self.dataset,
            "class_names": self.class_names,
            "splits": {
                split: {
                    "num_images": statistics.num_images,
                    "pixels": statistics.pixels.tolist(),
                    "shares": statistics.shares.tolist(),
                    "images": statistics.images.tolist(),
                    "ignored_pixels": statistics.ignored,
                }
                for split, statistics in self.statistics.items()
            },
            "class_weights": {
                "split": self.weight_split,
                **{method: values.tolist() for method, values in self.weights.items()},
            },
        }

    def format(self):
        """The tables `python -m full_semantic.stats` prints."""
        parts = []
        for split, statistics in self.statistics.items():
            parts.append(f"{self.dataset} split {split}:")
            parts.append(format_split_table(statistics, self.class_names) + "\n")
        parts.append(f"Suggested class weights (from split {self.weight_split}):")
        parts.append(format_weights_table(self.weights, self.class_names) + "\n")
        parts.append(f"chart: {self.chart_path}\nnumbers: {self.json_path}")
        return "\n".join(parts)


def describe_dataset(dataset, data_dir=None, splits=None, output_dir=None):
    """Computes the statistics of a built dataset and writes the chart and the JSON.

    Args:
        dataset: `"full_semantic/CONFIG"`.
        data_dir: TFDS data dir (None: `~/tensorflow_datasets`).
        splits: split names, or None for every split of the dataset.
        output_dir: folder for the chart and the JSON (None: `stats/CONFIG`).

    Returns:
        `DatasetReport`.

    Raises:
        InputError: if the dataset or a split is missing, or a split has no
            labelled pixel.
    """
    builder, labels = data.load_builder(dataset, data_dir)
    splits = list(splits or builder.info.splits)
    for split in splits:
        data.num_examples(builder, split)
    output_dir = Path(output_dir or Path("stats") / dataset.split("/")[-1].split(":")[0])
    statistics = {split: class_statistics(builder, split) for split in splits}
    weight_split = "train" if "train" in statistics else splits[0]
    source = statistics[weight_split]
    report = DatasetReport(
        dataset=dataset,
        class_names=labels.class_names,
        statistics=statistics,
        weight_split=weight_split,
        weights={
            "inverse": class_weights(source.pixels, "inverse"),
            "median": class_weights(source.pixels, "median", source.image_pixels),
            "sqrt_median": class_weights(source.pixels, "sqrt_median", source.image_pixels),
        },
        chart_path=output_dir / CHART_FILE,
        json_path=output_dir / STATS_FILE,
    )
    share_chart(statistics, labels.class_names, labels.palette, report.chart_path, dataset)
    write_json(report.json_path, report.to_dict())
    return report
