"""Resuming a killed run: the training state of the last completed epoch, and logs cut to it.

`TrainingBackup` saves the model and optimizer variables (weights, momentum,
the step counter that drives the learning-rate schedule, the loss scale of
float16 training) at the end of every epoch into `W/backup/`:

    W/backup/epoch-0007.weights.h5   the state after epoch 7
    W/backup/state.json              {"epoch": 7, "step": 700, "weights": "epoch-0007.weights.h5"}

The folder exists from the start of training (`state.json` of epoch 0, no weights)
until it ends normally, so a work dir with `backup/` is an unfinished run whatever
instant a kill hits, and one without it (but with `config.json` and
`checkpoints/last.keras`) a finished one: the checkpoints written at an epoch's
end before the backup commits it never make a killed run look finished.

The weights file is written under a temporary name and renamed, then
`state.json` is replaced (the commit), then older weight files are removed:
a kill at any moment leaves a consistent state behind. It does the job of
`keras.callbacks.BackupAndRestore`, which writes its two files in place and in
the wrong order for that, and lets every worker of a multi-worker run save
(the others into their temporary dir). The backup is removed when training
ends normally and kept when it fails, e.g. on a NaN loss, so rerunning the
same command resumes.

An epoch's row in `history.csv` and its TensorBoard events are written before
the backup commits it, so after a kill they may exist for an epoch the resumed
run trains again: `trim_history` and `trim_event_files` drop them first.

Example:

    backup = TrainingBackup(work_dir / "backup")
    initial_epoch = backup.restore(model)   # 0 for a new run
    trim_history(work_dir / "history.csv", initial_epoch)
    model.fit(..., initial_epoch=initial_epoch, callbacks=[..., backup])
"""

import csv
import io
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

import keras
import tensorflow as tf

from semseg.base.errors import InputError
from semseg.base.files import write_json, write_text

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"


def read_backup(directory):
    """The committed state of a backup folder: `{"epoch", "step", "weights"}`, or `None`.

    Epoch 0 (training started, no epoch completed) has `"weights": None`.
    """
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
        epoch = int(state["epoch"])
        if epoch or state["weights"] is not None:
            str(state["weights"])
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a training backup state ({error})") from error
    return state


def completed_epochs(directory):
    """The number of epochs a backup folder has committed (0 for none or no folder)."""
    state = read_backup(directory)
    return int(state["epoch"]) if state else 0


class TrainingBackup(keras.callbacks.Callback):
    """Saves the training state every epoch; `restore` loads it back before `fit`.

    Args:
        directory: `Path` of the backup folder.
        delete_at_end: remove the folder when training ends normally.
    """

    def __init__(self, directory, delete_at_end=True):
        super().__init__()
        self.directory = Path(directory)
        self.delete_at_end = delete_at_end

    def restore(self, model):
        """Loads the last committed state into `model` and its optimizer.

        The model must be compiled; its optimizer variables are created first
        when needed.

        Returns:
            The number of completed epochs (the `initial_epoch` of `fit`), 0 without a backup.
        """
        state = read_backup(self.directory)
        if state is None or int(state["epoch"]) == 0:
            return 0
        weights = self.directory / state["weights"]
        if not weights.is_file():
            raise InputError(f"{self.directory / STATE_FILE}: names {weights}, which is missing")
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(weights)
        except (OSError, ValueError) as error:
            raise InputError(
                f"{weights}: cannot restore the training state ({error}); the run was made "
                "with other settings or the file is damaged"
            ) from error
        return int(state["epoch"])

    def on_train_begin(self, logs=None):
        # Marks the run unfinished before any checkpoint exists (see the module doc).
        if read_backup(self.directory) is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_json(self.directory / STATE_FILE, {"epoch": 0, "step": 0, "weights": None})

    def on_epoch_end(self, epoch, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        # Keras wants the `.weights.h5` ending, so the temporary name keeps it.
        temporary = self.directory / f".{uuid.uuid4().hex[:8]}.tmp.weights.h5"
        try:
            self.model.save_weights(temporary)
            os.replace(temporary, self.directory / name)
        finally:
            temporary.unlink(missing_ok=True)
        step = int(self.model.optimizer.iterations.numpy())
        write_json(self.directory / STATE_FILE, {"epoch": epoch + 1, "step": step, "weights": name})
        for path in self.directory.glob("epoch-*.weights.h5"):
            if path.name != name:
                path.unlink(missing_ok=True)

    def on_train_end(self, logs=None):
        if self.delete_at_end:
            shutil.rmtree(self.directory, ignore_errors=True)


def trim_history(path, first_epoch):
    """Keeps the rows of `history.csv` for epochs before `first_epoch` (0-based); atomic.

    A file left with no row is removed, so the next epoch writes a new header.
    """
    path = Path(path)
    if not path.is_file():
        return
    rows = list(csv.reader(io.StringIO(path.read_text())))
    if not rows:
        path.unlink()
        return
    header, body = rows[0], rows[1:]
    column = header.index("epoch") if "epoch" in header else None
    kept = [row for row in body if row and column is not None and int(row[column]) < first_epoch]
    if len(kept) == len(body):
        return
    if kept:
        logger.info(
            "history.csv: dropped %d row(s) of epochs to train again", len(body) - len(kept)
        )
        output = io.StringIO()
        csv.writer(output, lineterminator="\n").writerows([header, *kept])
        write_text(path, output.getvalue())
    else:
        path.unlink()


def trim_event_files(log_dir, first_step):
    """Drops TensorBoard summaries of steps >= `first_step` from every event file under `log_dir`.

    Keras and our callbacks log one summary per epoch with the epoch index as
    the step; events of an epoch that is trained again would otherwise show
    twice. A record cut short by a kill is dropped too. Each changed file is
    rewritten under a temporary name and renamed.
    """
    from tensorboard.compat.proto import event_pb2

    for path in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        kept, dropped = [], 0
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                event = event_pb2.Event.FromString(record.numpy())
                if event.HasField("summary") and event.step >= first_step:
                    dropped += 1
                else:
                    kept.append(record.numpy())
        except tf.errors.DataLossError:
            dropped += 1  # a record cut short by the kill
        if not dropped:
            continue
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with tf.io.TFRecordWriter(str(temporary)) as writer:
                for record in kept:
                    writer.write(record)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        logger.info("%s: dropped %d summaries of epochs to train again", path, dropped)
