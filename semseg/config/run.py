"""A run's work dir: `config.json` written by train.py and read back by every later command
(`Run`, `save_run`, `load_run`), and the rule that keeps two runs apart (`check_work_dir`).

Work dir layout:

    W/config.json            this file (+ "training": global batch, replicas, steps, versions)
    W/checkpoints/best.keras best validation mIoU
    W/checkpoints/last.keras end of the last completed epoch
    W/backup/                training state for resuming (`semseg.train.backup`)
    W/logs/                  TensorBoard: train/, validation/ scalars, predictions/ images
    W/history.csv            one row per epoch (losses, mIoU, learning_rate, step)
    W/training_curves.png    loss and mIoU per epoch, redrawn every epoch
    W/init_from.json         what `--init_from` loaded and skipped
    W/weights.json           what `--weights FILE` loaded and skipped
    W/eval/<split>/          evaluation reports
"""

import dataclasses
import json
import logging
from pathlib import Path

from semseg.base.errors import InputError
from semseg.base.files import write_json
from semseg.base.labels import LabelSpec
from semseg.config import published_weights
from semseg.config.run_config import DEFAULT_MODEL, RunConfig
from semseg.config.workspace import dataset_path, default_dataset, new_work_dir

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Run:
    """A trained run as read back from its work dir.

    Attributes:
        config: the `RunConfig` it was trained with.
        labels: class names and palette of its dataset.
        num_channels: image channels the model takes.
        dataset_build: the build it trained on (`semseg.data.data.build_record`), or `None`
            for a run that predates the record.
    """

    config: RunConfig
    labels: LabelSpec
    num_channels: int = 3
    dataset_build: dict | None = None

    def checkpoint_path(self, which="best"):
        """Path of the `best` or `last` checkpoint, or `which` itself if it is a path (a
        `.keras` file or an exported model)."""
        if which in ("best", "last"):
            path = self.config.work_path / "checkpoints" / f"{which}.keras"
        else:
            path = Path(which)
        if not path.exists():
            raise InputError(f"{path}: no checkpoint there (has the run finished an epoch?)")
        return path


def save_run(run, details=None, work_path=None):
    """Writes `config.json` into the run's work dir.

    Args:
        run: `Run`.
        details: optional dict recorded under `"training"` (what the run derived
            from its settings: global batch, replicas, steps, library versions).
        work_path: folder to write into instead of the config's work dir (the
            temporary folder of a multi-worker run's non-chief worker).
    """
    values = dataclasses.asdict(run.config)
    values.update(run.labels.to_dict())
    values["num_channels"] = run.num_channels
    if run.dataset_build:
        values["dataset_build"] = run.dataset_build
    if details:
        values["training"] = details
    write_json(Path(work_path or run.config.work_path) / "config.json", values)


def load_run(work_dir):
    """Reads a work dir's `config.json`.

    Args:
        work_dir: path of a run's work dir.

    Returns:
        `Run`. Raises `InputError` naming the file when it is missing or broken.
    """
    path = Path(work_dir) / "config.json"
    if not path.is_file():
        raise InputError(f"{path}: not found; is {work_dir} a work dir written by train.py?")
    try:
        values = json.loads(path.read_text())
        field_names = {field.name for field in dataclasses.fields(RunConfig)}
        config = RunConfig(**{key: value for key, value in values.items() if key in field_names})
        # The work dir may have moved since training: trust where config.json is.
        config.work_dir = str(Path(work_dir))
        return Run(
            config=config,
            labels=LabelSpec.from_dict(values),
            num_channels=int(values.get("num_channels", 3)),
            dataset_build=values.get("dataset_build"),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a valid run config ({error})") from error


def check_work_dir(config):
    """Refuses to mix two runs in one work dir.

    A work dir with an unfinished run (a `backup/` folder) is resumed only with
    the same settings; one with a finished run, or any other model (a
    `convert_weights.py` output), is never overwritten.
    """
    work_path = config.work_path
    if not (work_path / "config.json").is_file():
        return
    previous = load_run(work_path).config
    if (work_path / "backup").is_dir():
        changed = [
            field.name
            for field in dataclasses.fields(config)
            if field.name != "work_dir"
            and getattr(previous, field.name) != getattr(config, field.name)
        ]
        if changed:
            raise InputError(
                f"{work_path / 'config.json'}: an unfinished run with other settings is there "
                f"({', '.join(changed)} differ); resume it with the same flags or pick a new "
                "--work_dir"
            )
        logger.info("resuming the unfinished run in %s", work_path)
    elif (work_path / "checkpoints" / "last.keras").is_file():
        raise InputError(f"{work_path}: a finished run is already there; pick a new --work_dir")
    elif any((work_path / "checkpoints").glob("*.keras")) or (work_path / "weights.json").exists():
        # A converted model (convert_weights.py) or a run's checkpoint without its backup.
        raise InputError(
            f"{work_path}: holds a model (checkpoints/, weights.json) that a new run would "
            "replace; pick a new --work_dir"
        )


def config_from_flags(values):
    """The `RunConfig` of `train.py`'s flags, defaults resolved, every flag checked at once.

    Without `dataset`, the one `full_semantic` build in the data dir; without
    `work_dir`, a new `runs/<config>-<model>` (`semseg.config.workspace`). A given dataset
    must be built. No TensorFlow is imported.

    Args:
        values: dict of every `RunConfig` field (`apply_recipe`'s result); `work_dir`
            and `dataset` may be `None`.

    Returns:
        `(config, chose_work_dir)`: the `RunConfig`, and whether its work dir was chosen
        here (the command prints it).

    Raises:
        InputError: listing every missing or invalid flag, separated by `; `.
    """
    values = dict(values)
    problems = []
    try:
        if values.get("dataset"):
            if values["dataset"].count("/") == 1:
                dataset_path(values["dataset"], values.get("data_dir"))
        else:
            values["dataset"] = default_dataset(values.get("data_dir"))
    except InputError as error:
        problems.append(str(error))
        values["dataset"] = values.get("dataset") or "full_semantic/unknown"
    try:
        values["model"] = published_weights.implied_model(
            values.get("weights"), values.get("model")
        )
    except InputError as error:
        problems.append(str(error))
    values["model"] = values.get("model") or DEFAULT_MODEL
    chose_work_dir = not values.get("work_dir")
    if chose_work_dir:
        values["work_dir"] = str(new_work_dir(values["dataset"], values["model"]))
    try:
        config = RunConfig(**values)
    except InputError as error:
        problems.append(str(error))
    if problems:
        raise InputError("; ".join(problems))
    check_work_dir(config)
    return config, chose_work_dir
