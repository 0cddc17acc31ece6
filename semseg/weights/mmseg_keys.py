"""MMSegmentation's DDRNet and PIDNet checkpoints, their tensors renamed as the authors' code.

MMSegmentation publishes DDRNet-23(-slim) and PIDNet-S/M/L (`mmseg/models/backbones/
{ddrnet,pidnet}.py`, heads `DDRHead` and `PIDHead`) under its own module names:
`{"meta": ..., "state_dict": {"backbone.stem.0.conv.weight": ..., "decode_head.conv_seg.
weight": ...}}` for the Cityscapes models, and the backbone's keys alone (no prefix) for
the ImageNet files its configs initialise from. The networks compute what the authors'
do, module for module, so each MMSeg tensor is renamed to the authors' key here and
then takes the one-tensor-to-one-Keras-weight mapping of `semseg.weights.pretrained` that the
authors' own files take: one loader, two naming schemes.

Renaming, besides the branch names (`context_branch_layers.0` is `layer3`,
`spatial_branch_layers.0` `layer3_`, `i/p/d_branch_layers.K` PIDNet's `layer{3+K}`,
`layer{3+K}_`, `layer{3+K}_d`): an mmcv `ConvModule` holds `conv` and `bn` where the
authors' `nn.Sequential` numbers them (`0`, `1` for conv-BN; `0` BN, `2` conv for the
BN-ReLU-conv order of the pyramid pooling and the heads); the decode heads' classifier
`conv_seg` (`aux_cls_seg`, `p_cls_seg`, `d_cls_seg`) is the second convolution of the
authors' `segmenthead`.

Example:

    state = state_dict_of(read_torch_checkpoint(path), path)
    if is_mmseg_state(state):
        state, file_keys = official_state(state, "pidnet")
"""

import re

import numpy as np

# The first key of MMSeg's stem, with and without the segmentor's `backbone.` prefix.
MMSEG_MARKERS = ("backbone.stem.0.conv.weight", "stem.0.conv.weight")
HEAD_PREFIX = "decode_head."

