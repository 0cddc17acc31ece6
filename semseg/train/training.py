"""Training with `model.fit`: strategy, precision, optimiser, schedule, loss, callbacks, work dir.

Kept whole (~550 lines): the model, optimiser, losses, data and callbacks of a run are
assembled in one place.

One function, `train(config)`, runs a whole training from a `RunConfig`:

1. the distribution strategy (`semseg.train.distribute`): one device, all GPUs
   (`--multi_gpu`) or the workers of `TF_CONFIG`;
2. the model under the dtype policy (`--mixed_precision`: float16 on GPUs,
   bfloat16 on CPUs, float32 logits and loss; `--float64` for numerical
   checks), synchronised batch norm in every distributed run, and the weights
   of `--init_from`;
3. the optimiser (SGD with momentum, AdamW, Adam; `semseg.train.optimizers`), the
   learning-rate schedule over the whole run (`semseg.train.schedules`) and with `--ema` the
   average of the weights;
4. the state of the last completed epoch when the work dir holds an unfinished
   run (`semseg.train.backup`), so rerunning a killed command resumes it;
5. `model.fit` with the callbacks of `semseg.train.callbacks`.

Example:

    config = RunConfig(work_dir="runs/camvid", dataset="full_semantic/camvid",
                       image_size=(360, 480), epochs=2)
    history = train(config)
"""

import dataclasses
import logging
import math
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import models
from semseg.base.errors import InputError
from semseg.base.files import remove_stale_temporaries, write_json
from semseg.config.run import Run, check_work_dir, save_run
from semseg.config.run_config import parse_class_weights
from semseg.data import data
from semseg.evaluate.metrics import BinaryMeanIoU, mean_iou_metric
from semseg.losses import losses
from semseg.losses.loss_spec import is_binary_spec
from semseg.train import distribute
from semseg.train.backup import TrainingBackup, completed_epochs, trim_event_files, trim_history
from semseg.train.callbacks import (
    AveragedWeights,
    ExplainEarlyValidation,
    LogLearningRate,
    PredictionImages,
    SaveCheckpoints,
    StopAtStep,
    StopOnNaN,
    TensorBoard,
    TrainingCurves,
    current_learning_rate,
    optimizer_step,
)
from semseg.train.optimizers import build_optimizer
from semseg.weights import pretrained

logger = logging.getLogger(__name__)

# Validation images shown in TensorBoard (`--vis_every`).
NUM_VIS_IMAGES = 4
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


def binary_mode(config, labels):
    """Whether the run trains a one-logit binary model, checking the dataset fits.

    Binary mode is asked for by `--binary` or implied by a binary loss
    (`bce`, `binary_focal`, `lovasz_hinge`); it needs exactly 2 classes (class 1
    is the foreground).
    """
    if labels.num_classes < 2:
        raise InputError(
            f"{config.dataset}: {labels.num_classes} class ({', '.join(labels.class_names)}); "
            "segmentation needs at least 2 (e.g. keep 'background' out of void_labels, or "
            "label a second class)"
        )
    binary = config.binary
    if binary and labels.num_classes != 2:
        reason = f"--loss {config.loss}" if is_binary_spec(config.loss) else "--binary"
        raise InputError(
            f"{reason}: binary segmentation needs a dataset with exactly 2 classes; "
            f"{config.dataset} has {labels.num_classes}: {', '.join(labels.class_names)}"
        )
    return binary


