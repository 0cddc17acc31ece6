"""Evaluation of a trained run on a dataset split at the labels' own resolution.

Each image is segmented by the `Predictor` (resized to the training size, logits
resized back), and a confusion matrix is accumulated over the whole split, so
memory does not grow with the split.

Example:

    predictor = Predictor.from_work_dir("runs/camvid")
    builder, _ = data.load_builder("full_semantic/camvid")
    metrics = evaluate(predictor, builder, "val", vis_dir="runs/camvid/eval/val/vis")
    print(format_table(metrics))
"""

import tqdm

from semseg import data
from semseg.files import write_image, write_json, write_text
from semseg.metrics import ConfusionMatrix, format_table, segmentation_metrics
from semseg.visualization import comparison_panel


def evaluate(predictor, builder, split, max_examples=None, vis_dir=None, num_vis=16):
    """Segments every example of `split` and measures the result.

    Args:
        predictor: `semseg.inference.Predictor`.
        builder: dataset builder of a `full_semantic` dataset (see `data.load_builder`).
        split: split name.
        max_examples: evaluate only the first N examples.
        vis_dir: when given, write image | truth | prediction panels of the first
            `num_vis` examples there as PNG files.
        num_vis: number of panels to write.

    Returns:
        dict: `mIoU`, `mAcc`, `aAcc`, `per_class`, `num_examples`, `split`
        (see `semseg.metrics.segmentation_metrics`).
    """
    total = data.num_examples(builder, split)
    examples = builder.as_dataset(split=split)
    if max_examples:
        examples = examples.take(max_examples)
        total = min(total, max_examples)
    labels = predictor.labels
    confusion = ConfusionMatrix(labels.num_classes)
    count = 0
    for example in tqdm.tqdm(examples.as_numpy_iterator(), total=total, desc=f"eval {split}"):
        truth = example["mask"][..., 0]
        prediction = predictor.predict(example["image"])
        confusion.update(truth, prediction)
        if vis_dir is not None and count < num_vis:
            name = example["file_name"].decode()
            panel = comparison_panel(
                example["image"], truth, prediction, labels.class_names, labels.palette
            )
            write_image(f"{vis_dir}/{count:04d}_{name}.png", panel)
        count += 1
    metrics = segmentation_metrics(confusion.matrix, labels.class_names)
    metrics.update(num_examples=count, split=split)
    return metrics


def write_report(metrics, output_dir):
    """Writes `metrics.json` and `report.md` (the per-class table) into `output_dir`."""
    write_json(f"{output_dir}/metrics.json", metrics)
    title = f"# Evaluation on split `{metrics['split']}` ({metrics['num_examples']} images)"
    write_text(f"{output_dir}/report.md", f"{title}\n\n{format_table(metrics)}\n")
