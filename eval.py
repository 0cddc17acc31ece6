"""Evaluate a trained run: per-class IoU, precision, recall, F1 and mIoU / mAcc / aAcc.

Examples:

    python eval.py --work_dir runs/camvid_ddrnet --split val
    python eval.py --work_dir runs/camvid_ddrnet --split val --max_examples 20 --visualize
    python eval.py --work_dir runs/camvid_ddrnet --split test --checkpoint last

Writes W/eval/<split>/metrics.json and report.md, and with --visualize
image | ground truth | prediction panels under W/eval/<split>/vis/.
"""

import argparse
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from semseg.errors import InputError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work_dir", required=True, help="work dir written by train.py")
    parser.add_argument("--split", default="val")
    parser.add_argument("--max_examples", type=int, help="evaluate only the first N examples")
    parser.add_argument(
        "--checkpoint", default="best", help="best, last, or the path of a .keras file"
    )
    parser.add_argument("--data_dir", help="TFDS data dir, if the dataset has moved since training")
    parser.add_argument("--visualize", action="store_true", help="write comparison panels")
    parser.add_argument("--num_vis", type=int, default=16, help="panels to write")
    parser.add_argument(
        "--fail_under", type=float, help="exit with status 1 if mIoU (0..1) is below this"
    )
    return parser.parse_args(argv)


def main(args):
    from semseg import data
    from semseg.evaluation import evaluate, write_report
    from semseg.inference import Predictor
    from semseg.metrics import format_table
    from semseg.run_config import load_run

    run = load_run(args.work_dir)
    predictor = Predictor.from_work_dir(args.work_dir, args.checkpoint)
    builder, _ = data.load_builder(run.config.dataset, args.data_dir or run.config.data_dir)
    output_dir = run.config.work_path / "eval" / args.split
    metrics = evaluate(
        predictor,
        builder,
        args.split,
        max_examples=args.max_examples,
        vis_dir=output_dir / "vis" if args.visualize else None,
        num_vis=args.num_vis,
    )
    write_report(metrics, output_dir)
    print(format_table(metrics))
    print(f"report: {output_dir}")
    if args.fail_under is not None and (metrics["mIoU"] or 0.0) < args.fail_under:
        sys.exit(f"error: mIoU {metrics['mIoU']} is below --fail_under {args.fail_under}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main(parse_args())
    except InputError as error:
        sys.exit(f"error: {error}")
