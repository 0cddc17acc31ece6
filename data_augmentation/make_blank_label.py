r"""Give images without a mask an all-background one, so an export can be built.

CVAT exports no mask for an image without annotations; `tfds build` and
`augment_data.py` then stop on that image. If such images are truly background
only, this writes their masks: the size of the image, every pixel in the
background class's labelmap colour. Existing masks are never overwritten.

Examples:

    # A CVAT export folder: completes SegmentationClass/ (and SegmentationObject/ with
    # black, "no object", if the export has that folder):
    .venv/bin/python data_augmentation/make_blank_label.py --rgb_path my_export --dry_run
    .venv/bin/python data_augmentation/make_blank_label.py --rgb_path my_export

    # Plain folders, painting the class 'road' instead of 'background':
    .venv/bin/python data_augmentation/make_blank_label.py --rgb_path photos/ \
        --mask_path masks/ --label_map_path labelmap.txt --background_label road

The background class is the labelmap entry named `background`, else the first
entry. Every written file is listed.
"""

import dataclasses
import sys
from pathlib import Path

if not __package__:
    # Run as `python data_augmentation/make_blank_label.py`: import from the project root.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from data_augmentation.options import BlankLabelOptions  # noqa: E402
from semseg.base.cli import parse_config, run_command  # noqa: E402


def parse_args(argv=None):
    return parse_config(BlankLabelOptions, __doc__, argv)


def main(args):
    from data_augmentation.blank_labels import write_blank_labels

    report = write_blank_labels(**dataclasses.asdict(args))
    verb = "would write" if args.dry_run else "wrote"
    for path in report.written:
        print(f"{verb} {path}")
    print(
        f"{verb} {len(report.written)} blank mask(s) in class {report.label!r} {report.color}; "
        f"{report.num_existing} of {report.num_images} images already had a mask."
    )


if __name__ == "__main__":
    run_command(main, parse_args)
