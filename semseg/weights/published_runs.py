"""Published weights on this machine: the cached file of a name, and the work dir a
Cityscapes model is converted into once, which eval.py, the predictors and export.py
read (`--weights NAME`).

The table of names is `semseg.config.published_weights`; files are fetched by
`semseg.weights.download` (sha256-prefix checked, renamed into place, reused offline).

Example:

    path = weights_file("pidnet_s_cityscapes")   # downloads on first use
    work_dir = published_run("pidnet_s_cityscapes")
"""

from pathlib import Path

from semseg.base.errors import InputError
from semseg.config import workspace
from semseg.config.published_weights import PUBLISHED, lookup
from semseg.weights.download import cache_dir, fetch


def cached_file(entry):
    """Where the file of `entry` is (or will be) in the cache."""
    return cache_dir() / "weights" / entry.file_name


def weights_file(weights, progress=True):
    """The local file of a `--weights` value: a published name's cached (or downloaded)
    file, else the value itself as a `Path`."""
    entry = lookup(weights)
    if entry is None:
        return Path(weights)
    return fetch(entry.url, cached_file(entry), entry.sha256_prefix, progress=progress)


def published_run(name):
    """The work dir of a published Cityscapes model, converted once into the cache.

    Args:
        name: a name of `PUBLISHED` holding a segmentation model.

    Returns:
        `Path` of `$SEMSEG_CACHE/runs/NAME` (config.json, checkpoints/best.keras,
        weights.json).

    Raises:
        InputError: for an unknown name, an ImageNet backbone, or a failed download.
    """
    entry = lookup(name)
    if entry is None:
        raise InputError(
            f"--weights {name}: not a published model; one of {', '.join(PUBLISHED)} "
            "(python convert_weights.py --list)"
        )
    if entry.holds == "imagenet":
        raise InputError(
            f"--weights {name}: an ImageNet backbone without a segmentation head; fine-tune "
            f"it on your data (python train.py --weights {name} ...), or predict with "
            f"{entry.model}_cityscapes"
        )
    work_dir = cache_dir() / "runs" / name
    if (work_dir / "checkpoints" / "best.keras").is_file():
        return work_dir
    from semseg.weights.convert import convert_checkpoint

    convert_checkpoint(None, name, work_dir)
    return work_dir


def resolve_work_dir(work_dir, weights=None, runs_dir=workspace.RUNS_DIR):
    """`--work_dir` or `--weights NAME` of eval.py, the predictors and export.py: the
    converted run of a published name (converted on first use, which loads TensorFlow),
    else `semseg.config.workspace.resolve_work_dir`."""
    if weights is None:
        return workspace.resolve_work_dir(work_dir, runs_dir)
    if work_dir is not None:
        raise InputError("give --work_dir (your run) or --weights NAME (a published one)")
    return str(published_run(weights))
