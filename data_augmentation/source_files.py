"""Finding the images, masks and labelmap to augment.

Two ways to point at the input:

* an export: `--rgb_path EXPORT` where `EXPORT` holds `labelmap.txt` (a CVAT
  "Segmentation mask 1.1" folder, or its `.zip`). The masks, labelmap and object
  masks default to `EXPORT/SegmentationClass`, `EXPORT/labelmap.txt` and
  `EXPORT/SegmentationObject` (if present); the names to augment are the
  `--split` list of `ImageSets/Segmentation/`, and the other lists are carried
  over unchanged.
* folders: `--rgb_path IMAGES --mask_path MASKS --label_map_path labelmap.txt`;
  every image of `IMAGES` (searched recursively) is augmented.

`--image_list FILE` (one name per line) replaces the names in both cases.
A name is a path relative to the images folder without extension (`a`,
`sub/b`); its mask is `MASKS/NAME.png`.

    sources = find_sources("camvid_cvat", scratch_dir=tmp)
    sources.examples[0]  # SourceExample(name=..., image=..., mask=..., object_mask=...)
"""

import dataclasses
import logging
import pathlib

from PIL import Image

from full_semantic import cvat, file_lists, raster
from semseg.base.errors import InputError
from semseg.base.files import IMAGE_EXTENSIONS, image_files

logger = logging.getLogger(__name__)

MASK_EXTENSIONS = cvat.MASK_EXTENSIONS
OBJECT_MASKS_DIR = cvat.OBJECT_MASKS_DIR
_MAX_NAMES_SHOWN = 3


@dataclasses.dataclass(frozen=True)
class SourceExample:
    """The files of one input example.

    Attributes:
        name: str, the name (image path relative to the images folder, no extension).
        image: `pathlib.Path` of the image.
        mask: `pathlib.Path` of the colour class mask.
        object_mask: `pathlib.Path` of the instance mask, or None.
        zip_root: folder the export was extracted to, when it came from a zip.
        zip_path: the zip itself, named in messages instead of `zip_root`.
    """

    name: str
    image: pathlib.Path
    mask: pathlib.Path
    object_mask: pathlib.Path | None = None
    zip_root: pathlib.Path | None = None
    zip_path: pathlib.Path | None = None

    def describe(self, path):
        """Names a file in messages: its path, or its place in the zip."""
        return describe_path(path, self.zip_root, self.zip_path)


@dataclasses.dataclass
class SourceSet:
    """Everything `find_sources` resolved.

    Attributes:
        labelmap: `pathlib.Path` of `labelmap.txt`.
        labelmap_name: str naming it in messages.
        examples: list of `SourceExample` to augment, in list order.
        other_splits: dict split name -> list of `SourceExample` copied unchanged
            (the other lists of an export; empty for folders).
        has_object_masks: bool, whether every example has an instance mask.
        input_paths: list of `pathlib.Path` the output must stay clear of.
    """

    labelmap: pathlib.Path
    labelmap_name: str
    examples: list
    other_splits: dict
    has_object_masks: bool
    input_paths: list


def describe_path(path, zip_root=None, zip_path=None):
    """`str(path)`, or `"RELATIVE (in ZIP)"` for a file extracted from a zip."""
    path = pathlib.Path(path)
    if zip_root is None or not path.is_relative_to(zip_root):
        return str(path)
    return f"{path.relative_to(zip_root).as_posix()} (in {zip_path})"


def index_files(folder, extensions):
    """`full_semantic.file_lists.index_all_files` with `pathlib.Path`s.

    Returns:
        dict name -> sorted list of `pathlib.Path`, names in sorted order.
    """
    return {
        name: [pathlib.Path(str(path)) for path in paths]
        for name, paths in file_lists.index_all_files(folder, extensions).items()
    }


