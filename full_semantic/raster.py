"""Source images and label rasters: decoding with the checks every reader needs, and polygons.

The readers of the `full_semantic` builder turn their files into two features:

*   the image, with the config's number of channels (`image_feature`): encoded
    bytes kept as they are when they already hold 8-bit pixels of the right
    channel count, else a uint8 `(H, W, C)` array;
*   the mask, PNG bytes of uint8 `(H, W)` class ids (`encode_png`), made from an
    8-bit single-channel label PNG (`read_index_image`), from polygons
    (`draw_polygons`) or from colours.

Every problem raises `semseg.base.errors.InputError` naming the file: a corrupt file,
16-bit pixels where 8-bit ones are required, the wrong number of channels.
"""

import io
import struct

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from semseg.base.errors import InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Encoded formats whose bytes the TFDS `Image` feature stores as they are.
PASSTHROUGH_FORMATS = ("JPEG", "PNG")
# PIL mode -> bits per channel; modes missing here are 8-bit.
_MODE_BITS = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}
# The PIL mode of an 8-bit image with 1, 3 and 4 channels.
_MODE_OF_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}
# Modes PIL converts to RGB without losing anything but a constant alpha.
_RGB_CONVERTIBLE = ("L", "P", "CMYK", "YCbCr", "LA", "RGBA", "PA")
_MAX_VALUES_SHOWN = 5
EXIF_ORIENTATION = 0x0112  # the EXIF tag of how a camera image is to be shown (1: as stored)


def decode(data, where):
    """Decodes encoded image bytes with PIL.

    Args:
        data: bytes of an image file.
        where: str naming the file in messages.

    Returns:
        a loaded `PIL.Image.Image`.

    Raises:
        InputError: if the bytes are not a readable image.
    """
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Image.UnidentifiedImageError as error:
        # PIL's own message names only the in-memory buffer (and its address).
        raise InputError(f"{where}: cannot decode image (not a format PIL reads).") from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(
            f"{where}: cannot decode image ({type(error).__name__}: {error})."
        ) from error
    return image


def read_image(path, channels=3, where=None):
    """Reads an image file: the one decoder every command uses (build, augment, predict,
    evaluate, select), so each sees the same pixels and refuses the same broken files.

    PIL decodes the whole file (a truncated JPEG or PNG is refused, as is a
    decompression bomb); an EXIF orientation is applied; 16-bit files are refused;
    grey, paletted, CMYK and RGBA images become RGB for `channels == 3` (an alpha
    channel dropped, as CVAT shows such images).

    Args:
        path: path-like of a local file.
        channels: int, 1, 3 or 4, the channels wanted (see `image_feature`).
        where: str naming the file in messages; default the path.

    Returns:
        uint8 array `(H, W, channels)`, upright.

    Raises:
        InputError: naming the file, for a missing, unreadable, truncated or
            unsupported image.
    """
    where = where or str(path)
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError as error:
        raise InputError(f"{where}: cannot read ({error.strerror or error}).") from None
    pixels, _ = image_feature(data, channels, where, as_array=True, drop_alpha=channels == 3)
    return pixels


def png_bit_depth(data):
    """Bits per channel stored in a PNG header, or None for other formats.

    PIL reads 16-bit RGB(A) PNGs as 8-bit modes, so the header is the only
    reliable place to see that a colour PNG holds 16-bit samples.
    """
    if len(data) < 26 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    (bit_depth,) = struct.unpack("B", data[24:25])
    return bit_depth


def bit_depth(image, data):
    """Bits per channel of a decoded image (from the PNG header when there is one)."""
    from_header = png_bit_depth(data)
    if from_header is not None and image.mode != "P":
        return from_header
    return _MODE_BITS.get(image.mode, 8)


def check_8bit(image, data, where, hint=""):
    """Raises `InputError` naming `where` unless a decoded image holds 8-bit pixels (a
    16-bit image converted to RGB would be clipped to 255 almost everywhere)."""
    if bit_depth(image, data) > 8:
        raise InputError(f"{where}: {describe(image, data)} image; expected 8-bit pixels.{hint}")


def upright_size(image):
    """`(width, height)` of a PIL image as shown: swapped when its EXIF orientation is a
    quarter turn (5 to 8). Reads only the header."""
    width, height = image.size
    turned = image.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
    return (height, width) if turned else (width, height)


def describe(image, data):
    """Pixel format of an image for messages, e.g. `'16-bit 1-channel (PIL mode I;16)'`."""
    return f"{bit_depth(image, data)}-bit {len(image.getbands())}-channel (PIL mode {image.mode})"


