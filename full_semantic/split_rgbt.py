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

import logging

from full_semantic.utokyo import split_rgbt_folder
from semseg.base.cli import command_parser, run_command


def parse_args(argv=None):
    parser = command_parser(__doc__)
    parser.prog = "python -m full_semantic.split_rgbt"
    parser.add_argument("--input", required=True, help="folder of 4-channel PNGs (recursive)")
    parser.add_argument("--output", required=True, help="folder receiving rgb/ and thermal/")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(args):
    count = split_rgbt_folder(args.input, args.output, show_progress=not args.quiet)
    print(f"split {count} images: {args.output}/rgb and {args.output}/thermal")


if __name__ == "__main__":
    run_command(main, parse_args, log_level=logging.WARNING)