# (pattern, replacement) applied in order to the key without `backbone.`; the first match wins.
_COMMON = [
    (r"stem\.0\.conv\.(.+)", r"conv1.0.\1"),
    (r"stem\.0\.bn\.(.+)", r"conv1.1.\1"),
    (r"stem\.1\.conv\.(.+)", r"conv1.3.\1"),
    (r"stem\.1\.bn\.(.+)", r"conv1.4.\1"),
    (r"stem\.2\.(.+)", r"layer1.\1"),
    (r"stem\.4\.(.+)", r"layer2.\1"),
    # Pyramid pooling (DAPPM, PAPPM): BN, ReLU, conv; the pooled scales behind a pool.
    (r"spp\.scales\.0\.bn\.(.+)", r"spp.scale0.0.\1"),
    (r"spp\.scales\.0\.conv\.(.+)", r"spp.scale0.2.\1"),
    (r"spp\.scales\.([1-4])\.1\.bn\.(.+)", r"spp.scale\1.1.\2"),
    (r"spp\.scales\.([1-4])\.1\.conv\.(.+)", r"spp.scale\1.3.\2"),
    (r"spp\.processes\.bn\.(.+)", r"spp.scale_process.0.\1"),
    (r"spp\.processes\.conv\.(.+)", r"spp.scale_process.2.\1"),
    (r"spp\.(compression|shortcut)\.bn\.(.+)", r"spp.\1.0.\2"),
    (r"spp\.(compression|shortcut)\.conv\.(.+)", r"spp.\1.2.\2"),
    # DAPPM's four processes (DDRNet, PIDNet-L), after each pooled scale.
    (r"spp\.processes\.([0-3])\.bn\.(.+)", lambda m: f"spp.process{1 + int(m[1])}.0.{m[2]}"),
    (r"spp\.processes\.([0-3])\.conv\.(.+)", lambda m: f"spp.process{1 + int(m[1])}.2.{m[2]}"),
    # The low-resolution branch compressed for the high-resolution one (conv + BN).
    (r"compression_([12])\.conv\.(.+)", lambda m: f"compression{2 + int(m[1])}.0.{m[2]}"),
    (r"compression_([12])\.bn\.(.+)", lambda m: f"compression{2 + int(m[1])}.1.{m[2]}"),
]
_DDRNET = [
    (r"context_branch_layers\.([0-2])\.(.+)", lambda m: f"layer{3 + int(m[1])}.{m[2]}"),
    (r"spatial_branch_layers\.([0-2])\.(.+)", lambda m: f"layer{3 + int(m[1])}_.{m[2]}"),
    (r"down_1\.conv\.(.+)", r"down3.0.\1"),
    (r"down_1\.bn\.(.+)", r"down3.1.\1"),
    (r"down_2\.0\.conv\.(.+)", r"down4.0.\1"),
    (r"down_2\.0\.bn\.(.+)", r"down4.1.\1"),
    (r"down_2\.1\.conv\.(.+)", r"down4.3.\1"),
    (r"down_2\.1\.bn\.(.+)", r"down4.4.\1"),
]
_PIDNET = [
    (r"i_branch_layers\.([0-2])\.(.+)", lambda m: f"layer{3 + int(m[1])}.{m[2]}"),
    (r"p_branch_layers\.([0-2])\.(.+)", lambda m: f"layer{3 + int(m[1])}_.{m[2]}"),
    (r"d_branch_layers\.([0-2])\.(.+)", lambda m: f"layer{3 + int(m[1])}_d.{m[2]}"),
    (r"diff_([12])\.conv\.(.+)", lambda m: f"diff{2 + int(m[1])}.0.{m[2]}"),
    (r"diff_([12])\.bn\.(.+)", lambda m: f"diff{2 + int(m[1])}.1.{m[2]}"),
    # PagFM(x_p, x_i): f_p reads the P branch (the authors' f_x), f_i the I branch (f_y).
    (r"pag_([12])\.f_p\.conv\.(.+)", lambda m: f"pag{2 + int(m[1])}.f_x.0.{m[2]}"),
    (r"pag_([12])\.f_p\.bn\.(.+)", lambda m: f"pag{2 + int(m[1])}.f_x.1.{m[2]}"),
    (r"pag_([12])\.f_i\.conv\.(.+)", lambda m: f"pag{2 + int(m[1])}.f_y.0.{m[2]}"),
    (r"pag_([12])\.f_i\.bn\.(.+)", lambda m: f"pag{2 + int(m[1])}.f_y.1.{m[2]}"),
    # LightBag (-S, -M): f_p, f_i are conv + BN; Bag (-L): BN, ReLU, conv.
    (r"dfm\.f_p\.conv\.(.+)", r"dfm.conv_p.0.\1"),
    (r"dfm\.f_p\.bn\.(.+)", r"dfm.conv_p.1.\1"),
    (r"dfm\.f_i\.conv\.(.+)", r"dfm.conv_i.0.\1"),
    (r"dfm\.f_i\.bn\.(.+)", r"dfm.conv_i.1.\1"),
    (r"dfm\.conv\.bn\.(.+)", r"dfm.conv.0.\1"),
    (r"dfm\.conv\.conv\.(.+)", r"dfm.conv.2.\1"),
]
# Inside the residual blocks of every stage: ConvModules `convK` and PIDNet's downsample.
_BLOCK = [
    (r"(.+)\.conv([123])\.conv\.(.+)", r"\1.conv\2.\3"),
    (r"(.+)\.conv([123])\.bn\.(.+)", r"\1.bn\2.\3"),
    (r"(.+)\.downsample\.conv\.(.+)", r"\1.downsample.0.\2"),
    (r"(.+)\.downsample\.bn\.(.+)", r"\1.downsample.1.\2"),
]
# DDRHead (`head`, `aux_head`: [ConvModule(BN, ReLU, conv), BN]) and PIDHead (`i_head`,
# `p_head`, `d_head`: `conv` (BN, ReLU, conv) and `norm`) -> the authors' `segmenthead`s.
_HEADS = {
    "ddrnet": [
        (r"(head|aux_head)\.0\.bn\.(.+)", r"\1.bn1.\2"),
        (r"(head|aux_head)\.0\.conv\.(.+)", r"\1.conv1.\2"),
        (r"(head|aux_head)\.1\.(.+)", r"\1.bn2.\2"),
        (r"conv_seg\.(.+)", r"head.conv2.\1"),
        (r"aux_cls_seg\.(.+)", r"aux_head.conv2.\1"),
    ],
    "pidnet": [
        (r"([ipd]_head)\.conv\.bn\.(.+)", r"\1.bn1.\2"),
        (r"([ipd]_head)\.conv\.conv\.(.+)", r"\1.conv1.\2"),
        (r"([ipd]_head)\.norm\.(.+)", r"\1.bn2.\2"),
        (r"conv_seg\.(.+)", r"i_head.conv2.\1"),
        (r"([pd])_cls_seg\.(.+)", r"\1_head.conv2.\2"),
    ],
}
HEAD_NAMES = {
    "ddrnet": {"head": "final_layer", "aux_head": "seghead_extra"},
    "pidnet": {"i_head": "final_layer", "p_head": "seghead_p", "d_head": "seghead_d"},
}
FAMILY_RULES = {
    "ddrnet": [(re.compile(p), r) for p, r in _COMMON + _DDRNET],
    "pidnet": [(re.compile(p), r) for p, r in _COMMON + _PIDNET],
}
BLOCK_RULES = [(re.compile(p), r) for p, r in _BLOCK]
HEAD_RULES = {family: [(re.compile(p), r) for p, r in rules] for family, rules in _HEADS.items()}


