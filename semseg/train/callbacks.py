"""Keras callbacks of a training run: checkpoints, NaN guard, schedule logs, pictures.

`semseg.train.training.train` puts them in this order, which matters at the end of
an epoch: the logged values first, then the checkpoints, `history.csv`, the
curves and TensorBoard, and last the backup that commits the epoch (see
`semseg.train.backup`).

Example:

    callbacks = [StopOnNaN(work_dir), AveragedWeights(), LogLearningRate(),
                 SaveCheckpoints(work_dir / "checkpoints", "val_mean_iou")]
"""

import csv
import io
import json
import logging
import math

import keras
import numpy as np
import tensorflow as tf

from semseg.base import logits as logits_contract
from semseg.base.files import atomic_path, write_json
from semseg.evaluate.plots import training_curves
from semseg.predict.visualization import comparison_panel

logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message says where and what was kept."""


class AveragedWeights(keras.callbacks.SwapEMAWeights):
    """Puts the optimizer's moving average of the weights (`use_ema=True`,
    `semseg.train.optimizers`) in the model for validation and from the end of each epoch to
    the start of the next, so that the checkpoints and the backup after it hold the
    averaged weights.

    Keras's `SwapEMAWeights(swap_on_epoch=True)`, made to resume: the backup of an epoch
    holds the average in the model and the raw weights in the optimizer's average slots,
    so a resumed run starts with them swapped and swaps them back before training.

    Args:
        resumed: whether `fit` starts from a restored backup.
    """

    def __init__(self, resumed=False):
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = resumed


class SaveCheckpoints(keras.callbacks.Callback):
    """Saves `last.keras` every epoch and `best.keras` when `monitor` improves.

    Unlike `keras.callbacks.ModelCheckpoint`, each file is written to a
    temporary name and renamed, so a crash mid-save never leaves a corrupt
    best or last checkpoint behind. `best.json` records the best epoch and
    value, so a resumed run keeps comparing against the true best.

    Args:
        directory: `Path` of the folder for the files.
        monitor: the log key to maximise, e.g. `"val_mean_iou"`.
    """

    def __init__(self, directory, monitor):
        super().__init__()
        self.directory = directory
        self.monitor = monitor
        self.best = -math.inf
        best_file = directory / "best.json"
        if best_file.is_file():
            self.best = json.loads(best_file.read_text())["value"]

    def _save(self, name):
        with atomic_path(self.directory / name) as temp_path:
            self.model.save(temp_path)

    def on_epoch_end(self, epoch, logs=None):
        self._save("last.keras")
        value = (logs or {}).get(self.monitor)
        # An epoch whose validation loss is not finite is never the best, whatever its mIoU.
        val_loss = (logs or {}).get("val_loss")
        finite = val_loss is None or math.isfinite(float(val_loss))
        if finite and value is not None and value > self.best:
            logger.info("epoch %d: %s improved to %.4f", epoch + 1, self.monitor, value)
            self.best = float(value)
            self._save("best.keras")
            write_json(
                self.directory / "best.json",
                {"epoch": epoch + 1, "monitor": self.monitor, "value": self.best},
            )


class StopOnNaN(keras.callbacks.Callback):
    """Stops training at the first step whose loss is NaN or infinite, or at the end of
    an epoch whose validation loss or weights are.

    It raises `TrainingDiverged` from inside the step loop, or from the first
    end-of-epoch callback (it comes first in the list), so no checkpoint callback
    runs: the checkpoints, `history.csv` and the backup keep the last good epoch
    (`keras.callbacks.TerminateOnNaN` would let them save the NaN weights of the
    broken epoch).

    Args:
        work_dir: the run's work dir, named in the message.
    """

    def __init__(self, work_dir):
        super().__init__()
        self.work_dir = work_dir
        self.epoch = 0
        self.unsettled = None  # (epoch, val_loss) of a non-finite validation let pass

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        steps = self.params.get("steps")
        of_steps = f" of {steps}" if steps else ""
        self._stop(
            f"the loss is {float(loss)} at epoch {self.epoch + 1}, step {batch + 1}{of_steps}"
        )

    def on_epoch_end(self, epoch, logs=None):
        broken = sum(
            1
            for weight in self.model.weights
            if not np.isfinite(keras.ops.convert_to_numpy(weight)).all()
        )
        if broken:
            self._stop(f"{broken} weight tensor(s) are not finite after epoch {epoch + 1}")
        val_loss = (logs or {}).get("val_loss")
        if val_loss is None or math.isfinite(float(val_loss)):
            self.unsettled = None
            return
        self.unsettled = (epoch + 1, float(val_loss))
        if batch_norm_settled(self.model):
            self._stop(f"the validation loss is {float(val_loss)} after epoch {epoch + 1}")
        # Finite weights, unsettled batch-norm statistics: early validation overflows.
        logger.warning(
            "epoch %d: the validation loss is %s with finite weights, before the batch-norm "
            "moving statistics settled; not treated as divergence yet",
            epoch + 1,
            float(val_loss),
        )

    def on_train_end(self, logs=None):
        # The settling allowance delays the verdict, never skips it: a run that ends on
        # a non-finite validation loss has not produced a usable model.
        if self.unsettled is not None:
            epoch, val_loss = self.unsettled
            raise TrainingDiverged(
                f"training ended on epoch {epoch}, whose validation loss is {val_loss} (the "
                "batch-norm statistics never settled): the last checkpoint is not a usable "
                f"model ({self.work_dir}); try a lower --learning_rate, a --warmup_steps or "
                "more --epochs"
            )

    def _stop(self, where):
        if self.epoch == 0:
            raise TrainingDiverged(
                f"training diverged: {where}, before any epoch completed, so nothing was "
                "saved; try a lower --learning_rate or a --warmup_steps"
            )
        raise TrainingDiverged(
            f"training diverged: {where}. Kept the state after epoch {self.epoch} in "
            f"{self.work_dir / 'checkpoints' / 'last.keras'} and {self.work_dir / 'backup'} "
            "(rerunning the same command resumes from there); to change the recipe, e.g. "
            "a lower --learning_rate or a --warmup_steps, train into a new --work_dir "
            f"with --init_from {self.work_dir}"
        )


def optimizer_step(optimizer):
    """The number of steps `optimizer` has applied (an int, under any strategy)."""
    return int(optimizer.iterations.numpy())


def current_learning_rate(optimizer):
    """The learning rate `optimizer` applies at its next step (a float)."""
    return float(np.asarray(keras.ops.convert_to_numpy(optimizer.learning_rate)))


class LogLearningRate(keras.callbacks.Callback):
    """Adds `learning_rate` and `step` (optimizer steps so far) to each epoch's logs.

    They land in `history.csv`, the Keras `History` and TensorBoard, and show
    the schedule carrying on across a resume.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = current_learning_rate(self.model.optimizer)
            logs["step"] = optimizer_step(self.model.optimizer)


