"""Reads a CVAT "CVAT for images 1.1" export: `annotations.xml` and its images.

The export folder (or a `.zip` of it)::

    annotations.xml      <labels> with names and colours, then one <image> per frame
    images/NAME.jpg      the frames (the `name` attribute of each <image>; may hold folders)

Every <image> becomes an example of the split named by its `subset` (lower-cased;
`Validation` becomes `val`, and a lone `default` subset becomes `train`; no subsets at
all: `train`). Its mask is drawn from its shapes in z-order (a higher `z_order` over a
lower one, and in document order among equals):

*   `<polygon points="x1,y1;x2,y2;...">`: filled like `raster.draw_polygons`;
*   `<mask rle="..." left= top= width= height=>`: a brush mask, CVAT's run lengths
    over its box row by row, starting with a background run;
*   `<ellipse cx= cy= rx= ry= rotation=>`: filled;
*   `<box>`, `<polyline>`, `<points>`, `<skeleton>` and `<tag>` cover no area and are
    skipped, with one warning giving how many. `occluded` shapes are drawn like others
    (their label is still the pixel's class).

The classes are `background` (pixels no shape covers) and then the XML's labels in
order, with their colours; a label named `background` is that class. Any mistake
stops the build before anything is written, naming the file, the image and the
shape: XML that does not parse, an unknown label, an RLE whose length does not match
its box, a polygon of fewer than 3 points, an image missing from `images/` or of
another size than the XML says.

The XML is parsed with `defusedxml`: exports are files from other machines, so an
entity declaration is refused and no external reference is followed (a `<!DOCTYPE>`
line is accepted, its DTD never fetched or used). Image names must stay inside the
export (`file_lists.check_inside_name`).
"""

import collections
import dataclasses
import logging
import math
import re
import xml.etree.ElementTree as ElementTree

import cv2
import defusedxml
import defusedxml.ElementTree
import numpy as np
from etils import epath

from full_semantic import archives, raster
from full_semantic.class_table import ClassTable
from full_semantic.file_lists import check_inside_name
from full_semantic.source import ExampleReader, Source
from semseg.base.errors import InputError
from semseg.base.labels import default_palette

logger = logging.getLogger(__name__)

ANNOTATIONS_FILE = "annotations.xml"
IMAGES_DIR = "images"
CHANNELS = (3,)
BACKGROUND = "background"
EXPORT_DESCRIPTION = "a CVAT 'CVAT for images 1.1' export (annotations.xml and images/)"
AREA_SHAPES = ("polygon", "mask", "ellipse")
SKIPPED_SHAPES = ("box", "polyline", "points", "skeleton", "tag", "cuboid")
SPLIT_ALIASES = {"validation": "val", "valid": "val", "training": "train"}


@dataclasses.dataclass
class Shape:
    kind: str  # polygon, mask or ellipse
    label: str
    z_order: int
    order: int  # position among the image's shapes, for messages and ties
    values: tuple  # polygon: (N, 2) points; mask: (left, top, width, height, runs); ellipse


@dataclasses.dataclass
class ImageEntry:
    name: str
    subset: str
    size: tuple  # (width, height)
    shapes: list


def open_source(manual_dir, scratch_dir, config):
    """The `cvat_xml` reader (module doc): a `CvatXmlExport` (`Source.open`)."""
    root, zip_path = archives.locate_root(
        manual_dir, scratch_dir, ANNOTATIONS_FILE, EXPORT_DESCRIPTION, read=(IMAGES_DIR,)
    )
    return CvatXmlExport(root, void_labels=config.void_labels, zip_path=zip_path)


def _hex_color(text):
    match = re.fullmatch(r"#?([0-9a-fA-F]{6})", (text or "").strip())
    if not match:
        return None
    value = int(match.group(1), 16)
    return ((value >> 16) & 255, (value >> 8) & 255, value & 255)


def _number(element, name, where):
    try:
        value = float(element.get(name))
    except (TypeError, ValueError):
        raise InputError(
            f"{where}: attribute {name}={element.get(name)!r} is not a number."
        ) from None
    if not math.isfinite(value):
        raise InputError(f"{where}: attribute {name}={element.get(name)!r} is not finite.")
    return value


def _polygon_points(element, where):
    text = element.get("points") or ""
    try:
        points = [
            tuple(float(value) for value in pair.split(","))
            for pair in text.split(";")
            if pair.strip()
        ]
    except ValueError:
        raise InputError(f"{where}: points {text[:60]!r} are not 'x,y;x,y;...' numbers.") from None
    if any(len(point) != 2 or not all(math.isfinite(value) for value in point) for point in points):
        raise InputError(f"{where}: points {text[:60]!r} are not 'x,y;x,y;...' numbers.")
    if len(points) < 3:
        raise InputError(f"{where} has {len(points)} point(s); a polygon needs at least 3.")
    return np.array(points, dtype=np.float64)


