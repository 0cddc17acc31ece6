"""Reads a CVAT "Segmentation mask 1.1" export into class-id masks.

Kept whole (~450 lines): the labelmap, split lists and mask reading of one format.

An export is a folder (or a `.zip` of one) laid out as::

    labelmap.txt                      # "name:r,g,b:parts:actions" per class
    ImageSets/Segmentation/train.txt  # one image name per line (or default.txt, ...)
    JPEGImages/NAME.jpg               # any of .jpg .jpeg .png .bmp .tif .tiff .webp
    SegmentationClass/NAME.png        # RGB colour mask, one labelmap colour per class
    SegmentationObject/NAME.png       # instance masks, not read

`open_export` opens one (`open_source` is the same for the `full_semantic` builder,
which passes its config):

    export = open_export(manual_dir, scratch_dir, void_labels=("background",))
    export.class_names, export.palette  # classes kept, in labelmap order
    for key, example in export.examples("train"):
        ...  # {"image": bytes or uint8 (H, W, 3), "mask": PNG bytes, "file_name": str}

Every mistake in the export raises `semseg.base.errors.InputError` naming the file.
All file access goes through `etils.epath`, so any `tf.io.gfile` filesystem works.
"""

import dataclasses
import logging

import numpy as np
from etils import epath

from full_semantic import archives, file_lists, raster
from full_semantic.file_lists import read_text
from full_semantic.source import ExampleReader, Source
from semseg.base.errors import InputError
from semseg.base.files import IMAGE_EXTENSIONS
from semseg.base.labels import IGNORE_INDEX

logger = logging.getLogger(__name__)

LABELMAP_FILE = "labelmap.txt"
LISTS_DIR = "ImageSets/Segmentation"
IMAGES_DIR = "JPEGImages"
MASKS_DIR = "SegmentationClass"
OBJECT_MASKS_DIR = "SegmentationObject"  # instance masks, read by augment_data only
MASK_EXTENSIONS = (".png",)
EXPORT_DESCRIPTION = "a CVAT 'Segmentation mask 1.1' export"
# The colour of CVAT's `background`, and of the blank masks `blank_missing_masks` stands for.
BLANK_COLOR = (0, 0, 0)
_MAX_NAMES_SHOWN = 3


@dataclasses.dataclass(frozen=True)
class LabelmapEntry:
    """One class of `labelmap.txt`.

    Attributes:
        name: str, the class name.
        color: `(r, g, b)` ints, the colour of the class in `SegmentationClass/` masks.
        line_number: int, 1-based line of `labelmap.txt` the class comes from.
    """

    name: str
    color: tuple[int, int, int]
    line_number: int


@dataclasses.dataclass(frozen=True)
class ExampleFiles:
    """The files of one listed name.

    Attributes:
        name: str, the name as listed in `ImageSets/Segmentation/*.txt`.
        image: `epath.Path` of the image in `JPEGImages/`.
        mask: `epath.Path` of the colour mask in `SegmentationClass/`, or None
            for an image built with a blank mask (`blank_missing_masks`).
    """

    name: str
    image: epath.Path
    mask: epath.Path | None


def format_labelmap(classes, header=True):
    """The `labelmap.txt` text of `(name, (r, g, b))` pairs, in order, as CVAT writes it
    (what `read_labelmap` reads back); `header`: CVAT's comment line first."""
    lines = ["# label:color_rgb:parts:actions"] if header else []
    lines += [
        f"{name}:{','.join(str(int(channel)) for channel in color)}::" for name, color in classes
    ]
    return "\n".join(lines) + "\n"


def read_labelmap(path, display_name=None):
    """Parses a CVAT `labelmap.txt`.

    Lines are `name:r,g,b:parts:actions` (the last two fields may be empty or
    missing); blank lines and lines starting with `#` are ignored.

    Args:
        path: path-like, the `labelmap.txt` file.
        display_name: str naming the file in error messages; defaults to `path`.

    Returns:
        list of `LabelmapEntry` in file order.

    Raises:
        InputError: if the file is missing, a line is malformed, a name or a
            colour is repeated, or no class is defined.
    """
    path = epath.Path(path)
    display_name = display_name or str(path)
    if not path.exists():
        raise InputError(f"{display_name} not found: a CVAT export needs a {LABELMAP_FILE}.")
    entries = []
    names = {}
    colors = {}
    text = read_text(path, lambda _: display_name)
    for line_number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        entry = _parse_labelmap_line(display_name, line_number, line)
        if entry.name in names:
            raise InputError(
                f"{display_name} line {line_number}: class {entry.name!r} is already defined "
                f"on line {names[entry.name]}. Received: {line!r}"
            )
        if entry.color in colors:
            raise InputError(
                f"{display_name} line {line_number}: colour {entry.color} is already used by class "
                f"{colors[entry.color]!r}; each class needs its own colour. Received: {line!r}"
            )
        names[entry.name] = line_number
        colors[entry.color] = entry.name
        entries.append(entry)
    if not entries:
        raise InputError(
            f"{display_name} defines no class: expected lines like 'road:128,64,128::'."
        )
    return entries


