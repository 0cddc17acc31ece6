"""Fine-tuning: start a run from the weights of another run (`train.py --init_from`).

Weights are matched by layer name and shape, not by position, so a checkpoint
of the same architecture trained on other classes gives everything but the
classifier layers (their kernels have one output per class), and one with
another number of input channels everything but the first convolution. Batch
norm statistics travel with their layers. The report says what was loaded and
what was skipped, and `train.py` writes it to `W/init_from.json`.

Example:

    report = load_matching_weights(model, "runs/cityscapes")   # a run dir or a .keras file
    print(report.summary())
"""

import collections
import dataclasses
import logging
from pathlib import Path

import keras
import numpy as np

from semseg.base.errors import InputError

logger = logging.getLogger(__name__)


def checkpoint_for(source, option="--init_from"):
    """The `.keras` file behind `--init_from`: the file itself, or a run dir's best checkpoint.

    A run dir gives `checkpoints/best.keras`, or `checkpoints/last.keras` when
    there is no best one.

    Raises:
        InputError: when `source` is neither a `.keras` file nor a work dir with a checkpoint.
    """
    path = Path(source)
    if path.is_dir():
        for name in ("best.keras", "last.keras"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
        raise InputError(
            f"{option} {source}: no checkpoints/best.keras or checkpoints/last.keras "
            "there; give a work dir written by train.py or a .keras file"
        )
    if path.suffix != ".keras" or not path.is_file():
        raise InputError(f"{option} {source}: not a .keras file or a work dir")
    return path


@dataclasses.dataclass
class WeightTransfer:
    """What `load_matching_weights` did, layer by layer.

    Attributes:
        source: the `.keras` file read.
        loaded: names of the layers whose weights were copied.
        skipped: `{layer: reason}` for layers of both models whose weights differ in shape.
        missing: layers of the model (with weights) that the checkpoint lacks.
        unused: layers of the checkpoint (with weights) that the model lacks.
        loaded_parameters: number of values copied.
        total_parameters: number of values of the model's weights.
        option: the flag that asked for it (`--init_from`, `--weights`).
    """

    source: str
    loaded: list
    skipped: dict
    missing: list
    unused: list
    loaded_parameters: int
    total_parameters: int
    option: str = "--init_from"

    def summary(self):
        """One line: how much was loaded and which layers were skipped or missing."""
        parts = [
            f"{self.option} {self.source}: loaded {len(self.loaded)} layers "
            f"({self.loaded_parameters:,} of {self.total_parameters:,} values)"
        ]
        if self.skipped:
            parts.append(
                "skipped (other shapes): "
                + ", ".join(f"{name} {reason}" for name, reason in self.skipped.items())
            )
        if self.missing:
            parts.append(f"not in the checkpoint: {', '.join(self.missing)}")
        if self.unused:
            parts.append(f"{len(self.unused)} checkpoint layers unused")
        return "; ".join(parts)

    def to_dict(self):
        return dataclasses.asdict(self)


def _weights_by_layer(model):
    """`{layer name: {weight name: variable}}` from the variables' paths `layer/weight`."""
    layers = collections.defaultdict(dict)
    counts = collections.Counter(variable.path for variable in model.weights)
    for variable in model.weights:
        if counts[variable.path] > 1:
            continue  # an ambiguous name cannot be matched safely
        layer, _, weight = variable.path.rpartition("/")
        layers[layer][weight] = variable
    return layers


def load_matching_weights(model, source, option="--init_from"):
    """Copies the weights of `source` into `model` wherever layer names and shapes match.

    A layer is loaded whole or not at all: when any of its weights differs in
    shape (or the two layers have different weights), it keeps its
    initialisation and is reported as skipped.

    Args:
        model: the `keras.Model` about to be trained (built).
        source: a `.keras` file or a work dir (see `checkpoint_for`).
        option: the flag that named `source`, for messages and the report.

    Returns:
        `WeightTransfer`.

    Raises:
        InputError: for a missing or unreadable checkpoint, or when no layer matches.
    """
    path = checkpoint_for(source, option)
    try:
        checkpoint = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a damaged or foreign file
        raise InputError(f"{option} {path}: cannot load the checkpoint ({error})") from error
    target_layers = _weights_by_layer(model)
    source_layers = _weights_by_layer(checkpoint)
    loaded, skipped, missing = [], {}, []
    loaded_parameters = 0
    for layer, weights in target_layers.items():
        if layer not in source_layers:
            missing.append(layer)
            continue
        source_weights = source_layers[layer]
        if set(weights) != set(source_weights):
            skipped[layer] = (
                f"(weights {sorted(source_weights)} in the checkpoint, {sorted(weights)} here)"
            )
            continue
        different = [
            name
            for name, variable in weights.items()
            if tuple(variable.shape) != tuple(source_weights[name].shape)
        ]
        if different:
            skipped[layer] = ", ".join(
                f"{name} {tuple(source_weights[name].shape)} in the checkpoint, "
                f"{tuple(weights[name].shape)} here"
                for name in different
            )
            continue
        for name, variable in weights.items():
            value = np.asarray(source_weights[name].numpy())
            variable.assign(value.astype(variable.dtype))
            loaded_parameters += value.size
        loaded.append(layer)
    if not loaded:
        raise InputError(
            f"{option} {path}: no layer of {model.name} matches the checkpoint's "
            f"{checkpoint.name} by name and shape; it is another architecture"
        )
    report = WeightTransfer(
        source=str(path),
        loaded=loaded,
        skipped=skipped,
        missing=missing,
        unused=[layer for layer in source_layers if layer not in target_layers],
        loaded_parameters=int(loaded_parameters),
        total_parameters=int(sum(int(np.prod(variable.shape)) for variable in model.weights)),
        option=option,
    )
    logger.info("%s", report.summary())
    return report