def image_feature(data, channels, where, as_array=False, drop_alpha=False):
    """Validates image bytes and prepares them for a `channels`-channel `Image` feature.

    An image with an EXIF orientation (a phone photo taken on its side) is turned
    upright first, as CVAT shows it and as its mask is drawn; its size is the upright one.

    Accepted inputs, all 8-bit:

    *   `channels == 3`: RGB; grey, paletted, CMYK and YCbCr images are converted
        to RGB, and so are images with an alpha channel that is opaque everywhere.
    *   `channels == 1`: single-channel grey (or 1-bit).
    *   `channels == 4`: RGBA, the 4th channel kept as data (e.g. thermal).

    Args:
        data: bytes of the image file.
        channels: int, 1, 3 or 4.
        where: str naming the file in messages.
        as_array: bool, always return the decoded pixels, never `data`.
        drop_alpha: bool, with `channels == 3`, drop an alpha channel that is not
            opaque everywhere instead of refusing it (CVAT shows such images, and
            their masks are drawn, without it).

    Returns:
        `(value, (width, height))`: value is `data` itself for a JPEG or PNG that
        already has the target format (unless `as_array`), else a uint8
        `(H, W, channels)` array.

    Raises:
        InputError: if the image is corrupt, not 8-bit, or has channels that do
            not fit (e.g. an RGB image for `channels == 1`, or a real alpha channel
            for `channels == 3`).
    """
    image = decode(data, where)
    if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
        # Shown upright, as CVAT and every viewer show it (and as its mask was drawn):
        # the stored pixels are rotated or mirrored, so the bytes cannot be kept.
        image = ImageOps.exif_transpose(image)
        as_array = True
    check_8bit(image, data, where, hint=" Convert it to 8 bits per channel.")
    target_mode = _MODE_OF_CHANNELS[channels]
    if image.mode == target_mode:
        if image.format in PASSTHROUGH_FORMATS and not as_array:
            return data, image.size
        pixels = np.asarray(image)
        return (pixels[..., None] if pixels.ndim == 2 else pixels), image.size
    if channels == 1 and image.mode == "1":
        return np.asarray(image.convert("L"))[..., None], image.size
    if channels == 3 and image.mode in _RGB_CONVERTIBLE:
        if "A" in image.getbands():
            alpha = np.asarray(image.getchannel("A"))
            if alpha.min() < 255 and not drop_alpha:
                raise InputError(
                    f"{where}: {describe(image, data)} image with a non-opaque alpha channel; "
                    'expected RGB. Set "channels": 4 to keep the 4th channel, or save the '
                    "image as RGB."
                )
        return np.asarray(image.convert("RGB")), image.size
    raise InputError(
        f"{where}: {describe(image, data)} image; expected {channels}-channel 8-bit pixels "
        f"(PIL mode {target_mode})."
    )


def read_index_image(data, where, what="class ids"):
    """Decodes an 8-bit single-channel label image (grey or paletted) into its values.

    A paletted PNG gives its palette indices, not its colours.

    Args:
        data: bytes of the label file.
        where: str naming the file in messages.
        what: str, what the values are, for messages.

    Returns:
        `(values, (width, height))`: uint8 `(H, W)`.

    Raises:
        InputError: if the file is corrupt, 16- or 32-bit, or has several channels.
    """
    return index_values(decode(data, where), data, where, what)


def index_values(image, data, where, what="class ids"):
    """`read_index_image` of an image already decoded from `data`."""
    if image.mode in ("L", "P"):
        return np.asarray(image), image.size
    if image.mode == "1":
        return np.asarray(image.convert("L")) // 255, image.size
    problem = "16- or 32-bit" if _MODE_BITS.get(image.mode, 8) > 8 else "multi-channel"
    raise InputError(
        f"{where}: {describe(image, data)} image is {problem}; expected an 8-bit "
        f"single-channel PNG of {what}."
    )


def value_counts_text(values, counts):
    """`'12 in 3 pixel(s), 40 in 1 pixel(s)'` for the most frequent values first."""
    order = np.argsort(-np.asarray(counts), kind="stable")[:_MAX_VALUES_SHOWN]
    shown = ", ".join(f"{int(values[index])} in {int(counts[index])} pixel(s)" for index in order)
    more = f", and {len(values) - len(order)} more" if len(values) > len(order) else ""
    return shown + more


def check_size(mask_size, image_size, mask_where, image_where):
    """Raises `InputError` unless a label raster has the size of its image."""
    if tuple(mask_size) != tuple(image_size):
        raise InputError(
            f"{mask_where} is {size_text(mask_size)} but {image_where} is "
            f"{size_text(image_size)} (width x height); a label must have the size of its image."
        )


def size_text(size):
    width, height = size
    return f"{width}x{height}"


