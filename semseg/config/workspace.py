"""Where built datasets and runs are: the defaults of `--dataset`, `--data_dir` and `--work_dir`.

Pure file-system lookups, without TensorFlow, so that a command checks its
flags in a fraction of a second before importing it.

- Built datasets live in `DATA_DIR/BUILDER/CONFIG/VERSION/` (TFDS's layout);
  `DATA_DIR` defaults to `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`.
- `train.py` without `--dataset` takes the one `full_semantic` build there;
  without `--work_dir` it writes a new `runs/<config>-<model>` (`-2`, `-3`, ...
  when taken).
- `eval.py`, the predictors and `export.py` without `--work_dir` take the most
  recently finished run under `runs/`.

Example:

    dataset = default_dataset(None)          # "full_semantic/camvid" if it is the only build
    work_dir = new_work_dir(dataset, "ddrnet23_slim")   # Path("runs/camvid-ddrnet23_slim")
    latest = latest_run()                    # the run under runs/ that finished last
"""

import os
import re
from pathlib import Path

from semseg.base.errors import InputError

RUNS_DIR = Path("runs")
BUILDER = "full_semantic"
_VERSION = re.compile(r"\d+\.\d+\.\d+")


def default_data_dir(data_dir=None):
    """`data_dir`, else `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`, as an expanded `Path`.

    Raises:
        InputError: when that path is a file.
    """
    path = Path(data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")
    path = path.expanduser()
    if path.exists() and not path.is_dir():
        flag = (
            "--data_dir"
            if data_dir
            else "TFDS_DATA_DIR"
            if os.environ.get("TFDS_DATA_DIR")
            else "the data dir"
        )
        raise InputError(f"{flag} {path} is a file; give the TFDS data folder")
    return path


def _versions(config_dir):
    """Built versions in a config folder, oldest first."""
    versions = [
        path
        for path in config_dir.glob("*")
        if _VERSION.fullmatch(path.name) and (path / "dataset_info.json").is_file()
    ]
    return sorted(versions, key=lambda path: tuple(int(part) for part in path.name.split(".")))


def dataset_path(dataset, data_dir=None):
    """Folder of a built dataset: `DATA_DIR/BUILDER/CONFIG/VERSION`.

    Args:
        dataset: `"BUILDER/CONFIG"` or `"BUILDER/CONFIG:VERSION"`, e.g. `"full_semantic/camvid"`.
        data_dir: TFDS data dir; `None` means `default_data_dir()`.

    Returns:
        `Path` of the newest (or the requested) version.
    """
    name, _, version = dataset.partition(":")
    root = default_data_dir(data_dir) / name
    if version:
        candidates = [root / version] if (root / version / "dataset_info.json").is_file() else []
    else:
        candidates = _versions(root)
    if not candidates:
        builder_name, _, config = name.partition("/")
        raise InputError(
            f"{root}: no built dataset {dataset!r} there. Build it first: "
            f"tfds build {builder_name} --config {config} --manual_dir YOUR_EXPORT "
            f"--data_dir {data_dir or default_data_dir()}"
        )
    return candidates[-1]


def built_datasets(data_dir=None):
    """The `full_semantic/CONFIG` names built in the data dir, sorted."""
    root = default_data_dir(data_dir) / BUILDER
    if not root.is_dir():
        return []
    return sorted(f"{BUILDER}/{path.name}" for path in root.iterdir() if _versions(path))


def default_dataset(data_dir=None):
    """The one `full_semantic` build in the data dir, for `train.py` without `--dataset`."""
    where = default_data_dir(data_dir)
    builds = built_datasets(data_dir)
    if len(builds) == 1:
        return builds[0]
    if not builds:
        raise InputError(
            f"--dataset: no full_semantic build in {where}; build one first "
            "(cd full_semantic && tfds build, see the README) or pass --data_dir"
        )
    raise InputError(
        f"--dataset: {len(builds)} full_semantic builds in {where} ({', '.join(builds)}); "
        "pick one with --dataset"
    )


def new_work_dir(dataset, model, runs_dir=RUNS_DIR):
    """A free `runs/<config>-<model>` folder name: `-2`, `-3`, ... appended when taken."""
    config = dataset.partition(":")[0].rpartition("/")[2]
    base = Path(runs_dir) / f"{config}-{model}"
    path, number = base, 1
    while path.exists():
        number += 1
        path = base.with_name(f"{base.name}-{number}")
    return path


def is_finished_run(work_dir):
    """A work dir whose training ended: `config.json` and a last checkpoint, no `backup/`."""
    work_dir = Path(work_dir)
    return (
        (work_dir / "config.json").is_file()
        and (work_dir / "checkpoints" / "last.keras").is_file()
        and not (work_dir / "backup").exists()
    )


def latest_run(runs_dir=RUNS_DIR):
    """The run under `runs_dir` that finished last (newest `checkpoints/last.keras`)."""
    runs_dir = Path(runs_dir)
    finished = [path for path in sorted(runs_dir.glob("*")) if is_finished_run(path)]
    if not finished:
        raise InputError(
            f"--work_dir: no finished run under {runs_dir}/; train one (python train.py) "
            "or pass --work_dir"
        )
    return max(finished, key=lambda path: (path / "checkpoints" / "last.keras").stat().st_mtime)


def resolve_work_dir(work_dir, runs_dir=RUNS_DIR):
    """`--work_dir` of eval.py, the predictors and export.py: the given one, checked, or
    the latest finished run (printed, so the user sees which). With `--weights NAME`, see
    `semseg.weights.published_runs.resolve_work_dir`."""
    if work_dir is None:
        path = latest_run(runs_dir)
        print(f"work dir: {path} (the latest finished run under {runs_dir}/)", flush=True)
        return str(path)
    if not (Path(work_dir) / "config.json").is_file():
        raise InputError(
            f"{Path(work_dir) / 'config.json'}: not found; is {work_dir} a work dir written by "
            "train.py?"
        )
    return work_dir