def resolve_class_weights(config, builder, labels):
    """The `--class_weights` of a run as one float per class, or `None`.

    `auto` (or `inverse`) is inverse class frequency, `median` median frequency
    balancing and `sqrt_median` its square root, all measured on the training split by
    `semseg.data.class_stats`; an explicit list must have one non-negative number per class.
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
    from semseg.data import class_stats

    statistics = class_stats.class_statistics(builder, config.train_split)
    method = "inverse" if value == "auto" else value
    weights = class_stats.class_weights(
        statistics.pixels, method, image_pixels=statistics.image_pixels
    )
    weights = [float(weight) for weight in weights]
    logger.info(
        "class weights (%s, split %s): %s",
        method,
        config.train_split,
        ", ".join(f"{name} {weight:.3f}" for name, weight in zip(labels.class_names, weights)),
    )
    return weights


def weights_kind(weights):
    """`None` for no file (`None` or `"imagenet"`), else
    `semseg.weights.pretrained.weights_kind`."""
    if weights is None or weights == "imagenet":
        return None
    return pretrained.weights_kind(weights)


def build_run_model(config, num_outputs, channels, aux_head):
    """Builds `config.model` for the run, turning a bad model option into an `InputError`."""
    options = {"aux_head": True} if aux_head else {}
    kind = weights_kind(config.weights)
    if config.weights == "imagenet" or kind == "encoder":
        options["weights"] = config.weights  # the builder loads keras.applications weights
    if kind == "torch" and config.model in pretrained.TORCH_MODELS:
        options["padding"] = "symmetric"  # the authors' arithmetic, which their weights need
    if config.output_stride is not None:
        options["output_stride"] = config.output_stride
    try:
        return models.build_model(
            config.model, num_outputs, input_shape=(None, None, channels), **options
        )
    except ValueError as error:
        raise InputError(f"--model {config.model}: {error}") from error


def _with_head_targets(dataset, boundary):
    """`(images, masks)` -> `(images, {output name: target})` for models with training heads.

    With `boundary` (PIDNet), the D head's target is `data.boundary_labels(masks)` and
    the boundary-aware output's target is the masks.
    """

    def targets(images, masks):
        outputs = {"logits": masks, "aux_logits": masks}
        if boundary:
            outputs["boundary_logits"] = data.boundary_labels(masks)
            outputs["bas_logits"] = masks
        return images, outputs

    return dataset.map(targets, num_parallel_calls=tf.data.AUTOTUNE)


def boundary_training_model(network):
    """`network` (PIDNet with its heads) plus the output of PIDNet's boundary-aware loss.

    The extra output `bas_logits` is the main logits with the boundary logit
    appended, without gradient through the boundary (the official loss selects the
    pixels with it but does not train it there): `losses.BoundaryAwareLoss` reads it.
    The checkpoints of the run hold this model; its first output is the logits.
    """
    from models.layers import StopGradient

    outputs = dict(zip(network.output_names, network.outputs))
    boundary = StopGradient(name="boundary_no_gradient")(outputs["boundary_logits"])
    combined = keras.layers.Concatenate(dtype="float32", name="bas_logits")(
        [outputs["logits"], boundary]
    )
    return keras.Model(network.inputs, [*network.outputs, combined], name=network.name)


def precision_of(config):
    """The precision name of `semseg.runtime.precision` the run trains in.

    fp64 with `--float64`; with `--mixed_precision`, fp16 on GPUs and bf16 on CPUs
    whose hardware computes them fast, else fp32 with a warning saying why (and bf16
    or fp16 anyway with `--force_mixed_precision`); fp32 otherwise. `config.json`
    records the result (`training.precision`).
    """
    if config.float64:
        return "fp64"
    if not config.mixed_precision:
        return "fp32"
    from semseg.runtime.precision import mixed_precision_support

    supported, missing = mixed_precision_support()
    if supported:
        return supported
    emulated = "fp16" if tf.config.list_logical_devices("GPU") else "bf16"
    if config.force_mixed_precision:
        logger.warning(
            "--force_mixed_precision: training in %s although %s; slower than float32",
            emulated,
            missing,
        )
        return emulated
    logger.warning(
        "--mixed_precision: %s; training in float32 instead (--force_mixed_precision keeps %s)",
        missing,
        emulated,
    )
    return "fp32"


def memory_allocator():
    """`"tcmalloc"` when this process runs with tcmalloc (`LD_PRELOAD`), else `"malloc"`."""
    try:
        with open("/proc/self/maps") as maps:
            return "tcmalloc" if any("libtcmalloc" in line for line in maps) else "malloc"
    except OSError:
        return "malloc"


@dataclasses.dataclass
class Schedule:
    """How long a run is, in optimiser steps and `fit` epochs.

    Attributes:
        steps_per_epoch: steps between two validations.
        epochs: `fit` epochs (the last one may stop early with `--steps`).
        total_steps: optimiser steps of the whole run.
        warmup_steps: steps of linear warm-up.
    """

    steps_per_epoch: int
    epochs: int
    total_steps: int
    warmup_steps: int


def run_schedule(config, steps_in_split):
    """The `Schedule` of `config` when one pass over the training split is `steps_in_split`.

    Raises:
        InputError: when the warm-up is not shorter than the run.
    """
    steps_per_epoch = config.steps_per_epoch or steps_in_split
    if config.steps:
        total_steps = config.steps
        epochs = math.ceil(total_steps / steps_per_epoch)
    else:
        epochs = config.epochs
        total_steps = steps_per_epoch * epochs
    warmup_steps = config.warmup_steps or config.warmup_epochs * steps_per_epoch
    if warmup_steps >= total_steps:
        flag = "--warmup_steps" if config.warmup_steps else "--warmup_epochs"
        raise InputError(
            f"{flag}: the warm-up ({warmup_steps} steps) must be shorter than the run "
            f"({total_steps} steps)"
        )
    return Schedule(steps_per_epoch, epochs, total_steps, warmup_steps)


def _val_examples(val_batches, count):
    """The first `count` validation `(images, masks)` as numpy arrays, or `None` if none."""
    images, masks = [], []
    for image, mask in val_batches.unbatch().take(count):
        images.append(image.numpy())
        masks.append(mask.numpy())
    return (np.stack(images), np.stack(masks)) if images else None


def train(config):
    """Trains `config.model` on `config.dataset` and fills `config.work_dir`.

    Call it before any other TensorFlow work in the process when the run is
    distributed (`--cpu_devices`, `TF_CONFIG`): devices and collectives are set
    up first.

    Args:
        config: `RunConfig`.

    Returns:
        `keras.callbacks.History` of the epochs run in this call.

    Raises:
        InputError: for bad settings or data.
        semseg.train.callbacks.TrainingDiverged: when the loss becomes NaN or infinite.
    """
    distribution = distribute.distribution_for(config.multi_gpu, config.cpu_devices)
    if not distribution.is_chief:
        # Workers other than the chief write into a temporary folder removed at the end.
        run_path = Path(tempfile.mkdtemp(prefix=f"semseg-{distribution.task_type}"))
        try:
            return _train(config, distribution, run_path)
        finally:
            shutil.rmtree(run_path, ignore_errors=True)
    check_work_dir(config)
    if config.work_path.is_dir():
        removed = remove_stale_temporaries(config.work_path)
        if removed:
            logger.info(
                "removed %d temporary file(s) a killed run left in %s", removed, config.work_path
            )
    return _train(config, distribution, config.work_path)


def _train(config, distribution, run_path):
    chief = distribution.is_chief
    strategy = distribution.strategy
    keras.utils.set_random_seed(config.seed)
    builder, labels = data.load_builder(config.dataset, config.data_dir)
    if chief:
        warn_if_val_leaks(builder, config)
    channels = data.num_channels(builder)
    binary = binary_mode(config, labels)
    class_weights = resolve_class_weights(config, builder, labels)

    replicas = distribution.num_replicas
    global_batch = config.batch_size * replicas
    schedule = run_schedule(config, data.steps_in_split(builder, config.train_split, global_batch))
    learning_rate = distribute.scaled_learning_rate(config.learning_rate, replicas, config.scale_lr)
    precision = precision_of(config)
    use_aux = config.aux_weight > 0
    num_outputs = 1 if binary else labels.num_classes

    from semseg.runtime.precision import keras_policy, precision_policy

    with precision_policy(precision), strategy.scope():
        model = build_run_model(config, num_outputs, channels, aux_head=use_aux)
        if distribution.kind != "single":
            # Whatever the replica count, so that the numbers do not depend on it.
            count = distribute.synchronize_batch_norm(model)
            logger.info("batch norm synchronised over the replicas (%d layers)", count)
        optimizer = build_optimizer(
            config, schedule.total_steps, learning_rate, schedule.warmup_steps
        )
        network = model
        boundary = use_aux and "boundary_logits" in network.output_names
        model, monitor = _compile(config, network, optimizer, labels, binary, class_weights)
        model.optimizer.build(model.trainable_variables)

    transfer = weights_transfer = None
    backup = TrainingBackup(run_path / "backup")
    # Outside the strategy scope: under MultiWorkerMirroredStrategy creating the
    # checkpoint's variables would start collectives the other workers never join.
    # A resumed run takes its weights from the backup instead.
    if chief and completed_epochs(backup.directory) == 0:
        if weights_kind(config.weights) in ("torch", "keras"):
            weights_transfer = pretrained.load_weights_file(network, config.weights)
        if config.init_from:
            from semseg.weights.finetune import load_matching_weights

            transfer = load_matching_weights(network, config.init_from)

    initial_epoch = backup.restore(model) if chief else 0
    if distribution.kind == "multi_worker":
        # Workers without the work dir take the chief's weights and training state.
        restored = bool(initial_epoch) or transfer is not None or weights_transfer is not None
        initial_epoch, restored = (
            int(value)
            for value in distribute.broadcast_from_chief(
                strategy, [np.int64(initial_epoch), np.int64(restored)]
            )
        )
        if restored:
            distribute.broadcast_variables_from_chief(
                strategy, list(model.weights) + list(model.optimizer.variables)
            )
    if initial_epoch >= schedule.epochs:
        # Killed after committing its last epoch, before removing the backup: done.
        logger.info(
            "all %d epochs were trained before the last run stopped; finishing it",
            schedule.epochs,
        )
        if chief:
            shutil.rmtree(backup.directory, ignore_errors=True)
        return keras.callbacks.History()

    # A resumed run draws new data orders and augmentations rather than replaying epoch 1's.
    data_seed = config.seed + initial_epoch
    # One pass is `schedule`'s steps_in_split (resolved above, stored in config.json).
    train_batches, _ = data.train_dataset(
        builder,
        config.train_split,
        config.image_size,
        global_batch,
        augment=config.augment,
        scale_range=config.scale_range,
        seed=data_seed,
        crop_size=config.crop_size,
    )
    val_batches = data.eval_dataset(builder, config.val_split, config.image_size, global_batch)
    vis_examples = None
    if config.vis_every and chief:
        vis_examples = _val_examples(val_batches, NUM_VIS_IMAGES)
    train_batches = distribute.shard_by_data(train_batches)
    val_batches = distribute.shard_by_data(val_batches)
    if use_aux:
        train_batches = _with_head_targets(train_batches, boundary)
        val_batches = _with_head_targets(val_batches, boundary)
    distribute.build_from_element_spec(model, train_batches.element_spec)

    run_path.mkdir(parents=True, exist_ok=True)
    details = {
        "strategy": distribution.describe(),
        "num_replicas": replicas,
        "num_workers": distribution.num_workers,
        "global_batch_size": global_batch,
        "learning_rate": learning_rate,
        "steps_per_epoch": schedule.steps_per_epoch,
        "epochs": schedule.epochs,
        "total_steps": schedule.total_steps,
        "warmup_steps": schedule.warmup_steps,
        "precision": precision,
        "dtype_policy": keras_policy(precision),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    run = Run(
        config=config,
        labels=labels,
        num_channels=channels,
        dataset_build=data.build_record(builder),
    )
    save_run(run, details, run_path)
    if transfer is not None:
        write_json(run_path / "init_from.json", transfer.to_dict())
    if weights_transfer is not None:
        write_json(run_path / "weights.json", weights_transfer.to_dict())
    _log_start(config, labels, binary, distribution, schedule, learning_rate, precision)
    if chief:
        trim_history(run_path / "history.csv", initial_epoch)
        trim_event_files(run_path / "logs", initial_epoch)
    if initial_epoch:
        logger.info(
            "resumed after epoch %d: optimizer step %d, learning rate %.6g",
            initial_epoch,
            optimizer_step(model.optimizer),
            current_learning_rate(model.optimizer),
        )

    callbacks = _callbacks(config, run_path, monitor, chief, vis_examples, labels, schedule)
    if config.ema:
        # After the NaN guard, before everything that reads or saves the weights.
        callbacks.insert(1, AveragedWeights(resumed=initial_epoch > 0))
    callbacks.append(backup)  # last: it commits the epoch
    history = model.fit(
        train_batches,
        epochs=schedule.epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=schedule.steps_per_epoch,
        validation_data=val_batches,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles
        verbose="auto" if chief else 0,
    )
    logger.info(
        "finished at epoch %d, optimizer step %d",
        len(history.epoch) + initial_epoch,
        optimizer_step(model.optimizer),
    )
    return history


def _compile(config, network, optimizer, labels, binary, class_weights):
    """Compiles the model `fit` trains: `network`, or with PIDNet's boundary heads the
    model that also returns the BAS logits. Returns `(model, monitored metric)`."""

    def build_loss():
        return losses.build_loss(config.loss, class_weights=class_weights, binary=binary)

    metric = BinaryMeanIoU() if binary else mean_iou_metric(labels.num_classes)
    if config.aux_weight <= 0:
        network.compile(optimizer=optimizer, loss=build_loss(), metrics=[metric])
        return network, "val_mean_iou"
    model = network
    head_losses = {"logits": build_loss(), "aux_logits": build_loss()}
    head_weights = {"logits": 1.0, "aux_logits": config.aux_weight}
    if "boundary_logits" in network.output_names:
        model = boundary_training_model(network)
        head_losses["boundary_logits"] = losses.BoundaryLoss(config.boundary_weight)
        head_losses["bas_logits"] = losses.BoundaryAwareLoss(build_loss())
        head_weights.update(boundary_logits=1.0, bas_logits=config.bas_weight)
    model.compile(
        optimizer=optimizer,
        loss=head_losses,
        loss_weights=head_weights,
        metrics={"logits": [metric]},
    )
    return model, "val_logits_mean_iou"


def _callbacks(config, run_path, monitor, chief, vis_examples, labels, schedule):
    """The callbacks of `fit` but the backup (which goes last: it commits the epoch)."""
    callbacks = [
        StopOnNaN(config.work_path),
        LogLearningRate(),
        ExplainEarlyValidation(),
        SaveCheckpoints(run_path / "checkpoints", monitor),
        keras.callbacks.CSVLogger(str(run_path / "history.csv"), append=True),
        TensorBoard(str(run_path / "logs"), write_graph=False),
    ]
    if chief:
        callbacks.append(
            TrainingCurves(
                run_path / "history.csv",
                run_path / "training_curves.png",
                title=f"{config.model} on {config.dataset}",
            )
        )
    if vis_examples is not None:
        callbacks.append(
            PredictionImages(
                *vis_examples, labels, run_path / "logs" / "predictions", config.vis_every
            )
        )
    if config.steps:
        callbacks.append(StopAtStep(schedule.total_steps, schedule.steps_per_epoch))
    return callbacks


def split_names(split):
    """The split names in TFDS split arithmetic: `"train+val[:50%]"` -> `{"train", "val"}`."""
    return {part.split("[")[0].strip() for part in split.split("+")}


def warn_if_val_leaks(builder, config):
    """One warning line when the build says its val is mostly near-duplicates of train
    (`full_semantic.split_leakage`): the "best" checkpoint would be picked on it."""
    if split_names(config.val_split) & split_names(config.train_split):
        logger.warning(
            "--val_split %s is part of --train_split %s: val_mean_iou measures how well the "
            "model fits images it trained on, and the best checkpoint is no better than the "
            "last one (use --checkpoint last)",
            config.val_split,
            config.train_split,
        )
        return
    leakage = data.build_record(builder)["split_leakage"]
    if leakage and leakage.get("leaks") and leakage.get("val_split") == config.val_split:
        logger.warning(
            "%s: %.0f%% of its %d val images are near-duplicates of train images, so "
            "val_mean_iou (and the best checkpoint) will flatter the model; rebuild it with "
            '"group_by" (full_semantic/README.md, Leak-free validation)',
            config.dataset,
            100 * leakage["near_duplicate_share"],
            leakage["val_images"],
        )


def _log_start(config, labels, binary, distribution, schedule, learning_rate, precision):
    logger.info(
        "training %s on %s: %d classes%s; %s",
        config.model,
        config.dataset,
        labels.num_classes,
        " (binary, one logit)" if binary else "",
        distribution.describe(),
    )
    logger.info(
        "global batch %d = %d per replica x %d replica(s); learning rate %.6g (--scale_lr %s)",
        config.batch_size * distribution.num_replicas,
        config.batch_size,
        distribution.num_replicas,
        learning_rate,
        config.scale_lr,
    )
    logger.info(
        "%s schedule over %d steps: %d epoch(s) of %d steps%s",
        config.schedule,
        schedule.total_steps,
        schedule.epochs,
        schedule.steps_per_epoch,
        f", linear warm-up over {schedule.warmup_steps} steps" if schedule.warmup_steps else "",
    )
    if precision != "fp32":
        logger.info(
            "mixed precision %s: float32 variables, logits, softmax and loss%s",
            precision,
            " (dynamic loss scaling)" if precision == "fp16" else "",
        )
    allocator = memory_allocator()
    if allocator == "tcmalloc":
        logger.info("memory allocator: tcmalloc")
    else:
        logger.info(
            "memory allocator: malloc (LD_PRELOAD=%s keeps memory flat on long runs)", TCMALLOC
        )
