"""TFDS builder turning semantic-segmentation exports of labelling tools into TFRecords.

Run from the project root:

    tfds build full_semantic --config cvat --manual_dir path/to/cvat_export \
        --data_dir ~/tensorflow_datasets
    tfds build full_semantic \
        --config '{"name": "camvid", "source": "cvat", "void_labels": ["background"]}' \
        --manual_dir ../shared/data/camvid_cvat --data_dir ~/tensorflow_datasets

Then read the classes back from the dataset:

    builder = tfds.builder_from_directory("~/tensorflow_datasets/full_semantic/camvid/1.0.0")
    builder.info.metadata["class_names"], builder.info.metadata["palette"]

Each `source` has a reader in its own module, registered in `SOURCE_READERS`. A
reader is called as `reader(manual_dir, scratch_dir, void_labels)` and returns an
object with `class_names`, `palette`, `split_names` and `examples(split)`
yielding `(key, {"image", "mask", "file_name"})`.
"""

import dataclasses
import logging
import sys
import tempfile

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from full_semantic import cvat
from semseg.errors import InputError
from semseg.labels import IGNORE_INDEX

logger = logging.getLogger(__name__)

# Source name -> reader `(manual_dir, scratch_dir, void_labels) -> source`.
SOURCE_READERS = {
    "cvat": cvat.open_export,
}


@dataclasses.dataclass(eq=False)
class FullSemanticConfig(tfds.core.BuilderConfig):
    """A `full_semantic` variant: which reader to use and which classes to ignore.

    Custom variants come from JSON on the command line, e.g.
    `--config '{"name": "camvid", "source": "cvat", "void_labels": ["background"]}'`.

    Attributes:
        source: str, a key of `SOURCE_READERS` (e.g. `"cvat"`).
        void_labels: tuple of str, class names mapped to `IGNORE_INDEX` (255) and
            dropped from the class list; the remaining ids are renumbered 0..K-1
            in the order of the source's class list. A JSON list is accepted.
    """

    source: str = "cvat"
    void_labels: tuple[str, ...] = ()

    def __post_init__(self):
        if self.source not in SOURCE_READERS:
            raise InputError(
                f"--config {self.name!r}: unknown source {self.source!r}; expected one of "
                f"{sorted(SOURCE_READERS)}."
            )
        void_labels = self.void_labels
        if isinstance(void_labels, str) or not all(isinstance(name, str) for name in void_labels):
            raise InputError(
                f"--config {self.name!r}: void_labels must be a list of class names, "
                f'e.g. ["background"]. Received: void_labels={void_labels!r}'
            )
        self.void_labels = tuple(void_labels)


def config_from_json_fields(**fields):
    """`FullSemanticConfig(**fields)`, with an `InputError` for a misspelled field.

    `tfds build --config '{...}'` calls `Builder.builder_config_cls(**fields)`;
    the dataclass constructor alone would end a typo in a `TypeError` traceback.
    """
    known = [field.name for field in dataclasses.fields(FullSemanticConfig) if field.init]
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise InputError(
            f"--config: unknown field(s) {unknown}; expected some of "
            f"{['name', 'source', 'void_labels', 'description']}."
        )
    return FullSemanticConfig(**fields)


class Builder(tfds.core.GeneratorBasedBuilder):
    """Semantic-segmentation dataset built from a labelling tool's export."""

    # What `tfds build --config '{...json...}'` calls to make a custom config.
    builder_config_cls = staticmethod(config_from_json_fields)

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: CVAT 'Segmentation mask 1.1' exports.",
    }
    BUILDER_CONFIGS = [
        FullSemanticConfig(
            name="cvat",
            source="cvat",
            description="CVAT 'Segmentation mask 1.1' export, every labelmap class kept.",
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Pass the export with `--manual_dir`: a CVAT "Segmentation mask 1.1" export
    folder (holding labelmap.txt, ImageSets/Segmentation/, JPEGImages/ and
    SegmentationClass/), a .zip of it, or a folder holding exactly one such .zip.
    """

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3), dtype=np.uint8),
                    "mask": tfds.features.Image(
                        shape=(None, None, 1), dtype=np.uint8, encoding_format="png"
                    ),
                    "file_name": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "mask"),
            homepage="https://www.cvat.ai/",
            # Filled in `_split_generators`, once the export's classes are known.
            metadata=tfds.core.MetadataDict(),
        )

    def download_and_prepare(self, **kwargs):
        """Builds the dataset; on failure leaves no empty folder behind."""
        try:
            with tempfile.TemporaryDirectory(prefix="full_semantic_") as scratch_dir:
                self._scratch_dir = epath.Path(scratch_dir)
                super().download_and_prepare(**kwargs)
        except BaseException:
            self._remove_empty_folders()
            raise
        finally:
            self._scratch_dir = None

    def _remove_empty_folders(self):
        """Removes `<data_dir>/full_semantic/<config>/` if a failed build left it empty.

        TFDS deletes its `incomplete.*` folder on failure but keeps its parents;
        `<data_dir>/full_semantic/` goes too if it holds nothing but TFDS's `.config`.
        """
        config_dir = self.data_path.parent
        dataset_dir = config_dir.parent
        if config_dir.is_dir() and not any(config_dir.iterdir()):
            config_dir.rmdir()
        if dataset_dir.is_dir() and {entry.name for entry in dataset_dir.iterdir()} <= {".config"}:
            dataset_dir.rmtree()

    def _split_generators(self, dl_manager):
        config = self.builder_config
        reader = SOURCE_READERS[config.source]
        scratch_dir = getattr(self, "_scratch_dir", None)
        if scratch_dir is None:
            raise RuntimeError("full_semantic builds only through `download_and_prepare`.")
        source = reader(_manual_path(dl_manager), scratch_dir, config.void_labels)
        self.info.metadata.update(
            {
                "class_names": list(source.class_names),
                "palette": [list(color) for color in source.palette],
                "ignore_index": IGNORE_INDEX,
                "source": config.source,
            }
        )
        logger.info(
            "%s: %d classes %s, splits %s",
            config.name,
            len(source.class_names),
            source.class_names,
            source.split_names,
        )
        return {split: self._generate_examples(source, split) for split in source.split_names}

    def _generate_examples(self, source, split):
        yield from source.examples(split)


def _manual_path(dl_manager):
    """The `--manual_dir` path: a folder, or a `.zip` (which `dl_manager.manual_dir` rejects)."""
    given = getattr(dl_manager, "_manual_dir", None)
    if given is not None and epath.Path(given).is_file():
        return epath.Path(given)
    try:
        return epath.Path(dl_manager.manual_dir)
    except AssertionError:
        raise InputError(
            f"--manual_dir {given} does not exist or is empty: pass a CVAT 'Segmentation mask "
            "1.1' export folder, a .zip of one, or a folder holding exactly one such .zip."
        ) from None


def _find_input_error(error):
    """The `InputError` in `error` or in the exceptions it was raised from, if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, InputError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _install_input_error_hook():
    """Makes an uncaught `InputError` print `error: <message>` on one line, exit status 1.

    `tfds build` has no handler of its own, so a user mistake in the export would
    end in a traceback. Every other exception goes to the previous hook.
    """
    previous_hook = sys.excepthook
    if getattr(previous_hook, "handles_input_error", False):
        return

    def input_error_hook(exception_type, exception, traceback):
        input_error = _find_input_error(exception)
        if input_error is None:
            previous_hook(exception_type, exception, traceback)
            return
        message = " ".join(str(input_error).splitlines())
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()

    input_error_hook.handles_input_error = True
    sys.excepthook = input_error_hook


_install_input_error_hook()
