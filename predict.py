"""Segment image files with a trained run: colour masks and overlays.

Examples:

    python predict.py --work_dir runs/camvid_ddrnet --input photos/ --output predictions/
    python predict.py --work_dir runs/camvid_ddrnet --input a.jpg b.png --output out/ --alpha 0.4

    # A published Cityscapes model, no training: downloaded and converted on first use
    python predict.py --weights pidnet_s_cityscapes --input photos/ --output out/

    # Pre-annotations for CVAT: upload pre.zip as "Segmentation mask 1.1" annotations
    python predict.py --input task_images/ --cvat pre.zip --min_area 32

Writes OUTPUT/masks/NAME.png in the dataset's colours and OUTPUT/overlays/NAME.jpg;
with --cvat, also a "Segmentation mask 1.1" zip that CVAT's Upload annotations takes
as it is (labelmap.txt, SegmentationClass/, SegmentationObject/ with one object per
connected region of a class).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from semseg.base.cli import parse_config, run_command  # noqa: E402
from semseg.base.files import (  # noqa: E402
    check_new_output,
    check_output_apart,
    check_output_dir,
    check_output_file,
)
from semseg.predict.options import PredictConfig  # noqa: E402
from semseg.weights.published_runs import resolve_work_dir  # noqa: E402


def parse_args(argv=None):
    config = parse_config(PredictConfig, __doc__, argv)
    config.work_dir = resolve_work_dir(config.work_dir, weights=config.weights)
    if config.output is None:
        # A published model's work dir is in the cache: its predictions go beside the user.
        base = "predictions" if config.weights else config.work_dir
        config.output = os.path.join(base, config.weights or "predictions")
    check_output_dir(config.output, "--output")
    check_output_apart(config.output, config.input, "--output")
    if config.cvat:
        check_output_file(config.cvat, "--cvat", suffix=".zip")
        check_new_output(config.cvat, "--cvat", config.input, config.overwrite)
    return config


def main(args):
    import tqdm

    from semseg.labelling.cvat_masks import CvatMaskArchive
    from semseg.predict.inference import Predictor, list_images, predict_images

    paths = list_images(args.input)
    predictor = Predictor.from_work_dir(args.work_dir, args.checkpoint)
    if not args.cvat:
        count = predict_images(predictor, paths, args.output, args.alpha, progress=tqdm.tqdm)
        print(f"{count} images segmented into {args.output}")
        return
    with CvatMaskArchive(args.cvat, predictor.labels, args.min_area) as archive:
        count = predict_images(
            predictor, paths, args.output, args.alpha, progress=tqdm.tqdm, cvat=archive
        )
    print(f"{count} images segmented into {args.output}")
    print(
        f"CVAT pre-annotations: {args.cvat} (in the task: Actions > Upload annotations > "
        '"Segmentation mask 1.1")'
    )


if __name__ == "__main__":
    run_command(main, parse_args)
