"""Published DDRNet and PIDNet weights by name: the table (data only; the cached file and
the converted run are `semseg.weights.published_runs`).

`train.py --weights NAME`, `convert_weights.py --weights NAME` and, for the Cityscapes
models, `predict.py / predict_video.py / predict_realtime.py / export.py / eval.py
--weights NAME` take a name of `PUBLISHED`. The file is downloaded once into
`$SEMSEG_CACHE/weights/` (`semseg.weights.download`: sha256-prefix checked, renamed into
place, reused offline), and a Cityscapes model is converted once into the work dir
`$SEMSEG_CACHE/runs/NAME/` that the other commands read.

The files are MMSegmentation's (download.openmmlab.com, Apache-2.0; the weights
themselves converted by OpenMMLab from the authors' MIT-licensed releases): the
ImageNet backbones its DDRNet and PIDNet configs start from, and its Cityscapes
models (19 classes, `train_ids`). `semseg.weights.pretrained` reads them through the same
safe unpickler and tensor mapping as the authors' files. `imagenet` alone still
means the keras.applications encoders.

Example:

    entry = PUBLISHED["pidnet_s_cityscapes"]
    entry.model, entry.miou            # ("pidnet_s", 78.74)
"""

import dataclasses

from semseg.base.errors import InputError

MMSEG = "https://download.openmmlab.com/mmsegmentation/v0.5"
LICENCE = "Apache-2.0 (MMSegmentation; converted from the authors' MIT release)"
MMSEG_CONFIGS = "https://github.com/open-mmlab/mmsegmentation/tree/main/configs"


@dataclasses.dataclass(frozen=True)
class PublishedWeights:
    """One published checkpoint.

    Attributes:
        name: what users type after `--weights`.
        model: the `models.MODELS` name it fits.
        holds: `"imagenet"` (the backbone of an ImageNet classifier: fine-tune it) or
            `"cityscapes"` (a whole 19-class Cityscapes segmentation model).
        url: where the file is downloaded from.
        sha256_prefix: the first hex digits of the file's sha256 (the publisher's
            `-xxxxxxxx.pth` suffix).
        parameters: parameters of the model the file was made for (with its head).
        miou: the publisher's Cityscapes val mIoU (single scale), or `None`.
        source: where the file and the figure come from.
        licence: the file's licence.
    """

    name: str
    model: str
    holds: str
    url: str
    sha256_prefix: str
    parameters: int
    miou: float | None = None
    source: str = "MMSegmentation model zoo"
    licence: str = LICENCE

    @property
    def file_name(self):
        return self.url.rsplit("/", 1)[-1]

    @property
    def description(self):
        if self.holds == "imagenet":
            return f"{self.model} backbone, ImageNet-1k classification (no segmentation head)"
        return f"{self.model}, Cityscapes 19 classes, 1024x1024 crops, 120k iterations"


def _sha(url):
    """The sha256 prefix in an MMSeg file name: `...-6a5e5174.pth` -> `"6a5e5174"`."""
    return url.rsplit("-", 1)[-1].removesuffix(".pth")


def _entry(name, model, holds, url, parameters, miou=None):
    return PublishedWeights(name, model, holds, url, _sha(url), parameters, miou)


