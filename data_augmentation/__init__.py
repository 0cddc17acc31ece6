"""Offline augmentation of labelled datasets, for `data_augmentation/*.py` command lines.

* `augment_export` (`augment_data.py`): multiplies a CVAT "Segmentation mask 1.1"
  export (or folders of images and colour masks) with albumentations into a new
  export that `tfds build full_semantic --config cvat` reads directly.
* `blank_labels` (`make_blank_label.py`): gives images that CVAT exported without
  a mask an all-background one.
* `augmentation`: the op pipeline; `source_files`: finding the input files. Colour
  masks are decoded by `full_semantic.label_colors`, as the builder decodes them.
"""