def _parse_labelmap_line(display_name, line_number, line):
    """Parses one non-comment line of `labelmap.txt` into a `LabelmapEntry`."""
    expected = "expected 'name:r,g,b::' with r, g, b integers in 0..255"
    fields = line.split(":")
    name = fields[0].strip()
    if len(fields) < 2 or len(fields) > 4 or not name:
        raise InputError(f"{display_name} line {line_number}: {expected}. Received: {line!r}")
    channels = fields[1].split(",")
    try:
        color = tuple(int(channel.strip()) for channel in channels)
    except ValueError:
        color = ()
    if len(color) != 3 or not all(0 <= channel <= 255 for channel in color):
        raise InputError(f"{display_name} line {line_number}: {expected}. Received: {line!r}")
    return LabelmapEntry(name=name, color=color, line_number=line_number)


def read_split_lists(export_dir, describe=None):
    """Reads the `ImageSets/Segmentation/*.txt` lists of an export.

    Each `NAME.txt` becomes split `NAME`; a lone `default.txt` becomes `train`
    (next to other lists it stays `default`). Blank lines are ignored.

    Args:
        export_dir: path-like, the export folder.
        describe: callable mapping a path relative to `export_dir` (str) to the
            text naming it in messages; defaults to the full path.

    Returns:
        dict mapping split name to `(list_path, names)`, `names` a list of str
        in file order. Empty lists are left out with a warning.

    Raises:
        InputError: if there is no list, a list name is not a valid split name,
            a list repeats a name, or a name leaves the export folder.
    """
    export_dir = epath.Path(export_dir)
    if describe is None:

        def describe(relative):
            return str(export_dir / relative)

    lists_dir = export_dir / LISTS_DIR
    list_paths = sorted(lists_dir.glob("*.txt")) if lists_dir.is_dir() else []
    if not list_paths:
        raise InputError(
            f"{describe(LISTS_DIR)} holds no split list: expected {LISTS_DIR}/train.txt, "
            "val.txt, ... or default.txt, one image name per line."
        )
    lists = file_lists.read_split_lists(
        list_paths, lambda path: describe(epath.Path(path).relative_to(export_dir).as_posix())
    )
    if not lists:
        raise InputError(f"every list in {describe(LISTS_DIR)} is empty: no image to convert.")
    if len(list_paths) == 1 and "default" in lists:
        lists = {"train": lists["default"]}
    return {split: (list_path, list(names)) for split, (list_path, names) in lists.items()}


def locate_export(manual_dir, scratch_dir, object_masks=False):
    """Finds the export folder behind `--manual_dir`, extracting a zip if needed.

    Args:
        manual_dir: path-like, an export folder, a `.zip` of one, or a folder
            holding exactly one such `.zip` and no `labelmap.txt`.
        scratch_dir: path-like, an empty folder where a zip is extracted; the
            caller deletes it once the examples are written.
        object_masks: bool, also extract `SegmentationObject/` (instance masks) from a
            zip; the builder does not read them.

    Returns:
        `(export_dir, origin)`: the `epath.Path` of the export folder, and the
        zip path if it came from a zip (else None), for error messages.

    Raises:
        InputError: if `manual_dir` is none of the above.
    """
    read = (LISTS_DIR, IMAGES_DIR, MASKS_DIR) + ((OBJECT_MASKS_DIR,) if object_masks else ())
    return archives.locate_root(
        manual_dir, scratch_dir, LABELMAP_FILE, EXPORT_DESCRIPTION, read=read
    )


def open_export(manual_dir, scratch_dir, void_labels=(), blank_missing_masks=False):
    """Opens the CVAT export behind `--manual_dir` (folder, zip, or folder with one zip).

    Args:
        manual_dir: path-like, see `locate_export`.
        scratch_dir: path-like, an empty folder for extracting a zip.
        void_labels: sequence of str, labelmap class names mapped to
            `IGNORE_INDEX` and dropped from the class list.
        blank_missing_masks: bool, build a listed image without a mask as if
            its mask were all black (CVAT's `background`) instead of failing.

    Returns:
        a validated `CvatExport`.

    Raises:
        InputError: for a missing or malformed export (see `CvatExport`).
    """
    export_dir, zip_path = locate_export(manual_dir, scratch_dir)
    return CvatExport(
        export_dir,
        void_labels=void_labels,
        zip_path=zip_path,
        blank_missing_masks=blank_missing_masks,
    )


