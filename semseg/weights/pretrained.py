"""Start a model from published weights: `train.py --weights FILE` (a run's work dir made
from a checkpoint, `convert_weights.py`, is `semseg.weights.convert`).

`load_weights_file(model, path)` reads, by the file's kind:

* the authors' PyTorch checkpoints (`.pth`, `.pt`, `.tar`) of DDRNet-23-slim,
  DDRNet-23 (ydhongHIT/DDRNet) and PIDNet-S/M/L (XuJiacong/PIDNet): their
  segmentation files (plain state dict, `{"state_dict": ...}`, keys prefixed
  `module.` or `model.`) and their ImageNet classifier files, whose backbone
  tensors load while the segmentation heads keep their initialisation (as the
  authors' own loaders do). Files are read without PyTorch and without running
  their code (`semseg.weights.torch_checkpoint`);
* MMSegmentation's files of the same models (`{"meta", "state_dict"}` of
  `backbone.*` and `decode_head.*`, or an ImageNet backbone's keys alone), told
  from the authors' by their keys and renamed to the authors' keys by
  `semseg.weights.mmseg_keys`, then mapped as below; a name of
  `semseg.config.published_weights.PUBLISHED` is downloaded once and read the same way;
* a `.keras` file (or a work dir): matching layers by name and shape, as
  `--init_from` (`semseg.weights.finetune`).

(`keras.applications` `.h5` files for the encoders of DeepLabV3+, FPN and
OCRNet go to the model builder instead: `build_run_model` passes them as the
encoder's weights.)

Each tensor of an authors' file maps to exactly one Keras weight: the torch
module path names the Keras layer (`TORCH_LAYER_RULES`), and the layer kind its
weights (a convolution's `weight` (O, I, kh, kw) is the Keras kernel
(kh, kw, I, O); a batch norm's `weight`, `bias`, `running_mean`, `running_var`
are `gamma`, `beta`, `moving_mean`, `moving_variance`; `num_batches_tracked` has no
counterpart). When the class count differs from the file's, the classifiers are
skipped, and when the input channels differ, the first convolution: both are
reported. A tensor without a counterpart, or of another shape elsewhere, means
another architecture and is an error naming the key and both shapes.

Example:

    model = models.build_model("pidnet_s", num_classes=11, aux_head=True)
    report = load_weights_file(model, "PIDNet_S_ImageNet.pth.tar")
    print(report.summary())
"""

import logging
import re
from pathlib import Path

import numpy as np

from semseg.base.errors import InputError
from semseg.weights import mmseg_keys
from semseg.weights.finetune import WeightTransfer, load_matching_weights
from semseg.weights.torch_checkpoint import read_torch_checkpoint, state_dict_of

logger = logging.getLogger(__name__)

TORCH_SUFFIXES = (".pth", ".pt", ".tar", ".bin")
# The models the authors' checkpoints exist for (build them with `padding="symmetric"`).
TORCH_MODELS = ("ddrnet23_slim", "ddrnet23", "pidnet_s", "pidnet_m", "pidnet_l")
KERAS_SUFFIXES = (".keras",)
ENCODER_SUFFIXES = (".h5",)