class ExplainEarlyValidation(keras.callbacks.Callback):
    """Says once why the first validations of a short run look far worse than training.

    Validation uses the batch-norm moving statistics, which start at mean 0 and
    variance 1 and keep `momentum ** steps` of that start (0.9 ** 5 = 59%): after a
    few steps `val_loss` can be in the thousands while the training loss is ~2.
    """

    def __init__(self):
        super().__init__()
        self._said = False

    def on_test_begin(self, logs=None):
        if self._said or batch_norm_settled(self.model):
            return
        self._said = True
        momentum = _batch_norm_momentum(self.model)
        steps = optimizer_step(self.model.optimizer)
        settled = math.ceil(math.log(SETTLED_SHARE) / math.log(momentum))
        logger.info(
            "validating after %d optimizer step(s): the batch-norm moving statistics still hold "
            "%.0f%% of their initial mean 0 / variance 1 (momentum %g), so val_loss and "
            "val_mean_iou are far worse than the model until about step %d",
            steps,
            100 * momentum**steps,
            momentum,
            settled,
        )


# The share of their initial values below which batch-norm moving statistics count as
# settled (after 44 steps at momentum 0.9).
SETTLED_SHARE = 0.01


def batch_norm_settled(model):
    """Whether `model`'s batch-norm moving statistics have left their initial mean 0 and
    variance 1 behind (`momentum ** steps < SETTLED_SHARE`); True without batch norm."""
    momentum = _batch_norm_momentum(model)
    if momentum is None or not 0 < momentum < 1:
        return True
    return momentum ** optimizer_step(model.optimizer) < SETTLED_SHARE


def _batch_norm_momentum(model):
    """The momentum of the first `BatchNormalization` layer in `model` (nested models
    included), or None."""
    pending = [model]
    while pending:
        layer = pending.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            return float(layer.momentum)
        pending.extend(reversed(getattr(layer, "layers", [])))
    return None


