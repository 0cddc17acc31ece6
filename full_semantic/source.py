"""What a source of the `full_semantic` builder declares, and what its readers share.

Each source module (`cvat.py`, `cityscapes.py`, ...) declares itself once with a
`Source`: its reader, image channels, class sets, extra features, what `--manual_dir`
must be and a homepage. The builder lists the declarations and reads nothing else:

    MANUAL_DIR = "the dataset folder (classes.json, images/, labels/) or a .zip of it"
    HOMEPAGE = "https://..."
    # name, reader `(manual_dir, scratch_dir, config) -> dataset`, texts, channels
    SOURCE = Source("folder", open_source, MANUAL_DIR, HOMEPAGE, channels=(1, 3, 4))

A reader returns a dataset with `class_names`, `palette`, `split_names`,
`items(split)` (a list of what names one example's files, picklable), `key(item)` (the
example's key, from its item alone) and `read(item)` returning
`(key, {"image", "mask", "file_name", ...})`; `ExampleReader` adds `examples(split)` and
`num_examples(split)` on top. The plain build reads the items in order; the Beam build
(`--beam_pipeline_options`, `full_semantic/beam_build.py`) orders them by key and sends
them to its workers in shards, which call `read` in parallel. `SourceDataset` holds
what the folder readers have in common: the folder and how to name its files, the class
table, the examples of each split.
"""

import dataclasses
import logging
from collections.abc import Callable

from etils import epath

from full_semantic import archives, raster
from full_semantic.class_table import ClassTable
from full_semantic.file_lists import index_files, resolve_split_folder
from semseg.base.errors import InputError
from semseg.base.files import IMAGE_EXTENSIONS

logger = logging.getLogger(__name__)

_MAX_NAMES_SHOWN = 3


@dataclasses.dataclass(frozen=True)
class Source:
    """One source's declaration.

    Attributes:
        name: str, the config field `source` that selects it.
        open: callable `(manual_dir, scratch_dir, config) -> dataset`.
        manual_dir: str, what `--manual_dir` must be, for messages.
        homepage: str, the dataset's or tool's page (the TFDS `homepage`).
        channels: tuple of int, the image channel counts it can produce (config
            field `channels`).
        class_sets: tuple of str, its class sets (config field `class_set`), the
            first being the default; empty for one fixed set.
        text_features: tuple of str, the string features its examples carry beside
            `file_name`.
    """

    name: str
    open: Callable | None
    manual_dir: str
    homepage: str
    channels: tuple = (3,)
    class_sets: tuple = ()
    text_features: tuple = ()


class ExampleReader:
    """`examples(split)` and `num_examples(split)` of a dataset from its `items(split)`
    and `read(item)`; `items` defaults to the lists of `set_examples`."""

    def set_examples(self, examples):
        """`examples`: dict split -> list of items (what `read` decodes), one per example."""
        self._examples = examples
        self.split_names = list(examples)

    def items(self, split):
        """The items of one split, in order: `read(item)` decodes one example."""
        return self._examples[split]

    def key(self, item):
        """The key `read(item)` returns, known without decoding anything: by default
        the item's first element (items such as `(name, image path, ...)`)."""
        return item[0]

    def num_examples(self, split):
        """Number of examples `examples(split)` yields."""
        return len(self.items(split))

    def examples(self, split):
        """Decodes the examples of one split: `read` of each item, in order."""
        for item in self.items(split):
            yield self.read(item)

    def __getstate__(self):
        """The reader as Beam sends it to its workers: without the item lists, which they
        get in their shards (`read` needs none; halves what Beam pickles and compresses)."""
        state = dict(self.__dict__)
        state.pop("_examples", None)
        return state


class SourceDataset(ExampleReader):
    """A source folder's files, classes and examples by split.

    Args:
        root: path-like, the dataset folder.
        zip_path: path-like or None, the zip `root` was extracted from (messages name files
            by their place in it).

    Every source's constructor also takes `void_labels`, a sequence of class names mapped
    to 255 and dropped, after its own options.

    Attributes (every source's):
        class_names: list of str, set by `set_classes`.
        palette: list of `[r, g, b]`, set by `set_classes`.
        split_names: list of str, set by `set_examples`.
    """

    def __init__(self, root, zip_path=None):
        self.root = epath.Path(root)
        self._describe = archives.describer(self.root, zip_path)

    def set_classes(self, names, palette, void_labels, where, ignored_values=()):
        """The source's classes, with `void_labels` dropped (`ClassTable`)."""
        self._table = ClassTable(
            names, palette, void_labels, where=where, ignored_values=ignored_values
        )
        self.class_names = self._table.class_names
        self.palette = self._table.palette

    def index_images(self, folder, extensions=IMAGE_EXTENSIONS):
        """Every image under `root/folder` by key; none at all is an `InputError`."""
        images = index_files(self.root / folder, extensions, self._describe, "image")
        if not images:
            raise InputError(
                f"{self._describe(self.root / folder)} holds no image ({', '.join(extensions)})."
            )
        return images

    def warn_orphans(self, keys, images, text):
        """Logs the keys (e.g. of label files) that have no image; `text` names them."""
        orphans = sorted(set(keys) - set(images))
        if orphans:
            logger.warning(
                "%d %s (first: %s)", len(orphans), text, ", ".join(orphans[:_MAX_NAMES_SHOWN])
            )

    def listed_splits(self, splits_dir, images, images_dir):
        """The `(key, image path)` of each `splits_dir/NAME.txt` list, or None without lists."""
        return resolve_split_folder(
            self.root / splits_dir, images, self._describe, f"{images_dir}/"
        )

    def example(self, key, image, raw_ids, mask_where, **features):
        """`(key, example)` with the mask's raw ids mapped to class ids and PNG-encoded."""
        return key, {
            "image": image,
            "mask": raster.encode_png(self._table.map(raw_ids, mask_where)),
            "file_name": key,
            **features,
        }


def read_example(item, source, features):
    """`source.read(item)` with only the features of this config: `auto` keeps the
    common ones (UTokyo's `daytime` needs its own config)."""
    key, example = source.read(item)
    return key, {name: value for name, value in example.items() if name in features}