# Torch module paths of the authors' stage modules -> our layer-name prefixes.
DDRNET_STAGES = {
    "layer1": "layer1",
    "layer2": "layer2",
    "layer3": "layer3",
    "layer4": "layer4",
    "layer5": "layer5",
    "layer3_": "layer3_high",
    "layer4_": "layer4_high",
    "layer5_": "layer5_high",
}
PIDNET_STAGES = {
    "layer1": "layer1",
    "layer2": "layer2",
    "layer3": "layer3",
    "layer4": "layer4",
    "layer5": "layer5",
    "layer3_": "layer3_p",
    "layer4_": "layer4_p",
    "layer5_": "layer5_p",
    "layer3_d": "layer3_d",
    "layer4_d": "layer4_d",
    "layer5_d": "layer5_d",
}
DDRNET_HEADS = {"final_layer": "head", "seghead_extra": "aux_head"}
PIDNET_HEADS = {"final_layer": "head", "seghead_p": "p_head", "seghead_d": "d_head"}
# The parts of a residual block, and the layers of `segmenthead`.
BLOCK_PARTS = {
    "conv1": "conv1",
    "bn1": "conv1_bn",
    "conv2": "conv2",
    "bn2": "conv2_bn",
    "conv3": "conv3",
    "bn3": "conv3_bn",
    "downsample.0": "downsample",
    "downsample.1": "downsample_bn",
}
HEAD_PARTS = {"bn1": "1_bn", "conv1": "1_conv", "bn2": "2_bn", "conv2": "2_conv"}
# Modules of the authors' ImageNet classifiers that segmentation models do not have.
IMAGENET_HEADS = ("down5", "last_layer", "linear", "fc", "classifier")
WEIGHT_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def torch_layer_candidates(module, family):
    """Keras layer names that a torch module path of the official code may map to.

    Args:
        module: the module path of a tensor, e.g. `"layer3_.1.bn2"` or `"spp.scale1.1"`.
        family: `"ddrnet"` or `"pidnet"`.

    Returns:
        list of layer names (more than one where our naming depends on the block
        count: a one-block stage has no `_block1`), empty for no counterpart.
    """
    stages = DDRNET_STAGES if family == "ddrnet" else PIDNET_STAGES
    heads = DDRNET_HEADS if family == "ddrnet" else PIDNET_HEADS
    stem = {"0": "stem_conv1", "1": "stem_conv1_bn", "3": "stem_conv2", "4": "stem_conv2_bn"}
    match = re.fullmatch(r"conv1\.(\d)", module)
    if match:
        return [stem[match[1]]] if match[1] in stem else []
    match = re.fullmatch(r"(layer\d_?d?)(?:\.(\d+))?\.(conv\d|bn\d|downsample\.[01])", module)
    if match and match[1] in stages:
        stage, part = stages[match[1]], BLOCK_PARTS.get(match[3])
        if part is None:
            return []
        if match[2] is None:
            return [f"{stage}_{part}"]
        index = int(match[2])
        names = [f"{stage}_block{index + 1}_{part}"]
        return names + ([f"{stage}_{part}"] if index == 0 else [])
    match = re.fullmatch(r"(compression3|compression4|down3|diff3|diff4)\.([01])", module)
    if match:
        return [match[1] + ("_bn" if match[2] == "1" else "")]
    down4 = {"0": "down4_1", "1": "down4_1_bn", "3": "down4_2", "4": "down4_2_bn"}
    match = re.fullmatch(r"down4\.(\d)", module)
    if match:
        return [down4[match[1]]] if match[1] in down4 else []
    # Pyramid pooling: [pool,] BN, ReLU, conv sequences.
    match = re.fullmatch(
        r"spp\.(scale[0-4]|process\d|scale_process|compression|shortcut)\.(\d)", module
    )
    if match:
        branch, index = match[1], int(match[2])
        pooled = branch in ("scale1", "scale2", "scale3", "scale4")
        kind = {0 + pooled: "bn", 2 + pooled: "conv"}.get(index)
        branch = "process" if branch == "scale_process" else branch
        return [f"spp_{branch}_{kind}"] if kind else []
    match = re.fullmatch(r"(pag[34])\.(f_x|f_y)\.([01])", module)
    if match:
        return [f"{match[1]}_{match[2]}" + ("_bn" if match[3] == "1" else "")]
    match = re.fullmatch(r"dfm\.(conv_p|conv_i)\.([01])", module)
    if match:
        return [f"dfm_{match[1]}" + ("_bn" if match[2] == "1" else "")]
    match = re.fullmatch(r"dfm\.conv\.([02])", module)
    if match:
        return ["dfm_bn" if match[1] == "0" else "dfm_conv"]
    match = re.fullmatch(r"(\w+)\.(bn1|conv1|bn2|conv2)", module)
    if match and match[1] in heads:
        return [f"{heads[match[1]]}_{HEAD_PARTS[match[2]]}"]
    return []


def model_family(model):
    """`"ddrnet"` or `"pidnet"` for the models whose authors' checkpoints we read, else `None`."""
    import models

    if isinstance(model, models.DDRNet):
        return "ddrnet"
    if isinstance(model, models.PIDNet):
        return "pidnet"
    return None


def _split_key(key):
    module, _, weight = key.rpartition(".")
    return (module, weight) if weight in WEIGHT_SUFFIXES else (key, "")


def _keras_values(layer, tensors, path):
    """The `layer.weights` values from a torch module's tensors `{weight name: array}`."""
    kind = layer.__class__.__name__
    if kind == "BatchNormalization":
        names = ("weight", "bias", "running_mean", "running_var")
        return [tensors.get(name) for name in names], names
    if kind in ("Conv2D", "GroupedConv2D"):
        names = ("weight", "bias") if getattr(layer, "use_bias", False) else ("weight",)
        values = [tensors.get(name) for name in names]
        if values[0] is not None and values[0].ndim == 4:
            values[0] = np.transpose(values[0], (2, 3, 1, 0))
        return values, names
    raise InputError(f"{path}: layer {layer.name} ({kind}) has no torch counterpart")


