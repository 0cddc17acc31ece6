"""`full_semantic`: the TFDS dataset of the toolkit, built from labelling-tool exports
(CVAT), public datasets (Cityscapes, MiniCity, UTokyo multispectral, AIHub satellite)
and plain folders of images and index masks.

Build it with `tfds build full_semantic --config CONFIG --manual_dir DATA --data_dir DIR`
(configs and layouts in `full_semantic/README.md`). Tools beside it:
`python -m full_semantic.stats` (class statistics and weights) and
`python -m full_semantic.split_rgbt` (UTokyo 4-channel images to RGB and thermal PNGs).
"""
