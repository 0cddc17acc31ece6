"""Training with `model.fit`: optimiser, schedule, loss, callbacks and the work dir.

Example:

    config = RunConfig(work_dir="runs/camvid", dataset="full_semantic/camvid",
                       image_size=(360, 480), epochs=2)
    history = train(config)
"""

import dataclasses
import json
import logging
import math

import keras
import tensorflow as tf

import models
from semseg import data, losses
from semseg.errors import InputError
from semseg.files import atomic_path, write_json
from semseg.metrics import mean_iou_metric
from semseg.run_config import Run, load_run, save_run

logger = logging.getLogger(__name__)


def learning_rate_schedule(config, total_steps):
    """The learning rate as a Keras schedule over `total_steps` optimiser steps."""
    if config.schedule == "poly":
        return keras.optimizers.schedules.PolynomialDecay(
            config.learning_rate, decay_steps=total_steps, end_learning_rate=0.0, power=0.9
        )
    if config.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, total_steps)
    return config.learning_rate


def build_optimizer(config, total_steps):
    """SGD with momentum, AdamW or Adam with the configured schedule and weight decay."""
    learning_rate = learning_rate_schedule(config, total_steps)
    weight_decay = config.weight_decay or None
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate, momentum=config.momentum, weight_decay=weight_decay
        )
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay)
    return keras.optimizers.Adam(learning_rate, weight_decay=weight_decay)


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
        if value is not None and value > self.best:
            logger.info("epoch %d: %s improved to %.4f", epoch + 1, self.monitor, value)
            self.best = float(value)
            self._save("best.keras")
            write_json(
                self.directory / "best.json",
                {"epoch": epoch + 1, "monitor": self.monitor, "value": self.best},
            )


def _with_aux_targets(dataset):
    return dataset.map(
        lambda images, masks: (images, {"logits": masks, "aux_logits": masks}),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def check_work_dir(config):
    """Refuses to mix two runs in one work dir.

    A work dir with an unfinished run (a `backup/` folder) is resumed only with
    the same settings; one with a finished run is never overwritten.
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


def train(config):
    """Trains `config.model` on `config.dataset` and fills `config.work_dir`.

    Args:
        config: `RunConfig`.

    Returns:
        `keras.callbacks.History` of the epochs run in this call.
    """
    check_work_dir(config)
    keras.utils.set_random_seed(config.seed)
    builder, labels = data.load_builder(config.dataset, config.data_dir)
    channels = data.num_channels(builder)
    train_batches, steps_in_split = data.train_dataset(
        builder,
        config.train_split,
        config.image_size,
        config.batch_size,
        augment=config.augment,
        scale_range=config.scale_range,
        seed=config.seed,
    )
    val_batches = data.eval_dataset(builder, config.val_split, config.image_size, config.batch_size)
    steps_per_epoch = config.steps_per_epoch or steps_in_split

    use_aux = config.aux_weight > 0
    model = models.build_model(
        config.model,
        labels.num_classes,
        input_shape=(None, None, channels),
        **({"aux_head": True} if use_aux else {}),
    )
    loss = losses.build_loss(config.loss)
    optimizer = build_optimizer(config, steps_per_epoch * config.epochs)
    if use_aux:
        model.compile(
            optimizer=optimizer,
            loss={"logits": loss, "aux_logits": losses.build_loss(config.loss)},
            loss_weights={"logits": 1.0, "aux_logits": config.aux_weight},
            metrics={"logits": [mean_iou_metric(labels.num_classes)]},
        )
        train_batches = _with_aux_targets(train_batches)
        val_batches = _with_aux_targets(val_batches)
        monitor = "val_logits_mean_iou"
    else:
        model.compile(optimizer=optimizer, loss=loss, metrics=[mean_iou_metric(labels.num_classes)])
        monitor = "val_mean_iou"

    work_path = config.work_path
    work_path.mkdir(parents=True, exist_ok=True)
    save_run(Run(config=config, labels=labels, num_channels=channels))
    logger.info(
        "training %s on %s: %d classes, %d steps per epoch, %d epochs",
        config.model,
        config.dataset,
        labels.num_classes,
        steps_per_epoch,
        config.epochs,
    )
    callbacks = [
        keras.callbacks.BackupAndRestore(str(work_path / "backup")),
        SaveCheckpoints(work_path / "checkpoints", monitor),
        keras.callbacks.CSVLogger(str(work_path / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(work_path / "logs"), write_graph=False),
    ]
    return model.fit(
        train_batches,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=val_batches,
        callbacks=callbacks,
        shuffle=False,  # the dataset is shuffled by tf.data
    )