class StopAtStep(keras.callbacks.Callback):
    """Ends training after `total_steps` optimiser steps (`train.py --steps`).

    The epoch in which the last step falls ends early and is validated and
    saved like any other.

    Args:
        total_steps: int, optimiser steps of the whole run.
        steps_per_epoch: int, steps of a full epoch.
    """

    def __init__(self, total_steps, steps_per_epoch):
        super().__init__()
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch * self.steps_per_epoch + batch + 1 >= self.total_steps:
            self.model.stop_training = True


class TensorBoard(keras.callbacks.TensorBoard):
    """`keras.callbacks.TensorBoard` that flushes its event files after every epoch.

    A run killed later still has every completed epoch in TensorBoard (the
    writers otherwise hold events for up to two minutes).
    """

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        for writer in getattr(self, "_writers", {}).values():
            writer.flush()


def predicted_classes(logits):
    """int32 class ids `(B, H, W)` of logits `(B, H, W, C)` (`semseg.base.logits.class_ids`)."""
    logits = keras.ops.convert_to_numpy(logits).astype("float32")
    return np.asarray(logits_contract.class_ids(logits), dtype=np.int32)


class PredictionImages(keras.callbacks.Callback):
    """Writes image | truth | prediction | errors panels of a fixed batch to TensorBoard.

    Every `every` epochs and after the last one, the model predicts the same
    validation images; the panels (`semseg.predict.visualization.comparison_panel`)
    appear under the Images tab as `predictions`, one slider step per epoch.

    Args:
        images: float32 `(N, H, W, C)` pixels in 0..255.
        masks: int `(N, H, W)` class ids (255 ignored).
        labels: `LabelSpec` of the dataset (names and palette).
        log_dir: `Path` of the TensorBoard run folder to write.
        every: int >= 1, epochs between two writes.
    """

    def __init__(self, images, masks, labels, log_dir, every):
        super().__init__()
        self.images = np.asarray(images, dtype=np.float32)
        self.masks = np.asarray(masks)
        self.labels = labels
        self.log_dir = log_dir
        self.every = every
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 == self.params.get("epochs") or self.model.stop_training
        if (epoch + 1) % self.every and not last:
            return
        predictions = predicted_classes(
            logits_contract.logits_of(self.model(self.images, training=False))
        )
        panels = [
            comparison_panel(
                image,
                mask,
                prediction,
                self.labels.class_names,
                self.labels.palette,
                title=f"epoch {epoch + 1}",
            )
            for image, mask, prediction in zip(self.images, self.masks, predictions)
        ]
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        with self._writer.as_default():
            tf.summary.image("predictions", _pad_to_one_size(panels), step=epoch, max_outputs=16)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


def _pad_to_one_size(panels):
    """Stacks RGB panels `(h, w, 3)` into `(N, H, W, 3)`, padding each with white."""
    height = max(panel.shape[0] for panel in panels)
    width = max(panel.shape[1] for panel in panels)
    batch = np.full((len(panels), height, width, 3), 255, dtype=np.uint8)
    for index, panel in enumerate(panels):
        batch[index, : panel.shape[0], : panel.shape[1]] = panel
    return batch


def read_history(path):
    """`history.csv` as `{column: [float per epoch]}` (`epoch` as ints); empty cells are NaN."""
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    history = {}
    for column in rows[0] if rows else []:
        values = []
        for row in rows:
            try:
                values.append(float(row[column]))
            except (TypeError, ValueError):
                values.append(math.nan)
        history[column] = values
    if "epoch" in history:
        history["epoch"] = [int(value) for value in history["epoch"]]
    return history


class TrainingCurves(keras.callbacks.Callback):
    """Redraws `training_curves.png` (loss and mIoU per epoch) from `history.csv` each epoch.

    Args:
        history_path: `Path` of the run's `history.csv` (written before this runs).
        path: `Path` of the PNG.
        title: figure title.
    """

    def __init__(self, history_path, path, title):
        super().__init__()
        self.history_path = history_path
        self.path = path
        self.title = title

    def draw(self):
        if not self.history_path.is_file():
            return
        history = read_history(self.history_path)
        if history.get("epoch"):
            training_curves(history, self.path, title=self.title)

    def on_epoch_end(self, epoch, logs=None):
        self.draw()