def clip_polygon(points, box):
    """Clips a polygon to a rectangle (Sutherland-Hodgman), keeping the area inside it.

    Args:
        points: float array `(N, 2)` of `(x, y)` vertices.
        box: `(x_min, y_min, x_max, y_max)`.

    Returns:
        float array `(M, 2)`, empty when the polygon lies outside the box.
    """
    x_min, y_min, x_max, y_max = box
    # Each edge of the box as (axis, bound, keep values >= bound).
    edges = ((0, x_min, True), (0, x_max, False), (1, y_min, True), (1, y_max, False))
    vertices = [tuple(point) for point in np.asarray(points, dtype=np.float64)]
    for axis, bound, keep_above in edges:
        if not vertices:
            break

        def inside(point, axis=axis, bound=bound, keep_above=keep_above):
            return point[axis] >= bound if keep_above else point[axis] <= bound

        clipped = []
        for index, current in enumerate(vertices):
            previous = vertices[index - 1]
            if inside(current) != inside(previous):
                fraction = (bound - previous[axis]) / (current[axis] - previous[axis])
                crossing = [
                    previous[0] + fraction * (current[0] - previous[0]),
                    previous[1] + fraction * (current[1] - previous[1]),
                ]
                crossing[axis] = bound
                clipped.append(tuple(crossing))
            if inside(current):
                clipped.append(current)
        vertices = clipped
    return np.asarray(vertices, dtype=np.float64).reshape(-1, 2)


def draw_polygons(size, polygons, background=0):
    """Rasterises polygons in order, each drawn over the ones before it.

    Filling follows PIL's `ImageDraw.polygon`, as the Cityscapes scripts do: a
    pixel is filled when its centre is inside the polygon or on its outline; two
    points draw a line, and a polygon of fewer points is skipped. Parts outside
    the image are clipped away first, so any coordinate (even `1e12`) is safe.

    Args:
        size: `(width, height)` of the raster.
        polygons: iterable of `(points, value)`: points a sequence of `(x, y)`
            numbers in pixel coordinates, value an int in 0..255.
        background: int, the value of pixels no polygon covers.

    Returns:
        uint8 array `(height, width)`.
    """
    width, height = size
    # One pixel of margin: edges added by clipping lie outside every pixel centre.
    box = (-1.0, -1.0, float(width), float(height))
    raster = Image.new("L", (width, height), background)
    drawer = ImageDraw.Draw(raster)
    for points, value in polygons:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if len(points) < 2:
            continue
        if (points.min(axis=0) < box[:2]).any() or (points.max(axis=0) > box[2:]).any():
            points = clip_polygon(points, box)
            if len(points) < 2:
                continue
        drawer.polygon([(float(x), float(y)) for x, y in points], fill=int(value))
    return np.asarray(raster)


def encode_png(values):
    """PNG bytes of a uint8 `(H, W)` array (fast compression)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(values, dtype=np.uint8)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class ColorLookup:
    """Maps RGB colour masks to ids by exact colour: the one colour decoder of the project
    (CVAT masks, colour `gt/` masks, `eval.py --images` masks, augmentation).

    Args:
        colors: sequence of `(r, g, b)`, the known colours.
        ids: sequence of ints (0..255), the id of each colour.
        source: str, what defines the colours, for messages (e.g. `"labelmap.txt"`).
        hint: str added to the unknown-colour message.
    """

    def __init__(self, colors, ids, source, hint=""):
        id_of = {pack_color(color): int(value) for color, value in zip(colors, ids)}
        self._sorted = np.array(sorted(id_of), dtype=np.uint32)
        self._ids = np.array([id_of[key] for key in sorted(id_of)], dtype=np.uint8)
        self._source = source
        self._hint = hint

    def map(self, rgb, where):
        """The ids `(H, W)` uint8 of an RGB mask `(H, W, 3)` uint8.

        Raises:
            InputError: naming `where`, with the most frequent unknown colours and
                their pixel counts.
        """
        packed = pack_colors(rgb)
        positions = np.minimum(np.searchsorted(self._sorted, packed), len(self._sorted) - 1)
        known = self._sorted[positions] == packed
        if not known.all():
            colors, counts = np.unique(packed[~known], return_counts=True)
            order = np.argsort(-counts, kind="stable")[:_MAX_VALUES_SHOWN]
            shown = ", ".join(
                f"{unpack_color(colors[index])} in {counts[index]} pixel(s)" for index in order
            )
            more = f", and {len(colors) - len(order)} more" if len(colors) > len(order) else ""
            raise InputError(
                f"{where}: {len(colors)} colour(s) not in {self._source} ({counts.sum()} "
                f"pixels): {shown}{more}.{self._hint}"
            )
        return self._ids[positions]


def pack_colors(rgb):
    """Packs RGB triples into one uint32 `0xRRGGBB` each: `(..., 3)` uint8 -> `(...)` uint32."""
    rgb = np.asarray(rgb)
    return (
        (rgb[..., 0].astype(np.uint32) << 16)
        | (rgb[..., 1].astype(np.uint32) << 8)
        | rgb[..., 2].astype(np.uint32)
    )


def unpack_colors(packed):
    """Inverse of `pack_colors`: `(...)` uint32 -> `(..., 3)` uint8."""
    packed = np.asarray(packed, dtype=np.uint32)
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1).astype(
        np.uint8
    )


def pack_color(color):
    """`(r, g, b)` as one int `0xRRGGBB`."""
    red, green, blue = color
    return (int(red) << 16) | (int(green) << 8) | int(blue)


def unpack_color(packed):
    """`0xRRGGBB` back to `(r, g, b)`."""
    packed = int(packed)
    return ((packed >> 16) & 255, (packed >> 8) & 255, packed & 255)
