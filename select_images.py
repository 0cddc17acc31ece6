r"""Pick the unlabelled images to label next: the model's most uncertain, diverse ones.

Examples:

    python select_images.py --input pool/ --count 20 --output next_task/
    python select_images.py --work_dir runs/camvid-ddrnet23_slim --input frames/ --count 50 \
        --output next_task/ --max_similarity 0.85

Scores every image of --input (module doc of semseg/labelling/selection.py: pixel entropy, flip
disagreement, class rarity), picks the --count best while skipping near-duplicates
(consecutive video frames), and writes to --output:

    scores.csv           every image: rank (0: not picked), score and its parts
    picks.jpg            the picks' overlays on one sheet, captioned
    picks.txt            the picked files, one per line (the images of a new CVAT task)
    pre_annotations.zip  the picks' predicted masks as CVAT "Segmentation mask 1.1"
                         annotations: create the task from picks.txt, then Actions >
                         Upload annotations
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from semseg.base.cli import parse_config, run_command  # noqa: E402
from semseg.base.files import check_new_output, check_output_dir  # noqa: E402
from semseg.labelling.options import SelectImagesConfig  # noqa: E402
from semseg.weights.published_runs import resolve_work_dir  # noqa: E402


def parse_args(argv=None):
    config = parse_config(SelectImagesConfig, __doc__, argv)
    config.work_dir = resolve_work_dir(config.work_dir, weights=config.weights)
    check_output_dir(config.output, "--output")
    check_new_output(config.output, "--output", config.input, config.overwrite)
    return config


def main(args):
    import tqdm

    from semseg.labelling.selection import select_images
    from semseg.predict.inference import Predictor, list_images

    paths = list_images(args.input)
    predictor = Predictor.from_work_dir(args.work_dir, args.checkpoint)
    picks, total = select_images(
        predictor,
        paths,
        args.count,
        args.output,
        max_similarity=args.max_similarity,
        min_area=args.min_area,
        progress=tqdm.tqdm,
    )
    print(f"picked {len(picks)} of {total} images into {args.output}:")
    for pick in picks[:10]:
        print(f"  #{pick.rank} {pick.path}  score {pick.score:.3f}")
    if len(picks) < args.count:
        if len(picks) == total:
            print(f"  (only {total}: the pool holds {total} images)")
        else:
            print(
                f"  (only {len(picks)}: the other {total - len(picks)} are near-duplicates of "
                "the picks; raise --max_similarity)"
            )


if __name__ == "__main__":
    run_command(main, parse_args)
