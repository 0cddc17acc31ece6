"""A checkpoint made into a run's work dir once: `convert_weights.py` and the Cityscapes
names of `--weights` (`convert_checkpoint`), with the class table of the dataset the
file was trained on (Cityscapes' 19 train ids, CamVid's 11 classes).
"""

import os
from pathlib import Path

from full_semantic.class_tables import IMAGE_SIZES, class_table
from semseg.base.errors import InputError
from semseg.base.labels import LabelSpec


# Class tables of the authors' released segmentation models, and the size they run at.
def class_set_labels(class_set):
    """`LabelSpec` of a released model's classes: `"cityscapes"` (19) or `"camvid"` (11)."""
    return LabelSpec(*class_table(class_set))


def file_class_count(state, path):
    """Classes of an authors' segmentation file (its classifier's outputs).

    Raises:
        InputError: for an ImageNet classifier file (no segmentation head).
    """
    head = state.get("final_layer.conv2.weight")
    if head is None:
        raise InputError(
            f"{path}: no segmentation head (final_layer) in the file, an ImageNet classifier? "
            "Fine-tune from it with train.py --weights instead"
        )
    return int(head.shape[0])


def convert_checkpoint(
    model_name, weights, output, class_set=None, dataset=None, data_dir=None, image_size=None
):
    """Writes a work dir that predict.py, predict_video.py, eval.py and export.py read.

    The work dir holds `config.json` (model, classes and palette, inference size),
    `checkpoints/best.keras` (the converted model, inference heads only) and
    `weights.json` (what loaded). It is written under a temporary name and renamed.

    Args:
        model_name: a DDRNet or PIDNet name of `models.MODELS`; `None` when `weights`
            is a published name (its model).
        weights: the authors' or MMSegmentation's `.pth`/`.pt` segmentation file, or
            a name of `semseg.config.published_weights.PUBLISHED` (downloaded once).
        output: the new work dir (must not exist, or be empty).
        class_set: `"cityscapes"` or `"camvid"` for the released models' classes;
            `None` takes them from `dataset`, or else names them by id.
        dataset: optional built `full_semantic/CONFIG` the model was trained on
            (classes, and what eval.py and export.py run on).
        data_dir: its TFDS data dir.
        image_size: `(H, W)` inference size; default the class set's or 512x512.

    Returns:
        `(path, report)`: the work dir and the `WeightTransfer`.
    """
    import shutil
    import tempfile

    import keras

    import models
    from semseg.base.files import write_json
    from semseg.config import published_weights
    from semseg.config.run import Run, save_run
    from semseg.config.run_config import RunConfig
    from semseg.weights import published_runs
    from semseg.weights.pretrained import (
        TORCH_MODELS,
        load_state_dict,
        read_state,
        weights_kind,
    )

    model_name = published_weights.implied_model(weights, model_name)
    if model_name is None:
        raise InputError(f"--model: which model is {weights} for? One of {', '.join(TORCH_MODELS)}")
    if model_name not in TORCH_MODELS:
        raise InputError(
            f"--model {model_name}: authors' checkpoints exist for {', '.join(TORCH_MODELS)}"
        )
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise InputError(f"--output {output}: already exists and is not an empty folder")
    if weights_kind(weights) != "torch":
        raise InputError(
            f"--weights {weights}: convert_weights.py reads the authors' and MMSegmentation's "
            ".pth/.pt files"
        )
    path = published_runs.weights_file(weights)
    family = "ddrnet" if model_name.startswith("ddrnet") else "pidnet"
    state = read_state(path, family)
    num_classes = file_class_count(state, path)
    if dataset:
        from semseg.data import data

        _, labels = data.load_builder(dataset, data_dir)
    elif class_set:
        labels = class_set_labels(class_set)
    elif num_classes == 19:
        class_set, labels = "cityscapes", class_set_labels("cityscapes")
    elif num_classes == 11:
        class_set, labels = "camvid", class_set_labels("camvid")
    else:
        labels = LabelSpec([f"class_{index}" for index in range(num_classes)])
    if labels.num_classes != num_classes:
        raise InputError(
            f"{path}: the file has {num_classes} classes, the class list "
            f"{dataset or class_set} has {labels.num_classes}"
        )
    # MMSeg's PIDHead upsamples its logits with align_corners=True, its DDRHead without.
    align_corners = state.layout == "mmseg" and family == "pidnet"
    model = models.build_model(
        model_name, num_classes, padding="symmetric", align_corners=align_corners
    )
    report = load_state_dict(model, state, path)
    if report.skipped or report.missing:
        raise InputError(
            f"{path}: not a complete {model_name} segmentation model ({report.summary()})"
        )
    size = tuple(image_size or IMAGE_SIZES.get(class_set, (512, 512)))
    config = RunConfig(
        work_dir=str(output),
        dataset=dataset or f"full_semantic/{class_set or 'converted'}",
        data_dir=data_dir,
        model=model_name,
        image_size=size,
        weights=str(weights),
    )
    details = {"converted_from": str(path), "layout": state.layout, "keras": keras.__version__}
    entry = published_weights.lookup(weights)
    if entry is not None:
        details["published"] = {"url": entry.url, "sha256_prefix": entry.sha256_prefix}
    output.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.tmp-"))
    umask = os.umask(0)
    os.umask(umask)
    temp.chmod(0o777 & ~umask)  # a folder as mkdir makes it (mkdtemp's is private)
    try:
        (temp / "checkpoints").mkdir()
        model.save(temp / "checkpoints" / "best.keras")
        save_run(Run(config=config, labels=labels, num_channels=3), details, temp)
        write_json(temp / "weights.json", report.to_dict())
        if output.exists():
            output.rmdir()
        temp.rename(output)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return output, report
