"""Split 4-channel UTokyo (MFNet) images into separate RGB and thermal PNG folders.

Examples:

    # ir_seg_dataset/images/00001D.png -> split/rgb/00001D.png and split/thermal/00001D.png
    python -m full_semantic.split_rgbt --input ir_seg_dataset/images --output split

    # No progress bar (e.g. in logs)
    python -m full_semantic.split_rgbt --input ir_seg_dataset/images --output split --quiet

Each image is checked first (8-bit, 4 channels read as RGBA, the 4th being
thermal); each output is written to a temporary name and renamed, so an
interrupted run leaves no half-written file and a rerun overwrites cleanly.
The RGB PNGs are 3-channel, the thermal ones single-channel grey.
"""

import dataclasses
import logging

from full_semantic.utokyo import split_rgbt_folder
from semseg.base.cli import Command, option, parse_config, run_command


@dataclasses.dataclass
class SplitConfig(Command):
    input: str = option(required=True, help="folder of 4-channel PNGs (recursive)")
    output: str = option(required=True, help="folder receiving rgb/ and thermal/")
    quiet: bool = option(False, "no progress bar")


def parse_args(argv=None):
    return parse_config(SplitConfig, __doc__, argv, prog="python -m full_semantic.split_rgbt")


def main(args):
    count = split_rgbt_folder(args.input, args.output, show_progress=not args.quiet)
    print(f"split {count} images: {args.output}/rgb and {args.output}/thermal")


if __name__ == "__main__":
    run_command(main, parse_args, log_level=logging.WARNING)