def open_source(manual_dir, scratch_dir, config):
    """The `cvat` reader of the `full_semantic` builder: `open_export` with the config's options.

    Args:
        manual_dir: path-like, see `locate_export`.
        scratch_dir: path-like, an empty folder for extracting a zip.
        config: the builder config; `void_labels` and `blank_missing_masks` are read.

    Returns:
        a validated `CvatExport`.
    """
    return open_export(
        manual_dir,
        scratch_dir,
        void_labels=config.void_labels,
        blank_missing_masks=config.blank_missing_masks,
    )


class CvatExport(ExampleReader):
    """A validated CVAT "Segmentation mask 1.1" export.

    Construction reads only the small files (labelmap, lists, folder listings)
    and checks every listed name has a mask; images are decoded by `examples`.

    Args:
        export_dir: path-like, the export folder (holding `labelmap.txt`).
        void_labels: sequence of str, class names mapped to `IGNORE_INDEX` and
            dropped from `class_names`; the others are renumbered 0..K-1.
        zip_path: path-like or None, the zip the folder was extracted from,
            named in error messages instead of the temporary folder.
        blank_missing_masks: bool, give a listed image without a mask an
            all-black mask (the class coloured `(0, 0, 0)`, CVAT's `background`)
            instead of failing; the labelmap then needs that colour.

    Attributes:
        class_names: list of str, the kept classes in labelmap order.
        palette: list of `[r, g, b]` int lists, the labelmap colour of each kept class.
        split_names: list of str, the splits with at least one example.

    Raises:
        InputError: if `labelmap.txt` or the split lists are missing or
            malformed, `void_labels` names an unknown class, or a listed name has
            an image but no mask (or no listed name of a split has an image).
    """

    def __init__(self, export_dir, void_labels=(), zip_path=None, blank_missing_masks=False):
        self.export_dir = epath.Path(export_dir)
        self.zip_path = epath.Path(zip_path) if zip_path is not None else None
        self.blank_missing_masks = bool(blank_missing_masks)
        entries = read_labelmap(
            self.export_dir / LABELMAP_FILE, display_name=self._where(LABELMAP_FILE)
        )
        void_labels = tuple(void_labels)
        known_names = [entry.name for entry in entries]
        unknown = [name for name in void_labels if name not in known_names]
        if unknown:
            raise InputError(
                f"{self._where(LABELMAP_FILE)}: void_labels {unknown} are not classes of the "
                f"labelmap; expected some of {known_names}."
            )
        kept = [entry for entry in entries if entry.name not in void_labels]
        if not kept:
            raise InputError(
                f"{self._where(LABELMAP_FILE)}: void_labels {list(void_labels)} leave no class."
            )
        if len(kept) > IGNORE_INDEX:
            raise InputError(
                f"{self._where(LABELMAP_FILE)}: {len(kept)} classes, but uint8 masks hold at "
                f"most {IGNORE_INDEX} (id {IGNORE_INDEX} means ignore)."
            )
        self.class_names = [entry.name for entry in kept]
        self.palette = [list(entry.color) for entry in kept]
        class_id_of_name = {entry.name: class_id for class_id, entry in enumerate(kept)}
        ids = [class_id_of_name.get(entry.name, IGNORE_INDEX) for entry in entries]
        self._colors = raster.ColorLookup([entry.color for entry in entries], ids, LABELMAP_FILE)
        self._blank_id = dict(zip((entry.color for entry in entries), ids)).get(BLANK_COLOR)
        if self.blank_missing_masks and self._blank_id is None:
            raise InputError(
                f"{self._where(LABELMAP_FILE)}: blank_missing_masks needs a class coloured "
                f"{BLANK_COLOR} (CVAT's background) for the blank masks; the labelmap has none."
            )
        self.set_examples(self._resolve_splits(read_split_lists(self.export_dir, self._where)))

    def _where(self, relative):
        """Names a file of the export in messages: its path, or its place in the zip."""
        if self.zip_path is None:
            return str(self.export_dir / relative)
        return f"{relative} (in {self.zip_path})"

    def _relative(self, path):
        return epath.Path(path).relative_to(self.export_dir).as_posix()

    def _resolve_splits(self, split_lists):
        """Matches every listed name to its image and mask files."""
        images = file_lists.index_all_files(self.export_dir / IMAGES_DIR, IMAGE_EXTENSIONS)
        masks = file_lists.index_all_files(self.export_dir / MASKS_DIR, MASK_EXTENSIONS)
        resolved = {}
        for split, (list_path, names) in split_lists.items():
            list_name = self._where(self._relative(list_path))
            examples = []
            missing = []
            blanked = []
            for name in names:
                image_paths = images.get(name, [])
                if not image_paths:
                    missing.append(name)
                    continue
                if len(image_paths) > 1:
                    found = ", ".join(sorted(self._relative(path) for path in image_paths))
                    raise InputError(
                        f"{list_name}: name {name!r} matches several images ({found}); "
                        "keep one image per name."
                    )
                mask_paths = masks.get(name, [])
                if not mask_paths and self.blank_missing_masks:
                    blanked.append(name)
                    examples.append(ExampleFiles(name=name, image=image_paths[0], mask=None))
                    continue
                if len(mask_paths) != 1:
                    problem = "no mask" if not mask_paths else "several masks"
                    raise InputError(
                        f"{self._where(self._relative(image_paths[0]))}: {problem} for name "
                        f"{name!r} listed in {list_name}; expected exactly one "
                        f"{MASKS_DIR}/{name}.png."
                    )
                examples.append(ExampleFiles(name=name, image=image_paths[0], mask=mask_paths[0]))
            if not examples:
                raise InputError(
                    f"{list_name}: none of the {len(names)} listed names has an image in "
                    f"{IMAGES_DIR}/ (first: {', '.join(names[:_MAX_NAMES_SHOWN])})."
                )
            if missing:
                logger.warning(
                    "skipped %d of %d names listed in %s: no image in %s/ (first: %s)",
                    len(missing),
                    len(names),
                    list_name,
                    IMAGES_DIR,
                    ", ".join(missing[:_MAX_NAMES_SHOWN]),
                )
            if blanked:
                logger.warning(
                    "%d of %d images listed in %s have no mask in %s/: built with all-%s masks "
                    "(blank_missing_masks; first: %s)",
                    len(blanked),
                    len(names),
                    list_name,
                    MASKS_DIR,
                    "ignore" if self._blank_id == IGNORE_INDEX else "background",
                    ", ".join(blanked[:_MAX_NAMES_SHOWN]),
                )
            resolved[split] = examples
        return resolved

    def read(self, files):
        """Decodes one example; `files` is an `ExampleFiles` of `items(split)` (the
        listed names that have an image).

        Returns:
            `(key, example)`: key is the listed name; example is a dict with
            `image` (encoded JPEG/PNG bytes as stored when already RGB, else a
            uint8 `(H, W, 3)` array), `mask` (PNG bytes of uint8 `(H, W)` class
            ids, `IGNORE_INDEX` for void classes) and `file_name` (the name).

        Raises:
            InputError: if an image or mask cannot be decoded, their sizes
                differ, or a mask holds a colour missing from the labelmap.
        """
        return self.key(files), self._read_example(files)

    def key(self, files):
        """The key of `read(files)`: the listed name."""
        return files.name

    def _read_example(self, files):
        image_where = self._where(self._relative(files.image))
        encoded_image, image_size = raster.image_feature(
            files.image.read_bytes(), 3, image_where, drop_alpha=True
        )
        if files.mask is None:
            width, height = image_size
            return {
                "image": encoded_image,
                "mask": raster.encode_png(np.full((height, width), self._blank_id, np.uint8)),
                "file_name": files.name,
            }
        mask_where = self._where(self._relative(files.mask))
        mask_bytes = files.mask.read_bytes()
        mask = raster.decode(mask_bytes, mask_where)
        raster.check_8bit(mask, mask_bytes, mask_where)
        raster.check_size(mask.size, image_size, mask_where, image_where)
        class_ids = self._colors.map(np.asarray(mask.convert("RGB")), mask_where)
        return {
            "image": encoded_image,
            "mask": raster.encode_png(class_ids),
            "file_name": files.name,
        }


# What --manual_dir must be, for messages, and the TFDS homepage.
MANUAL_DIR = (
    "a CVAT 'Segmentation mask 1.1' export folder, a .zip of one, or a folder holding "
    "exactly one such .zip"
)
HOMEPAGE = "https://www.cvat.ai/"
SOURCE = Source("cvat", open_source, MANUAL_DIR, HOMEPAGE)
