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
from semseg.metrics import BinaryMeanIoU, mean_iou_metric
from semseg.run_config import Run, load_run, parse_class_weights, save_run

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


def binary_mode(config, labels):
    """Whether the run trains a one-logit binary model, checking the dataset fits.

    Binary mode is asked for by `--binary` or implied by a binary loss
    (`bce`, `binary_focal`, `lovasz_hinge`); it needs exactly 2 classes (class 1
    is the foreground).
    """
    binary = config.binary or losses.is_binary_spec(config.loss)
    if binary and labels.num_classes != 2:
        reason = "--binary" if config.binary else f"--loss {config.loss}"
        raise InputError(
            f"{reason}: binary segmentation needs a dataset with exactly 2 classes; "
            f"{config.dataset} has {labels.num_classes}: {', '.join(labels.class_names)}"
        )
    return binary


def resolve_class_weights(config, builder, labels):
    """The `--class_weights` of a run as one float per class, or `None`.

    `auto` is inverse class frequency and `median` median frequency balancing,
    both measured on the training split by `full_semantic.stats`; an explicit
    list must have one non-negative number per class.
    """
    value = parse_class_weights(config.class_weights)
    if value is None:
        return None
    if isinstance(value, list):
        if len(value) != labels.num_classes:
            raise InputError(
                f"--class_weights: expected {labels.num_classes} numbers, one per class "
                f"({', '.join(labels.class_names)}). Received: {len(value)}"
            )
        return value
    from full_semantic import stats

    statistics = stats.class_statistics(builder, config.train_split)
    method = "inverse" if value == "auto" else "median"
    weights = stats.class_weights(statistics.pixels, method, image_pixels=statistics.image_pixels)
    weights = [float(weight) for weight in weights]
    logger.info(
        "class weights (%s, split %s): %s",
        method,
        config.train_split,
        ", ".join(f"{name} {weight:.3f}" for name, weight in zip(labels.class_names, weights)),
    )
    return weights


def build_run_model(config, num_outputs, channels, aux_head):
    """Builds `config.model` for the run, turning a bad model option into an `InputError`."""
    options = {"aux_head": True} if aux_head else {}
    if config.weights is not None:
        options["weights"] = config.weights
    if config.output_stride is not None:
        options["output_stride"] = config.output_stride
    try:
        return models.build_model(
            config.model, num_outputs, input_shape=(None, None, channels), **options
        )
    except ValueError as error:
        raise InputError(f"--model {config.model}: {error}") from error


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
    binary = binary_mode(config, labels)
    class_weights = resolve_class_weights(config, builder, labels)
    loss = losses.build_loss(config.loss, class_weights=class_weights, binary=binary)
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
    num_outputs = 1 if binary else labels.num_classes
    model = build_run_model(config, num_outputs, channels, aux_head=use_aux)
    optimizer = build_optimizer(config, steps_per_epoch * config.epochs)
    metric = BinaryMeanIoU() if binary else mean_iou_metric(labels.num_classes)
    if use_aux:
        aux_loss = losses.build_loss(config.loss, class_weights=class_weights, binary=binary)
        model.compile(
            optimizer=optimizer,
            loss={"logits": loss, "aux_logits": aux_loss},
            loss_weights={"logits": 1.0, "aux_logits": config.aux_weight},
            metrics={"logits": [metric]},
        )
        train_batches = _with_aux_targets(train_batches)
        val_batches = _with_aux_targets(val_batches)
        monitor = "val_logits_mean_iou"
    else:
        model.compile(optimizer=optimizer, loss=loss, metrics=[metric])
        monitor = "val_mean_iou"

    work_path = config.work_path
    work_path.mkdir(parents=True, exist_ok=True)
    save_run(Run(config=config, labels=labels, num_channels=channels))
    logger.info(
        "training %s on %s: %d classes%s, %d steps per epoch, %d epochs",
        config.model,
        config.dataset,
        labels.num_classes,
        " (binary, one logit)" if binary else "",
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
