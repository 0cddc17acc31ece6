r"""Multiply a labelled dataset offline with albumentations into a new CVAT export.

Examples:

    # Four augmented copies of every train image of a CVAT export (folder or .zip);
    # the originals and the other lists (val.txt, ...) are copied unchanged:
    .venv/bin/python data_augmentation/augment_data.py --rgb_path ../shared/data/camvid_cvat \
        --output_path build/camvid_aug --num_per_image 4 --workers 2
    .venv/bin/tfds build full_semantic \
        --config '{"name": "camvid_aug", "source": "cvat", "void_labels": ["background"]}' \
        --manual_dir build/camvid_aug --data_dir ~/tensorflow_datasets

    # Folders instead of an export, and foregrounds pasted onto new backgrounds:
    .venv/bin/python data_augmentation/augment_data.py --rgb_path export/JPEGImages \
        --mask_path export/SegmentationClass --obj_mask_path export/SegmentationObject \
        --label_map_path export/labelmap.txt --bg_path backgrounds/ \
        --ops shift,rotate,scale,flip,color,blur,bg_replace --num_per_image 8 \
        --output_path build/aug --seed 1

Inputs: `--rgb_path` is a folder of images, or a CVAT export (folder or .zip,
recognised by its labelmap.txt), whose SegmentationClass/, labelmap.txt and
SegmentationObject/ are then the defaults of `--mask_path`, `--label_map_path`
and `--obj_mask_path`. From an export, the `--split` list is augmented (or the
names of `--image_list`); from folders, every image (or `--image_list`).

Output (`--output_path`, built in a hidden folder beside it and renamed at the
end; a non-empty folder is replaced only with `--overwrite`, and only if it is
an earlier output of this tool): a CVAT
"Segmentation mask 1.1" export with labelmap.txt, ImageSets/Segmentation/
SPLIT.txt, JPEGImages/, SegmentationClass/ (labelmap colours only),
SegmentationObject/ (when the input has instance masks), VIS_MASK/ overlays to
look at, and augmentation.json (settings; source, ops and background of every
example). Originals are copied byte for byte (`--no-keep_originals` leaves them
out); copies are named NAME_aug00, NAME_aug01, ...

Ops (`--ops`, any subset; each applied to a copy with `--op_probability`, at
least one per copy; applied in this order whatever the order given):
  shift, rotate, scale  one affine warp (`--shift_limit`, `--rotate_limit`,
                        `--scale_limit`); masks resampled with nearest neighbour
  flip                  horizontal flip
  bg_replace            the foreground (pixels of a non-background class, or of
                        an object when instance masks are given) pasted onto a
                        random `--bg_path` image resized to cover the frame
  color, blur           colour jitter, Gaussian or motion blur (image only)

Pixels that a warp uncovers at the border are black in the image and, in the
mask, the background class (`--border background`, the default: exports keep
every pixel labelled) or, with `--border ignore`, the class `--ignore_label`
(default: a class named `ignore`) that you then list in `void_labels` when
building. Under bg_replace they show the new background and are labelled so.

The output depends only on the inputs, the options and `--seed`: every copy
draws its randomness from (seed, name, copy number), not from `--workers`.
"""

import json
import sys
from pathlib import Path

if not __package__:
    # Run as `python data_augmentation/augment_data.py`: import from the project root.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from data_augmentation.options import AugmentOptions  # noqa: E402
from semseg.base.cli import parse_config, run_command  # noqa: E402


def parse_args(argv=None):
    return parse_config(AugmentOptions, __doc__, argv)


def main(args):
    import tqdm

    from data_augmentation.augment_export import augment_export

    summary = augment_export(args, progress=tqdm.tqdm)
    other = "".join(f", {split} {count} (copied)" for split, count in summary.other_splits.items())
    print(
        f"{summary.num_sources} images augmented into {summary.output_path}: {summary.split} "
        f"{summary.num_originals + summary.num_augmented} ({summary.num_originals} originals + "
        f"{summary.num_augmented} augmented){other}."
    )
    if summary.void_label is not None:
        fields = {"name": "augmented", "source": "cvat", "void_labels": [summary.void_label]}
        config = f"'{json.dumps(fields)}'"
    else:
        config = "cvat"
    print(
        f"Build it: tfds build full_semantic --config {config} --manual_dir {summary.output_path}"
    )


if __name__ == "__main__":
    run_command(main, parse_args)
