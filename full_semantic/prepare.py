"""Building a `full_semantic` config from Python, as
`tfds build full_semantic --config CONFIG --manual_dir DIR --data_dir DATA_DIR` does.

    from full_semantic.prepare import build_dataset

    builder = build_dataset("cvat", "exports/mydata", "~/tensorflow_datasets")
    builder.info.splits["train"].num_examples
"""

import tensorflow_datasets as tfds

from full_semantic.full_semantic_dataset_builder import Builder


def build_dataset(config, manual_dir, data_dir, beam_options=None):
    """Builds (or finds already built) one config of `full_semantic`.

    Args:
        config: a config name (`"cvat"`, `"auto"`, ...) or a `FullSemanticConfig`.
        manual_dir: path-like, the source data (an export folder or `.zip`).
        data_dir: path-like, the TFDS data dir receiving `full_semantic/NAME/VERSION/`.
        beam_options: `None` (build in this process) or Beam `PipelineOptions`.

    Returns:
        The prepared `Builder`.
    """
    builder = Builder(config=config, data_dir=data_dir)
    options = {} if beam_options is None else {"beam_options": beam_options}
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir, **options)
    )
    return builder