def is_mmseg_state(state):
    """Whether a state dict `{key: array}` uses MMSegmentation's names (its stem's key)."""
    return any(marker in state for marker in MMSEG_MARKERS)


def holds_decode_head(state):
    """Whether an MMSeg state dict is a whole segmentor (backbone and decode head)."""
    return any(key.startswith(HEAD_PREFIX) for key in state)


def _apply(rules, key):
    for pattern, replacement in rules:
        match = pattern.fullmatch(key)
        if match:
            return match.expand(replacement) if isinstance(replacement, str) else replacement(match)
    return None


def official_key(key, family):
    """The authors' name of one MMSeg tensor, or `None` for a key neither model has.

    Args:
        key: an MMSeg key, e.g. `"backbone.spatial_branch_layers.0.1.conv2.bn.weight"`
            (with or without `backbone.`) or `"decode_head.conv_seg.bias"`.
        family: `"ddrnet"` or `"pidnet"`.

    Returns:
        str, e.g. `"layer3_.1.bn2.weight"` or `"final_layer.conv2.bias"`.
    """
    if key.startswith(HEAD_PREFIX):
        renamed = _apply(HEAD_RULES[family], key[len(HEAD_PREFIX) :])
        if renamed is None:
            return None
        head, _, rest = renamed.partition(".")
        return f"{HEAD_NAMES[family][head]}.{rest}"
    key = key.removeprefix("backbone.")
    renamed = _apply(FAMILY_RULES[family], key)
    if renamed is None:
        return None
    # Stage modules keep their blocks' own names to rename.
    return _apply(BLOCK_RULES, renamed) or renamed


def official_state(state, family):
    """An MMSeg state dict under the authors' keys.

    Args:
        state: `{MMSeg key: array}` (a Cityscapes segmentor, or an ImageNet backbone).
        family: `"ddrnet"` or `"pidnet"`.

    Returns:
        `(official, file_keys, unknown)`: `{authors' key: array}`, `{authors' key: MMSeg
        key}` (to name the file's own keys in reports and errors), and the MMSeg keys that
        neither architecture has (an ImageNet classifier's, which a backbone file may hold).
    """
    official, file_keys, unknown = {}, {}, []
    for key, value in state.items():
        name = official_key(key, family)
        if name is None:
            unknown.append(key)
            continue
        official[name] = value
        file_keys[name] = key
    # The authors' stem convolutions have a bias before their BN, MMSeg's ConvModules none:
    # a zero bias is the same function.
    for conv in ("conv1.0", "conv1.3"):
        weight = official.get(f"{conv}.weight")
        if weight is not None and f"{conv}.bias" not in official:
            official[f"{conv}.bias"] = np.zeros(weight.shape[0], weight.dtype)
            file_keys[f"{conv}.bias"] = (
                f"{file_keys[conv + '.weight'][: -len('weight')]}bias (none: 0)"
            )
    return official, file_keys, unknown