def classifier_layers(model):
    """Layers whose output channels are the classes: skipped when the class counts differ."""
    return {
        layer.name
        for layer in model.layers
        if layer.name.endswith("head_2_conv") and layer.name != "d_head_2_conv"
    }


def _tolerated_difference(layer_name, classifiers, file_shape, model_shape):
    """`"classes"` or `"input channels"` when only that axis differs (the layer is skipped)."""
    differing = (
        [axis for axis, (a, b) in enumerate(zip(file_shape, model_shape)) if a != b]
        if len(file_shape) == len(model_shape)
        else None
    )
    if layer_name in classifiers and differing in ([3], [0]):
        return "classes"  # the kernel's output axis, or the bias
    if layer_name == "stem_conv1" and differing == [2]:
        return "input channels"
    return None


def load_torch_weights(model, path):
    """Copies the tensors of an authors' PyTorch checkpoint into a DDRNet or PIDNet model.

    Args:
        model: a built `models.DDRNet` or `models.PIDNet`.
        path: the `.pth` / `.pt` file.

    Returns:
        `WeightTransfer`: Keras layers loaded, skipped (classifiers or first
        convolution of another shape), missing (not in the file, e.g. the heads
        when the file is an ImageNet classifier) and the file's unused modules.

    Raises:
        InputError: for an unreadable or unsafe file, or one of another
            architecture (naming the first tensor without a counterpart or of
            another shape, with both shapes).
    """
    family = model_family(model)
    if family is None:
        raise InputError(
            f"--weights {path}: PyTorch checkpoints are read for DDRNet and PIDNet models; "
            f"{model.name} takes a .keras file (or an encoder .h5)"
        )
    return load_state_dict(model, read_state(path, family), path)


class FileState(dict):
    """A checkpoint's tensors under the authors' keys `{key: numpy array}`.

    Attributes:
        file_keys: `{authors' key: the file's own key}` for a file in another naming
            (MMSegmentation's); empty for the authors' files.
        extra: the file's keys that no DDRNet/PIDNet module has (an ImageNet
            classifier's, in a backbone file), reported as unused.
        layout: `"authors"` or `"mmseg"`.
    """

    def __init__(self, tensors, file_keys=None, extra=(), layout="authors"):
        super().__init__(tensors)
        self.file_keys = dict(file_keys or {})
        self.extra = list(extra)
        self.layout = layout

    def file_key(self, key):
        """The file's own name of an authors' key (for messages)."""
        return self.file_keys.get(key, key)


def read_state(path, family):
    """The tensors of an authors' or MMSegmentation checkpoint, under the authors' keys.

    MMSegmentation's files (`{"meta", "state_dict"}` of `backbone.*` and
    `decode_head.*`, or an ImageNet backbone's keys alone) are told from the
    authors' by their keys, never by the file name, and renamed by
    `semseg.weights.mmseg_keys`.

    Args:
        path: the `.pth` / `.pt` file.
        family: `"ddrnet"` or `"pidnet"`, the model the tensors are for.

    Returns:
        `FileState`.

    Raises:
        InputError: for an unreadable or unsafe file, or an MMSeg segmentor file
            with a tensor that neither architecture has.
    """
    state = state_dict_of(read_torch_checkpoint(path), path)
    if not mmseg_keys.is_mmseg_state(state):
        return FileState(state)
    official, file_keys, extra = mmseg_keys.official_state(state, family)
    if extra and mmseg_keys.holds_decode_head(state):
        raise InputError(
            f"{path}: not an MMSegmentation {family} checkpoint: tensor {extra[0]} "
            f"{list(state[extra[0]].shape)} has no counterpart (another architecture?)"
        )
    return FileState(official, file_keys, extra, layout="mmseg")


