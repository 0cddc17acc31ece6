"""Segment image files with a trained run: colour masks and overlays.

Examples:

    python predict.py --work_dir runs/camvid_ddrnet --input photos/ --output predictions/
    python predict.py --work_dir runs/camvid_ddrnet --input a.jpg b.png --output out/ --alpha 0.4

Writes OUTPUT/masks/NAME.png in the dataset's colours (importable into CVAT as
"Segmentation mask 1.1" annotations for correction) and OUTPUT/overlays/NAME.jpg.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from semseg.errors import command_parser, run_command  # noqa: E402
from semseg.files import check_output_dir  # noqa: E402
from semseg.workspace import resolve_work_dir  # noqa: E402


def parse_args(argv=None):
    parser = command_parser(__doc__)
    parser.add_argument(
        "--work_dir",
        help="work dir written by train.py (default: the latest finished run under runs/)",
    )
    parser.add_argument("--input", required=True, nargs="+", help="image files or folders")
    parser.add_argument("--output", help="output folder (default: WORK_DIR/predictions)")
    parser.add_argument("--alpha", type=float, default=0.5, help="mask weight in overlays")
    parser.add_argument(
        "--checkpoint", default="best", help="best, last, or the path of a .keras file"
    )
    args = parser.parse_args(argv)
    args.work_dir = resolve_work_dir(args.work_dir)
    args.output = args.output or os.path.join(args.work_dir, "predictions")
    check_output_dir(args.output, "--output")
    return args


def main(args):
    import tqdm

    from semseg.inference import Predictor, list_images, predict_images

    paths = list_images(args.input)
    predictor = Predictor.from_work_dir(args.work_dir, args.checkpoint)
    count = predict_images(predictor, paths, args.output, args.alpha, progress=tqdm.tqdm)
    print(f"{count} images segmented into {args.output}")


if __name__ == "__main__":
    run_command(main, parse_args)
