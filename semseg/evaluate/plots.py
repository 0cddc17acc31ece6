"""Report figures: confusion-matrix heat-map, per-class IoU bars, training curves.

Figures use matplotlib's object API (`Figure`, no pyplot state), so they render
on machines without a display. Every figure is written atomically as PNG.
"""

import numpy as np
from matplotlib.figure import Figure

from semseg.base.files import atomic_path


def _save(figure, path):
    with atomic_path(path) as temp_path:
        figure.savefig(temp_path, dpi=110, bbox_inches="tight")


def confusion_heatmap(matrix, class_names, path, title="Confusion matrix"):
    """Writes the row-normalised confusion matrix (each truth row sums to 1) as a heat-map.

    Args:
        matrix: int `(C, C)`, rows truth, columns prediction.
        class_names: C names.
        path: PNG path.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    normalized = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = max(4.0, 0.45 * len(class_names) + 2.0)
    figure = Figure(figsize=(size + 1.0, size))
    axes = figure.subplots()
    image = axes.imshow(normalized, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the truth row")
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=60, ha="right")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("prediction")
    axes.set_ylabel("ground truth")
    axes.set_title(title)
    if len(class_names) <= 25:
        for row in range(len(class_names)):
            for column in range(len(class_names)):
                value = normalized[row, column]
                if value >= 0.005:
                    color = "white" if value > 0.5 else "black"
                    axes.text(
                        column,
                        row,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color=color,
                    )
    _save(figure, path)


def per_class_iou_bars(per_class, palette, path, title="Per-class IoU"):
    """Writes a horizontal bar chart of per-class IoU in the classes' colours.

    Args:
        per_class: `{name: {"iou": float or None, ...}}` from `segmentation_metrics`.
        palette: `[r, g, b]` per class, in the same order.
        path: PNG path.
    """
    names = list(per_class)
    values = [per_class[name]["iou"] for name in names]
    height = max(2.5, 0.35 * len(names) + 1.0)
    figure = Figure(figsize=(7.0, height))
    axes = figure.subplots()
    positions = np.arange(len(names))
    colors = [np.asarray(color) / 255.0 for color in palette]
    axes.barh(
        positions,
        [100 * (value or 0.0) for value in values],
        color=colors,
        edgecolor="black",
        linewidth=0.5,
    )
    for position, value in zip(positions, values):
        label = "n/a" if value is None else f"{100 * value:.1f}"
        axes.text((100 * value if value else 0) + 1, position, label, va="center", fontsize=8)
    axes.set_yticks(positions, names)
    axes.invert_yaxis()
    axes.set_xlim(0, 110)
    axes.set_xlabel("IoU (%)")
    axes.set_title(title)
    _save(figure, path)


def training_curves(history, path, title="Training"):
    """Writes loss and validation mIoU per epoch from a `history.csv`-like mapping.

    Args:
        history: `{column: [value per epoch]}`, with `epoch` and any of `loss`,
            `val_loss` and columns ending in `mean_iou`.
        path: PNG path.
    """
    epochs = np.asarray(history["epoch"], dtype=np.float64) + 1
    figure = Figure(figsize=(11, 4))
    loss_axes, iou_axes = figure.subplots(1, 2)
    for key in ("loss", "val_loss"):
        if key in history:
            loss_axes.plot(epochs, history[key], label=key)
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("loss")
    loss_axes.set_yscale("log")
    loss_axes.legend()
    for key in sorted(history):
        if key.endswith("mean_iou"):
            iou_axes.plot(epochs, 100 * np.asarray(history[key], dtype=np.float64), label=key)
    iou_axes.set_xlabel("epoch")
    iou_axes.set_ylabel("mIoU (%)")
    iou_axes.legend()
    figure.suptitle(title)
    _save(figure, path)