_DDRNET = f"{MMSEG}/ddrnet"
_DDRNET_SLIM = "ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024"
_DDRNET_23 = "ddrnet_23_in1k-pre_2xb6-120k_cityscapes-1024x1024"
_PIDNET = f"{MMSEG}/pidnet"
_PIDNET_IMAGENET = f"{MMSEG}/pretrain/pidnet"
# Parameter counts: MMSeg's models with their decode heads (../shared/reference/mmseg).
PUBLISHED = {
    entry.name: entry
    for entry in (
        _entry(
            "ddrnet23_slim_imagenet",
            "ddrnet23_slim",
            "imagenet",
            f"{_DDRNET}/pretrain/ddrnet23s-in1kpre_3rdparty-1ccac5b1.pth",
            5_734_278,
        ),
        _entry(
            "ddrnet23_slim_cityscapes",
            "ddrnet23_slim",
            "cityscapes",
            f"{_DDRNET}/{_DDRNET_SLIM}/{_DDRNET_SLIM}_20230426_145312-6a5e5174.pth",
            5_734_278,
            77.84,
        ),
        _entry(
            "ddrnet23_imagenet",
            "ddrnet23",
            "imagenet",
            f"{_DDRNET}/pretrain/ddrnet23-in1kpre_3rdparty-9ca29f62.pth",
            20_299_238,
        ),
        _entry(
            "ddrnet23_cityscapes",
            "ddrnet23",
            "cityscapes",
            f"{_DDRNET}/{_DDRNET_23}/{_DDRNET_23}_20230425_162633-81601db0.pth",
            20_299_238,
            79.99,
        ),
        _entry(
            "pidnet_s_imagenet",
            "pidnet_s",
            "imagenet",
            f"{_PIDNET_IMAGENET}/pidnet-s_imagenet1k_20230306-715e6273.pth",
            7_720_871,
        ),
        _entry(
            "pidnet_m_imagenet",
            "pidnet_m",
            "imagenet",
            f"{_PIDNET_IMAGENET}/pidnet-m_imagenet1k_20230306-39893c52.pth",
            28_762_983,
        ),
        _entry(
            "pidnet_l_imagenet",
            "pidnet_l",
            "imagenet",
            f"{_PIDNET_IMAGENET}/pidnet-l_imagenet1k_20230306-67889109.pth",
            37_314_183,
        ),
        _entry(
            "pidnet_s_cityscapes",
            "pidnet_s",
            "cityscapes",
            f"{_PIDNET}/pidnet-s_2xb6-120k_1024x1024-cityscapes/"
            "pidnet-s_2xb6-120k_1024x1024-cityscapes_20230302_191700-bb8e3bcc.pth",
            7_720_871,
            78.74,
        ),
        _entry(
            "pidnet_m_cityscapes",
            "pidnet_m",
            "cityscapes",
            f"{_PIDNET}/pidnet-m_2xb6-120k_1024x1024-cityscapes/"
            "pidnet-m_2xb6-120k_1024x1024-cityscapes_20230301_143452-f9bcdbf3.pth",
            28_762_983,
            80.22,
        ),
        _entry(
            "pidnet_l_cityscapes",
            "pidnet_l",
            "cityscapes",
            f"{_PIDNET}/pidnet-l_2xb6-120k_1024x1024-cityscapes/"
            "pidnet-l_2xb6-120k_1024x1024-cityscapes_20230303_114514-0783ca6b.pth",
            37_314_183,
            80.89,
        ),
    )
}


def lookup(name):
    """The `PublishedWeights` called `name`, or `None` (a file path, `imagenet`, ...)."""
    return PUBLISHED.get(name) if isinstance(name, str) else None


def implied_model(weights, model=None):
    """The model a `--weights` value implies, checked against a `--model` given with it.

    Args:
        weights: the `--weights` value (a published name, a path, `imagenet` or `None`).
        model: the `--model` given, or `None`.

    Returns:
        `model`, or the published name's model when `model` is `None` (`None` when
        neither says).

    Raises:
        InputError: when `model` is not the published name's model.
    """
    entry = lookup(weights)
    if entry is None:
        return model
    if model is not None and model != entry.model:
        raise InputError(
            f"--weights {weights} is {entry.model}'s, not {model}'s: leave out --model or "
            f"give --model {entry.model}"
        )
    return entry.model


def markdown_table():
    """The README's table of published weights (a test keeps the two equal)."""
    rows = [
        "| `--weights` | what it is | Cityscapes val mIoU (publisher's) | parameters "
        "(with the Cityscapes head) |",
        "|---|---|---:|---:|",
    ]
    for entry in PUBLISHED.values():
        miou = f"{entry.miou:.2f}" if entry.miou is not None else "-"
        rows.append(
            f"| `{entry.name}` | {entry.description} | {miou} | {entry.parameters / 1e6:.1f}M |"
        )
    return "\n".join(rows)
