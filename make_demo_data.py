"""Write the built-in demo dataset: a synthetic CVAT "Segmentation mask 1.1" export.

Examples:

    python make_demo_data.py --output build/demo/cvat_export
    python make_demo_data.py --output /tmp/shapes --num_train 50 --num_val 10 --size 128 128
"""

from full_semantic.demo_data import write_demo_export
from semseg.base.cli import command_parser, run_command


def parse_args(argv=None):
    parser = command_parser(__doc__)
    parser.add_argument("--output", required=True, help="folder of the export (replaced)")
    parser.add_argument("--num_train", type=int, default=300)
    parser.add_argument("--num_val", type=int, default=60)
    parser.add_argument("--size", type=int, nargs=2, default=(160, 160), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(args):
    path = write_demo_export(args.output, args.num_train, args.num_val, args.size, args.seed)
    print(f"demo CVAT export: {path} ({args.num_train} train, {args.num_val} val)")


if __name__ == "__main__":
    run_command(main, parse_args)
