"""Training with `model.fit`: strategy, precision, optimiser, schedule, loss, callbacks, work dir.

The model, optimiser, losses, data and callbacks of a run are assembled here; what each
is made of, resolved from the config, is `semseg.train.setup`.

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

import logging
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from semseg.base.cpu import TCMALLOC
from semseg.base.files import remove_stale_temporaries, write_json
from semseg.config.run import Run, check_work_dir, save_run
from semseg.data import data
from semseg.evaluate.metrics import BinaryMeanIoU, mean_iou_metric
from semseg.losses import losses
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
from semseg.train.setup import (
    binary_mode,
    boundary_training_model,
    build_run_model,
    memory_allocator,
    precision_of,
    resolve_class_weights,
    run_schedule,
    warn_if_val_leaks,
    weights_kind,
    with_head_targets,
)
from semseg.weights import pretrained

logger = logging.getLogger(__name__)

# Validation images shown in TensorBoard (`--vis_every`).
NUM_VIS_IMAGES = 4


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
        train_batches = with_head_targets(train_batches, boundary)
        val_batches = with_head_targets(val_batches, boundary)
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

    callbacks = _callbacks(
        config, run_path, monitor, chief, vis_examples, labels, schedule, initial_epoch
    )
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


def _callbacks(config, run_path, monitor, chief, vis_examples, labels, schedule, initial_epoch):
    """The callbacks of `fit` but the backup (which goes last: it commits the epoch).

    With `--ema` the average goes in right after the NaN guard, before everything that
    reads or saves the weights; a run resumed after `initial_epoch` epochs starts with the
    average in the model, as its backup holds it.
    """
    callbacks = [StopOnNaN(config.work_path)]
    if config.ema:
        callbacks.append(AveragedWeights(resumed=initial_epoch > 0))
    callbacks += [
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