def _mask_values(element, where, image_size):
    left, top, width, height = (
        int(_number(element, name, where)) for name in ("left", "top", "width", "height")
    )
    try:
        runs = [int(value) for value in (element.get("rle") or "").split(",") if value.strip()]
    except ValueError:
        raise InputError(f"{where}: rle is not comma-separated integers.") from None
    if width < 1 or height < 1 or any(run < 0 for run in runs):
        raise InputError(f"{where}: a mask needs a positive width and height and runs >= 0.")
    if sum(runs) != width * height:
        raise InputError(
            f"{where}: its RLE covers {sum(runs)} pixels but its box is {width}x{height} = "
            f"{width * height}."
        )
    image_width, image_height = image_size
    if left < 0 or top < 0 or left + width > image_width or top + height > image_height:
        raise InputError(
            f"{where}: its box {width}x{height} at ({left}, {top}) lies outside the "
            f"{image_width}x{image_height} image."
        )
    return (left, top, width, height, tuple(runs))


class CvatXmlExport(ExampleReader):
    """A parsed and validated "CVAT for images 1.1" export (module doc).

    Args:
        root: path-like, the folder holding `annotations.xml` and `images/`.
        void_labels: sequence of class names mapped to 255 and dropped.
        zip_path: see `SourceDataset`.

    Attributes:
        class_names, palette, split_names.

    Raises:
        InputError: for any mistake of the module doc, before an example is written.
    """

    def __init__(self, root, void_labels=(), zip_path=None):
        self.root = epath.Path(root)
        self._describe = archives.describer(self.root, zip_path)
        self._where = self._describe(self.root / ANNOTATIONS_FILE)
        labels, images, skipped = self._parse()
        names = [BACKGROUND] + [name for name, _ in labels if name != BACKGROUND]
        colors = dict(labels)
        palette = [colors.get(BACKGROUND) or (0, 0, 0)] + [colors[name] for name in names[1:]]
        self._raw_ids = {name: index for index, name in enumerate(names)}
        self._table = ClassTable(names, palette, void_labels, where=self._where)
        self.class_names = self._table.class_names
        self.palette = self._table.palette
        if skipped:
            logger.warning(
                "%s: skipped %s (they cover no area)",
                self._where,
                ", ".join(f"{count} {kind}(s)" for kind, count in sorted(skipped.items())),
            )
        self.set_examples(self._splits(images))

    def _parse(self):
        """`(labels [(name, colour)], images [ImageEntry], skipped {kind: count})`."""
        labels, images, skipped = [], [], collections.Counter()
        path = self.root / ANNOTATIONS_FILE
        label_names = None
        try:
            with path.open("rb") as handle:
                for event, element in defusedxml.ElementTree.iterparse(handle, events=("end",)):
                    if element.tag == "labels" and label_names is None:
                        labels = self._read_labels(element)
                        label_names = {name for name, _ in labels}
                    elif element.tag == "image":
                        if label_names is None:
                            raise InputError(
                                f"{self._where}: no <labels> before the first <image>."
                            )
                        images.append(self._read_image(element, label_names, skipped))
                        element.clear()
        except ElementTree.ParseError as error:
            line, column = error.position
            raise InputError(
                f"{self._where}: not valid XML (line {line}, column {column}: {error.msg})."
            ) from None
        except defusedxml.DefusedXmlException as error:
            raise InputError(
                f"{self._where}: refused ({error}); an export holds no entity declarations."
            ) from None
        if label_names is None:
            raise InputError(
                f"{self._where}: no <labels> in <meta>; is it a CVAT for images 1.1 export?"
            )
        if not images:
            raise InputError(f"{self._where}: no <image> element.")
        return labels, images, skipped

    def _read_labels(self, element):
        labels = []
        for label in element.findall("label"):
            name = (label.findtext("name") or "").strip()
            if not name:
                raise InputError(f"{self._where}: a <label> without a <name>.")
            if name in dict(labels):
                raise InputError(f"{self._where}: label {name!r} is defined twice.")
            labels.append((name, _hex_color(label.findtext("color"))))
        if not labels:
            raise InputError(f"{self._where}: <labels> is empty.")
        used = {color for _, color in labels if color}
        spare = (tuple(color) for color in default_palette(256)[1:] if tuple(color) not in used)
        owners, result = {}, []
        for name, color in labels:
            if color and color in owners:
                # Two labels of one colour would be one class in every colour mask.
                new_color = next(spare)
                logger.warning(
                    "%s: labels %r and %r share the colour %s; %r gets %s in this dataset",
                    self._where,
                    owners[color],
                    name,
                    "#%02x%02x%02x" % color,
                    name,
                    "#%02x%02x%02x" % new_color,
                )
                color = new_color
            color = color or next(spare)
            owners[color] = name
            result.append((name, color))
        return result

    def _read_image(self, element, label_names, skipped):
        name = element.get("name") or ""
        where = f"{self._where}: image {name!r}"
        if not name:
            raise InputError(f"{self._where}: an <image> without a name (id {element.get('id')}).")
        check_inside_name(
            name,
            f"{self._where}: <image id={element.get('id')!r}>",
            f"a file name relative to {IMAGES_DIR}/",
        )
        size = (int(_number(element, "width", where)), int(_number(element, "height", where)))
        shapes = []
        for order, shape in enumerate(element, start=1):
            kind = shape.tag
            if kind in SKIPPED_SHAPES:
                skipped[kind] += 1
                continue
            if kind not in AREA_SHAPES:
                continue
            label = shape.get("label")
            shape_where = f"{where}: {kind} #{order} ({label!r})"
            if label not in label_names:
                raise InputError(
                    f"{shape_where}: label {label!r} is not one of <labels> {sorted(label_names)}."
                )
            z_order = int(_number(shape, "z_order", shape_where)) if shape.get("z_order") else 0
            if kind == "polygon":
                values = _polygon_points(shape, shape_where)
            elif kind == "mask":
                values = _mask_values(shape, shape_where, size)
            else:
                values = tuple(_number(shape, key, shape_where) for key in ("cx", "cy", "rx", "ry"))
                values += (
                    _number(shape, "rotation", shape_where) if shape.get("rotation") else 0.0,
                )
            shapes.append(Shape(kind, label, z_order, order, values))
        subset = (element.get("subset") or "").strip().lower()
        return ImageEntry(name=name, subset=subset, size=size, shapes=shapes)

    def _splits(self, images):
        subsets = {entry.subset or "train" for entry in images}
        splits = collections.defaultdict(list)
        seen = set()
        for entry in images:
            subset = entry.subset or "train"
            if subset == "default" and subsets == {"default"}:
                subset = "train"
            subset = SPLIT_ALIASES.get(subset, re.sub(r"\W+", "_", subset))
            if entry.name in seen:
                raise InputError(f"{self._where}: image {entry.name!r} appears twice.")
            seen.add(entry.name)
            path = self.root / IMAGES_DIR / entry.name
            if not path.is_file():
                raise InputError(
                    f"{self._where}: image {entry.name!r} is not in {IMAGES_DIR}/ "
                    f"({self._describe(path)}); export the task with images."
                )
            splits[subset].append((entry, path))
        return dict(sorted(splits.items()))

    def rasterize(self, entry):
        """The raw class ids (positions in `background + labels`) of an image, uint8 `(H, W)`."""
        width, height = entry.size
        raw = np.zeros((height, width), dtype=np.uint8)
        for shape in sorted(entry.shapes, key=lambda shape: (shape.z_order, shape.order)):
            value = self._raw_ids[shape.label]
            if shape.kind == "polygon":
                raw = np.where(
                    raster.draw_polygons((width, height), [(shape.values, 1)]) == 1, value, raw
                ).astype(np.uint8)
            elif shape.kind == "mask":
                left, top, box_width, box_height, runs = shape.values
                flags = np.repeat(np.arange(len(runs)) % 2 == 1, runs).reshape(
                    box_height, box_width
                )
                raw[top : top + box_height, left : left + box_width][flags] = value
            else:
                cx, cy, rx, ry, rotation = shape.values
                region = np.zeros((height, width), np.uint8)
                cv2.ellipse(region, ((cx, cy), (2 * rx, 2 * ry), rotation), 1, -1)
                raw[region == 1] = value
        return raw

    def read(self, item):
        """Decodes one example; `item` is `(ImageEntry, image path)` of `items(split)`.

        Returns:
            `(key, example)`: key is the image name; example holds `image`, `mask` (PNG
            bytes of uint8 class ids) and `file_name` (the name without extension).
        """
        entry, path = item
        image_where = self._describe(path)
        image, image_size = raster.image_feature(path.read_bytes(), 3, image_where, drop_alpha=True)
        if tuple(image_size) != tuple(entry.size):
            raise InputError(
                f"{image_where} is {raster.size_text(image_size)} but {self._where} says "
                f"image {entry.name!r} is {raster.size_text(entry.size)} (width x height)."
            )
        class_ids = self._table.map(self.rasterize(entry), f"{self._where}: {entry.name}")
        return (
            self.key(item),
            {
                "image": image,
                "mask": raster.encode_png(class_ids),
                "file_name": entry.name.rsplit(".", 1)[0],
            },
        )

    def key(self, item):
        """The key of `read(item)`: the image name."""
        return item[0].name


# What --manual_dir must be, for messages, and the TFDS homepage.
MANUAL_DIR = (
    "a CVAT 'CVAT for images 1.1' export with images (annotations.xml, images/) or a .zip of it"
)
HOMEPAGE = "https://docs.cvat.ai/docs/manual/advanced/formats/format-cvat/"
SOURCE = Source("cvat_xml", open_source, MANUAL_DIR, HOMEPAGE, channels=CHANNELS)