def load_state_dict(model, state, path):
    """`load_torch_weights` for a state dict `{torch key: numpy array}` already read.

    Args:
        model: a built `models.DDRNet` or `models.PIDNet`.
        state: dict of the official keys (without `module.`/`model.` prefixes), or the
            `FileState` of `read_state` (its messages name the file's own keys).
        path: where the tensors come from, for the report and error messages.

    Returns:
        `WeightTransfer`.
    """
    if not isinstance(state, FileState):
        state = FileState(state)
    family = model_family(model)
    if model.padding != "symmetric":
        logger.warning(
            "%s pads its strided layers Keras' way (padding=%r): with the authors' weights "
            "its outputs differ slightly from theirs; build it with padding='symmetric'",
            model.name,
            model.padding,
        )
    modules = {}
    for key, value in state.items():
        module, weight = _split_key(key)
        modules.setdefault(module, {})[weight] = value
    classifier = any(module.split(".")[0] in IMAGENET_HEADS for module in modules)
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    classifiers = classifier_layers(model)
    heads = DDRNET_HEADS if family == "ddrnet" else PIDNET_HEADS
    loaded, skipped, unused = [], {}, []
    loaded_parameters = 0
    for module, tensors in modules.items():
        candidates = torch_layer_candidates(module, family)
        names = [name for name in candidates if name in layers]
        if not names:
            top = module.split(".")[0]
            # An ImageNet classifier's own head, or a training head this model was built without.
            if (classifier and top in IMAGENET_HEADS) or (candidates and top in heads):
                unused.append(_file_module(state, module, tensors))
                continue
            first = next(key for key in tensors if key != "num_batches_tracked")
            raise InputError(
                f"{path}: not a checkpoint of {model.name}: tensor "
                f"{state.file_key(f'{module}.{first}')} {list(tensors[first].shape)} has no "
                "counterpart in the model (another architecture?)"
            )
        layer = layers[names[0]]
        values, torch_names = _keras_values(layer, tensors, path)
        mismatch = None
        for variable, value, torch_name in zip(layer.weights, values, torch_names):
            if value is None:
                raise InputError(
                    f"{path}: {state.file_key(f'{module}.{torch_name}')} is missing from the file"
                )
            if tuple(value.shape) != tuple(variable.shape):
                mismatch = (torch_name, value, variable)
                break
        if mismatch:
            torch_name, value, variable = mismatch
            torch_shape = list(tensors[torch_name].shape)
            what = _tolerated_difference(layer.name, classifiers, value.shape, variable.shape)
            file_key = state.file_key(f"{module}.{torch_name}")
            if what:
                skipped[layer.name] = f"({file_key} {torch_shape} in the file: other {what})"
                continue
            keras_shape = list(variable.shape)
            if variable.ndim == 4:  # as torch orders it
                keras_shape = [keras_shape[3], keras_shape[2], keras_shape[0], keras_shape[1]]
            raise InputError(
                f"{path}: not a checkpoint of {model.name}: tensor {file_key} has "
                f"shape {torch_shape} in the file, the model's layer {layer.name} expects "
                f"{keras_shape} (another architecture or width?)"
            )
        for variable, value in zip(layer.weights, values):
            variable.assign(value.astype(variable.dtype))
            loaded_parameters += value.size
        loaded.append(layer.name)
        del layers[layer.name]
    if len(loaded) < 2:
        raise InputError(f"{path}: no tensor of the file fits {model.name}")
    missing = [name for name in layers if name not in skipped]
    # An ImageNet file's classifier, which MMSeg's `strict=False` load ignores too.
    unused += sorted({key.rpartition(".")[0] for key in state.extra})
    report = WeightTransfer(
        source=str(path),
        loaded=loaded,
        skipped=skipped,
        missing=missing,
        unused=unused,
        loaded_parameters=int(loaded_parameters),
        total_parameters=int(sum(int(np.prod(variable.shape)) for variable in model.weights)),
        option="--weights",
    )
    logger.info("%s", report.summary())
    return report


def _file_module(state, module, tensors):
    """The file's own name of an authors' module path (its tensors' common prefix)."""
    key = state.file_key(f"{module}.{next(iter(tensors))}")
    return key.rpartition(".")[0] if state.file_keys else module


def weights_kind(path):
    """`"torch"`, `"keras"` or `"encoder"` for a `--weights` file, from its name.

    Raises:
        InputError: for a file that does not exist or of another kind.
    """
    from semseg.config.published_weights import lookup

    if lookup(path) is not None:
        return "torch"
    path = Path(path)
    if not path.exists():
        raise InputError(f"--weights {path}: no such file")
    name = path.name.lower()
    if path.is_dir() or name.endswith(KERAS_SUFFIXES):
        return "keras"
    if name.endswith(TORCH_SUFFIXES):
        return "torch"
    if name.endswith(ENCODER_SUFFIXES):
        return "encoder"
    raise InputError(
        f"--weights {path}: expected an authors' PyTorch checkpoint (.pth, .pt, .pth.tar), "
        "a keras.applications encoder file (.h5), a .keras file or a work dir"
    )


def load_weights_file(model, path):
    """Loads a `--weights` file (see the module docstring) into `model`.

    Returns:
        `WeightTransfer` (what was loaded and skipped).
    """
    from semseg.weights.published_runs import weights_file

    kind = weights_kind(path)
    if kind == "torch":
        return load_torch_weights(model, weights_file(path))
    if kind == "keras":
        return load_matching_weights(model, path, option="--weights")
    raise InputError(
        f"--weights {path}: a .h5 file holds keras.applications encoder weights; it is "
        "given to the models built on those encoders (DeepLabV3+, FPN, OCRNet) when built"
    )
