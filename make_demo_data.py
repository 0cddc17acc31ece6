"""Write the built-in demo dataset: a synthetic CVAT "Segmentation mask 1.1" export.

Examples:

    python make_demo_data.py --output build/demo/cvat_export
    python make_demo_data.py --output /tmp/shapes --num_train 50 --num_val 10 --size 128 128
"""

from full_semantic.demo_data import DemoDataConfig, write_demo_export
from semseg.base.cli import parse_config, run_command


def parse_args(argv=None):
    return parse_config(DemoDataConfig, __doc__, argv)


def main(args):
    path = write_demo_export(args.output, args.num_train, args.num_val, args.size, args.seed)
    print(f"demo CVAT export: {path} ({args.num_train} train, {args.num_val} val)")


if __name__ == "__main__":
    run_command(main, parse_args)
