r"""Class statistics of a built `full_semantic` dataset: pixels per class, shares, class weights.

Examples:

    # Every split: tables on stdout, stats/camvid/class_pixels.png and class_stats.json
    python -m full_semantic.stats --dataset full_semantic/camvid --data_dir ~/tensorflow_datasets

    # One split, another output folder
    python -m full_semantic.stats --dataset full_semantic/utokyo_rgbt --split train \\
        --output_dir runs/utokyo_stats

Ignored pixels (255) are counted apart. The suggested class weights (`inverse`, what
`train.py --class_weights auto` uses, and `median`) come from the `train` split; see
`semseg/data/class_stats.py`, which computes everything (a built dataset is read only through
`semseg/`). This module is the command only.
"""

import dataclasses
import logging

from semseg.base.cli import Command, option, parse_config, run_command


@dataclasses.dataclass
class StatsConfig(Command):
    dataset: str = option(required=True, help="built TFDS dataset, e.g. full_semantic/camvid")
    data_dir: str | None = option(help="TFDS data dir (default ~/tensorflow_datasets)")
    split: tuple[str, ...] | None = option(help="splits to count (default: every split)")
    output_dir: str | None = option(help="folder for the chart and JSON (default stats/CONFIG)")


def parse_args(argv=None):
    return parse_config(StatsConfig, __doc__, argv, prog="python -m full_semantic.stats")


def main(args):
    from semseg.data import class_stats

    report = class_stats.describe_dataset(args.dataset, args.data_dir, args.split, args.output_dir)
    print(report.format())


if __name__ == "__main__":
    run_command(main, parse_args, log_level=logging.WARNING)