def read_image_list(path):
    """Reads an `--image_list`: names one per line, as `full_semantic.file_lists` reads
    split lists (blank lines ignored).

    Raises:
        InputError: if the file is missing or empty, repeats a name, or a name leaves
            the images folder.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise InputError(f"--image_list {path} does not exist.")
    names = list(file_lists.read_name_list(path))
    if not names:
        raise InputError(f"{path} lists no name.")
    return names


def list_images(path, flag):
    """The image files of a folder, or a single image file: `semseg.base.files.image_files`,
    what "a folder of images" means to every command.

    Raises:
        InputError: if `path` does not exist or holds no image.
    """
    return image_files([path], flag)


def export_folders(export_dir, rgb_path, mask_path, obj_mask_path, label_map_path, where=str):
    """The folders of a CVAT export, each flag given replacing the export's own.

    Args:
        export_dir: `pathlib.Path` of the (unpacked) export.
        rgb_path: the `--rgb_path` given, for messages.
        mask_path, obj_mask_path, label_map_path: the flags, or `None`.
        where: path -> how to name it in a message (e.g. a member of a zip).

    Returns:
        `(images_dir, masks_dir, labelmap, objects_dir)`; `objects_dir` is `None` when
        the export has no `SegmentationObject/` and no flag names one.

    Raises:
        InputError: if the export has no `JPEGImages/`.
    """
    images_dir = export_dir / cvat.IMAGES_DIR
    if not images_dir.is_dir():
        raise InputError(
            f"{where(images_dir)} not found: --rgb_path {rgb_path} holds {cvat.LABELMAP_FILE}, "
            "so it is read as a CVAT export, which keeps its images in JPEGImages/."
        )
    masks_dir = pathlib.Path(mask_path) if mask_path else export_dir / cvat.MASKS_DIR
    labelmap = pathlib.Path(label_map_path) if label_map_path else export_dir / cvat.LABELMAP_FILE
    if obj_mask_path:
        objects_dir = pathlib.Path(obj_mask_path)
    elif (export_dir / OBJECT_MASKS_DIR).is_dir():
        objects_dir = export_dir / OBJECT_MASKS_DIR
    else:
        objects_dir = None
    return images_dir, masks_dir, labelmap, objects_dir


def find_sources(
    rgb_path,
    mask_path=None,
    obj_mask_path=None,
    label_map_path=None,
    split="train",
    image_list=None,
    scratch_dir=None,
):
    """Resolves the input flags into the examples to augment.

    Args:
        rgb_path: path-like, a folder of images, or an export folder / `.zip`
            (recognised by its `labelmap.txt`).
        mask_path: path-like folder of colour masks; defaults to the export's
            `SegmentationClass/`, required for a folder of images.
        obj_mask_path: path-like folder of instance masks, or None (an export's
            `SegmentationObject/` is used when present).
        label_map_path: path-like `labelmap.txt`; defaults to the export's,
            required for a folder of images.
        split: str, the export list to augment.
        image_list: path-like file of names replacing the split list (or the
            whole images folder), or None.
        scratch_dir: path-like empty folder to extract a `.zip` into.

    Returns:
        a `SourceSet`.

    Raises:
        InputError: for a missing folder or flag, an unknown split, a listed
            name with several images, or an image without mask.
    """
    rgb_path = pathlib.Path(rgb_path)
    if not rgb_path.exists():
        raise InputError(f"--rgb_path {rgb_path} does not exist.")
    is_export = (rgb_path.is_dir() and (rgb_path / cvat.LABELMAP_FILE).is_file()) or (
        rgb_path.is_file() and rgb_path.suffix.lower() == ".zip"
    )
    if not is_export:
        return _find_folder_sources(rgb_path, mask_path, obj_mask_path, label_map_path, image_list)
    zip_root = zip_path = None
    export_dir = rgb_path
    if rgb_path.is_file():
        if scratch_dir is None:
            raise ValueError("find_sources needs a scratch_dir to read a .zip export.")
        located, zip_path = cvat.locate_export(rgb_path, scratch_dir, object_masks=True)
        export_dir = zip_root = pathlib.Path(str(located))
        zip_path = pathlib.Path(str(zip_path))

    def where(path):
        return describe_path(path, zip_root, zip_path)

    images_dir, masks_dir, labelmap, objects_dir = export_folders(
        export_dir, rgb_path, mask_path, obj_mask_path, label_map_path, where
    )
    _require_folder(masks_dir, "--mask_path", where)
    if objects_dir is not None:
        _require_folder(objects_dir, "--obj_mask_path", where)
    split_lists = cvat.read_split_lists(export_dir, lambda relative: where(export_dir / relative))
    if image_list is not None:
        names, list_name = read_image_list(image_list), str(image_list)
    elif split in split_lists:
        list_path, names = split_lists[split]
        list_name = where(list_path)
    else:
        raise InputError(
            f"{where(export_dir / cvat.LISTS_DIR)} has no list for --split {split!r}; "
            f"lists found: {', '.join(sorted(split_lists))}."
        )
    resolver = _Resolver(images_dir, masks_dir, objects_dir, zip_root, zip_path)
    examples = resolver.resolve(names, list_name)
    other_splits = {}
    for other_split, (list_path, other_names) in split_lists.items():
        if other_split != split:
            other_splits[other_split] = resolver.resolve(other_names, where(list_path))
    inputs = [export_dir, rgb_path, masks_dir, labelmap] + ([objects_dir] if objects_dir else [])
    return SourceSet(
        labelmap=labelmap,
        labelmap_name=where(labelmap),
        examples=examples,
        other_splits=other_splits,
        has_object_masks=objects_dir is not None,
        input_paths=inputs,
    )


def _find_folder_sources(images_dir, mask_path, obj_mask_path, label_map_path, image_list):
    """`find_sources` for `--rgb_path` a plain folder of images."""
    if not images_dir.is_dir():
        raise InputError(
            f"--rgb_path {images_dir} is neither a folder of images, a CVAT export folder "
            f"(holding {cvat.LABELMAP_FILE}) nor a .zip of one."
        )
    missing = [
        flag
        for flag, value in (("--mask_path", mask_path), ("--label_map_path", label_map_path))
        if not value
    ]
    if missing:
        raise InputError(
            f"{' and '.join(missing)} required: --rgb_path {images_dir} is a folder of images "
            f"(no {cvat.LABELMAP_FILE} in it). Pass the masks folder and labelmap, or the "
            "export folder itself as --rgb_path."
        )
    masks_dir = pathlib.Path(mask_path)
    objects_dir = pathlib.Path(obj_mask_path) if obj_mask_path else None
    _require_folder(masks_dir, "--mask_path", str)
    if objects_dir is not None:
        _require_folder(objects_dir, "--obj_mask_path", str)
    resolver = _Resolver(images_dir, masks_dir, objects_dir)
    if image_list is not None:
        examples = resolver.resolve(read_image_list(image_list), str(image_list))
    else:
        names = list(resolver.images)
        if not names:
            raise InputError(
                f"--rgb_path {images_dir} holds no image ({', '.join(IMAGE_EXTENSIONS)})."
            )
        examples = resolver.resolve(names, f"--rgb_path {images_dir}")
    labelmap = pathlib.Path(label_map_path)
    inputs = [images_dir, masks_dir, labelmap] + ([objects_dir] if objects_dir else [])
    return SourceSet(
        labelmap=labelmap,
        labelmap_name=str(labelmap),
        examples=examples,
        other_splits={},
        has_object_masks=objects_dir is not None,
        input_paths=inputs,
    )


def _require_folder(folder, flag, where):
    if not folder.is_dir():
        raise InputError(f"{flag} {where(folder)} is not a folder.")


class _Resolver:
    """Matches names to their image, mask and object mask files."""

    def __init__(self, images_dir, masks_dir, objects_dir, zip_root=None, zip_path=None):
        self.images = index_files(images_dir, IMAGE_EXTENSIONS)
        self.masks = index_files(masks_dir, MASK_EXTENSIONS)
        self.masks_dir = masks_dir
        self.objects_dir = objects_dir
        self.objects = index_files(objects_dir, MASK_EXTENSIONS) if objects_dir else None
        self.zip_root = zip_root
        self.zip_path = zip_path

    def where(self, path):
        return describe_path(path, self.zip_root, self.zip_path)

    def resolve(self, names, list_name):
        """`SourceExample`s of the names that have an image; names without one are skipped."""
        examples = []
        without_image = []
        without_mask = []
        without_object = []
        for name in names:
            image_paths = self.images.get(name, [])
            if not image_paths:
                without_image.append(name)
                continue
            if len(image_paths) > 1:
                found = ", ".join(self.where(path) for path in image_paths)
                raise InputError(f"name {name!r} matches several images ({found}); keep one.")
            masks = self.masks.get(name, [])
            objects = self.objects.get(name, []) if self.objects is not None else [None]
            if not masks:
                without_mask.append(name)
            if not objects:
                without_object.append(name)
            if len(masks) > 1 or len(objects) > 1:
                found = ", ".join(self.where(path) for path in masks + objects if path)
                raise InputError(f"name {name!r} has several masks ({found}); keep one.")
            if masks and objects:
                examples.append(
                    SourceExample(
                        name=name,
                        image=image_paths[0],
                        mask=masks[0],
                        object_mask=objects[0],
                        zip_root=self.zip_root,
                        zip_path=self.zip_path,
                    )
                )
        for missing, folder in ((without_mask, self.masks_dir), (without_object, self.objects_dir)):
            if missing:
                raise InputError(
                    f"{len(missing)} image(s) of {list_name} have no mask in "
                    f"{self.where(folder)} (first: {', '.join(missing[:_MAX_NAMES_SHOWN])}); "
                    "label them, or run data_augmentation/make_blank_label.py to give "
                    "unlabelled images an all-background mask."
                )
        if without_image:
            logger.warning(
                "skipped %d of %d names listed in %s: no image (first: %s)",
                len(without_image),
                len(names),
                list_name,
                ", ".join(without_image[:_MAX_NAMES_SHOWN]),
            )
        if not examples:
            raise InputError(f"{list_name}: none of the {len(names)} names has an image.")
        return examples


def read_rgb(path, display_name=None):
    """Decodes an image file as RGB.

    Args:
        path: path-like, the file.
        display_name: str naming it in messages; defaults to the path.

    Returns:
        uint8 array `(H, W, 3)` (grey, paletted and RGBA images are converted), upright
        when the file has an EXIF orientation: `full_semantic.raster.read_image`, the
        toolkit's one decoder.

    Raises:
        InputError: if the file cannot be decoded.
    """
    return raster.read_image(path, 3, display_name)


def read_size(path, display_name=None):
    """`(width, height)` of an image file as shown (EXIF orientation applied), read from
    its header.

    Raises:
        InputError: if the file is not a readable image.
    """
    display_name = display_name or str(path)
    try:
        with Image.open(path) as image:
            return raster.upright_size(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(
            f"{display_name}: cannot read image ({type(error).__name__}: {error})."
        ) from error
