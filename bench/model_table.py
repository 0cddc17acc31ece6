r"""Print the model card table: parameters and GFLOPs of every registered model.

Examples:

    # The table of models/README.md: 19 classes, 512x1024 and 480x640
    python -m bench.model_table

    # Some models, other sizes and class count
    python -m bench.model_table --models ddrnet23_slim fpn_effb0 --sizes 360x480 720x960 \
        --num_classes 11

Parameters are the trainable ones (`semseg.runtime.cost.count_params`); GFLOPs are
`semseg.runtime.cost.count_flops` at batch 1 (2 x multiply-adds, TensorFlow's profiler),
without auxiliary heads. Models are built with random weights (`weights=None`).
"""

import argparse
import dataclasses
import gc
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.options import IMAGE_SIZE  # noqa: E402
from semseg.base.cli import Command, at_least, option, parse_config, run_command  # noqa: E402
from semseg.base.errors import InputError  # noqa: E402

# Paper of each architecture family, by model name prefix.
PAPERS = (
    ("ddrnet", "DDRNet", "https://arxiv.org/abs/2101.06085"),
    ("effdeeplabv3plus", "DeepLabV3+", "https://arxiv.org/abs/1802.02611"),
    ("mnv3deeplabv3plus", "DeepLabV3+", "https://arxiv.org/abs/1802.02611"),
    ("deeplabv3plus", "DeepLabV3+", "https://arxiv.org/abs/1802.02611"),
    ("fpn", "Semantic FPN", "https://arxiv.org/abs/1901.02446"),
    ("ocrnet", "OCRNet", "https://arxiv.org/abs/1909.11065"),
)


def parse_size(text):
    try:
        height, width = (int(value) for value in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 512x1024. Received: {text!r}")
    if min(height, width) < 32:
        raise argparse.ArgumentTypeError(f"sizes must be at least 32. Received: {text!r}")
    return height, width


@dataclasses.dataclass
class ModelTableConfig(Command):
    models: tuple[str, ...] | None = option(help="model names (default: every model)")
    sizes: tuple[tuple[int, int], ...] = option(
        ((512, 1024), IMAGE_SIZE), "input sizes", metavar="HxW", type=parse_size
    )
    num_classes: int = option(19, check=at_least(1))


def parse_args(argv=None):
    return parse_config(ModelTableConfig, __doc__, argv)


def describe(name, model):
    """`(architecture link, encoder)` cells of one model's row."""
    architecture = next(
        f"[{title}]({url})" for prefix, title, url in PAPERS if name.startswith(prefix)
    )
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        return architecture, "-"
    return architecture, f"{encoder}, OS {model.output_stride}"


def model_rows(names, sizes, num_classes):
    """Yields one Markdown table row per model."""
    from models import build_model
    from semseg.runtime import cost

    for name in names:
        model = build_model(name, num_classes)
        architecture, encoder = describe(name, model)
        params = cost.count_params(model)["trainable"]
        flops = [cost.count_flops(model, size) / 1e9 for size in sizes]
        cells = [f"`{name}`", architecture, encoder, f"{params:,}"]
        cells += [f"{value:.2f}" for value in flops]
        yield "| " + " | ".join(cells) + " |"
        del model
        gc.collect()


def main(args):
    from models import MODELS

    names = args.models or list(MODELS)
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise InputError(f"--models: unknown {unknown}; expected names from {sorted(MODELS)}")
    if args.num_classes < 1:
        raise InputError(f"--num_classes must be at least 1. Received: {args.num_classes}")
    size_columns = [f"GFLOPs {height}x{width}" for height, width in args.sizes]
    header = ["name", "architecture", "encoder", "trainable parameters", *size_columns]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] * 3 + ["---:"] * (1 + len(args.sizes))) + "|")
    for row in model_rows(names, args.sizes, args.num_classes):
        print(row, flush=True)


if __name__ == "__main__":
    run_command(main, parse_args, log_level=logging.WARNING)
