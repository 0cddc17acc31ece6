"""`full_semantic`: the TFDS dataset of the toolkit, built from labelling-tool exports.

Build it with `tfds build full_semantic --config cvat --manual_dir EXPORT --data_dir DIR`
(see `full_semantic/README.md`).
"""
