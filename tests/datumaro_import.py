"""Imports a CVAT "Segmentation mask 1.1" archive with Datumaro, as CVAT does, and
writes what it got: run in a virtualenv holding Datumaro (see test_cvat_loop.py).

    python datumaro_import.py EXTRACTED_ARCHIVE OUT.npz

OUT.npz holds, per image name, `NAME__objects`, the number of objects, and (when it
has any) `NAME`, the label index (into the archive's labelmap order, background 0) of
every pixel.
"""

import sys

import datumaro as dm
import numpy as np


def main(archive_dir, output):
    dataset = dm.Dataset.import_from(archive_dir, "voc_segmentation")
    names = [category.name for category in dataset.categories()[dm.AnnotationType.label]]
    arrays = {"__labels__": np.array(names)}
    for item in dataset:
        masks = [
            annotation
            for annotation in item.annotations
            if annotation.type == dm.AnnotationType.mask
        ]
        arrays[f"{item.id}__objects"] = np.array(len(masks))
        if not masks:  # all background (the size is unknown without the images)
            continue
        height, width = masks[0].image.shape
        labels = np.zeros((height, width), np.int32)  # background where no object is
        covered = np.zeros((height, width), bool)
        for mask in masks:
            region = mask.image.astype(bool)
            if (covered & region).any():
                raise SystemExit(f"{item.id}: objects overlap")
            labels[region] = mask.label
            covered |= region
        arrays[item.id] = labels
    np.savez(output, **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:])
