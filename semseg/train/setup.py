"""What a training run is made of, resolved from its `RunConfig` before `fit`: binary
mode, class weights, the model and its extra heads, the precision, the allocator, the
schedule's epochs and steps, and the warning when val is not apart from train.
"""

import dataclasses
import logging
import math

import keras
import tensorflow as tf

import models
from semseg.base.errors import InputError
from semseg.config.run_config import parse_class_weights
from semseg.data import data
from semseg.losses.loss_spec import is_binary_spec
from semseg.weights import pretrained

logger = logging.getLogger(__name__)


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


def with_head_targets(dataset, boundary):
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
