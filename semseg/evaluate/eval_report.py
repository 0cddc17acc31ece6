"""The files of an evaluation: metrics.json, report.md, the confusion matrix, the plots and
the best/worst panels (`write_report`).

    result = semseg.evaluate.evaluation.evaluate(predictor, examples, total, num_vis=8)
    write_report(result, "runs/camvid/eval/val", predictor.labels, visualize=True)
"""

from pathlib import Path

import numpy as np

from semseg.base.files import write_image, write_json, write_text
from semseg.evaluate import plots
from semseg.evaluate.metrics import format_table
from semseg.predict.visualization import comparison_panel


def write_confusion_csv(matrix, class_names, path):
    """Pixel counts, rows truth and columns prediction, with a header row and column."""
    lines = ["truth\\prediction," + ",".join(class_names)]
    for name, row in zip(class_names, np.asarray(matrix)):
        lines.append(name + "," + ",".join(str(int(value)) for value in row))
    write_text(path, "\n".join(lines) + "\n")


def format_report(metrics):
    """The Markdown report: summary, cost and speed, per-class table, tables per group."""

    def number(value, digits=2, scale=1.0):
        return "n/a" if value is None else f"{value * scale:.{digits}f}"

    lines = [f"# Evaluation on `{metrics.get('split', '?')}` ({metrics['num_examples']} images)"]
    lines.append("")
    summary = [
        ("mIoU (%)", number(metrics["mIoU"], scale=100)),
        ("mAcc (%)", number(metrics["mAcc"], scale=100)),
        ("aAcc (%)", number(metrics["aAcc"], scale=100)),
    ]
    if "params" in metrics:
        summary += [
            ("model", metrics.get("model", "?")),
            (
                "parameters (trainable / total)",
                f"{metrics['params']['trainable']:,} / {metrics['params']['total']:,}",
            ),
            ("GFLOPs (= 2 x GMACs)", number(metrics["flops"], scale=1e-9)),
            ("GMACs", number(metrics["macs"], scale=1e-9)),
        ]
    if "latency_ms" in metrics:
        latency = metrics["latency_ms"]
        summary += [
            ("image size (H x W)", " x ".join(str(size) for size in metrics["image_size"])),
            (
                "latency batch 1 (ms): mean / p50 / p95",
                f"{latency['mean']:.1f} / {latency['p50']:.1f} / {latency['p95']:.1f}",
            ),
            ("FPS (batch 1, median)", f"{metrics['fps']:.1f}"),
            ("device", f"{metrics['device']}, {metrics['threads']} threads"),
        ]
    if "throughput" in metrics:
        throughput = metrics["throughput"]
        summary.append(
            (f"throughput batch {throughput['batch_size']} (images/s)", f"{throughput['fps']:.1f}")
        )
    if metrics.get("tta"):
        summary.append(("test-time augmentation", str(metrics["tta"])))
    lines += ["| measure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in summary]
    lines += ["", "## Per class", "", format_table(metrics)]
    for value, group in metrics.get("groups", {}).items():
        lines += [
            "",
            f"## {metrics.get('group_by', 'group')} = {value} ({group['num_examples']} images)",
            "",
            format_table(group),
        ]
    return "\n".join(lines) + "\n"


def write_report(result, output_dir, labels, visualize=False):
    """Writes the evaluation outputs into `output_dir`.

    Files: `metrics.json`, `report.md`, `confusion_matrix.csv`,
    `confusion_matrix.png` (row-normalised), `per_class_iou.png`, and with
    `visualize` `vis/best_NN_*.png` and `vis/worst_NN_*.png` panels
    (image | truth | prediction | error, with a legend).
    """
    output_dir = Path(output_dir)
    metrics = result.metrics
    write_json(output_dir / "metrics.json", metrics)
    write_text(output_dir / "report.md", format_report(metrics))
    write_confusion_csv(result.confusion, labels.class_names, output_dir / "confusion_matrix.csv")
    plots.confusion_heatmap(
        result.confusion,
        labels.class_names,
        output_dir / "confusion_matrix.png",
        title=f"Confusion matrix, {metrics.get('split', '')} (rows sum to 1)",
    )
    plots.per_class_iou_bars(
        metrics["per_class"],
        labels.palette,
        output_dir / "per_class_iou.png",
        title=f"Per-class IoU, {metrics.get('split', '')}: mIoU {100 * (metrics['mIoU'] or 0):.1f}",
    )
    if visualize:
        for old in (output_dir / "vis").glob("*.png"):
            old.unlink()
        for kind, examples in (("best", result.best), ("worst", result.worst)):
            for rank, example in enumerate(examples, start=1):
                panel = comparison_panel(
                    example.image,
                    example.truth,
                    example.prediction,
                    labels.class_names,
                    labels.palette,
                    title=f"{example.file_name}: mIoU {100 * example.score:.1f} "
                    "(errors: red = wrong, grey = void)",
                )
                name = f"{kind}_{rank:02d}_{_safe_name(example.file_name)}.png"
                write_image(output_dir / "vis" / name, panel)


def _safe_name(name):
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in name)[:80]
