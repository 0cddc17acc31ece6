"""The `cvat_xml` source: CVAT for images 1.1 exports (annotations.xml + images/)."""

import logging
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from errors import input_error
from PIL import Image
from source_fixtures import examples_by_name

from full_semantic import cvat_xml, detect
from full_semantic.config import FullSemanticConfig
from full_semantic.full_semantic_dataset_builder import Builder
from full_semantic.prepare import build_dataset
from semseg.base.errors import InputError
from semseg.base.labels import IGNORE_INDEX

LABELS = (("road", "#804080"), ("car", "#400080"), ("person", ""))
SIZE = (24, 16)  # width, height


def rle(bitmap):
    """CVAT's run lengths of a boolean box, row by row, starting with a background run."""
    flat = bitmap.ravel()
    runs, current, length = [], False, 0
    for value in flat:
        if value == current:
            length += 1
        else:
            runs.append(length)
            current, length = value, 1
    runs.append(length)
    return ", ".join(str(run) for run in runs)


def rectangle(x0, y0, x1, y1):
    return f"{x0},{y0};{x1},{y0};{x1},{y1};{x0},{y1}"


def labels_xml(labels=LABELS):
    entries = "".join(
        f"<label><name>{name}</name><color>{color}</color><type>any</type><attributes/></label>"
        for name, color in labels
    )
    return f"<meta><task><name>t</name><labels>{entries}</labels></task></meta>"


def write_export(root, images, labels=LABELS, xml=None, write_images=True):
    """`images`: list of (name, subset, shapes XML); every image is SIZE."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    body = "".join(
        f'<image id="{index}" name="{name}" subset="{subset}" width="{SIZE[0]}" '
        f'height="{SIZE[1]}">{shapes}</image>'
        for index, (name, subset, shapes) in enumerate(images)
    )
    header = '<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version>'
    text = xml or f"{header}{labels_xml(labels)}{body}</annotations>"
    (root / "annotations.xml").write_text(text)
    if write_images:
        for index, (name, _, _) in enumerate(images):
            path = root / "images" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.full((SIZE[1], SIZE[0], 3), 10 * index, np.uint8)
            Image.fromarray(pixels).save(path)
    return root


def brush():
    """A brush mask at left 14, top 2, 6x5, and its box bitmap."""
    bitmap = np.zeros((5, 6), bool)
    bitmap[1:4, 1:5] = True
    bitmap[2, 2] = False  # a hole
    return bitmap, (
        f'<mask label="person" source="manual" occluded="1" rle="{rle(bitmap)}" left="14" '
        'top="2" width="6" height="5" z_order="0"></mask>'
    )


def scene_shapes():
    bitmap, mask = brush()
    shapes = (
        # Drawn first but higher: the car stays over the road.
        f'<polygon label="car" occluded="0" points="{rectangle(4, 4, 9, 9)}" z_order="1"/>'
        f'<polygon label="road" occluded="0" points="{rectangle(0, 6, 23, 15)}" z_order="0"/>'
        + mask
        + '<box label="car" occluded="0" xtl="0" ytl="0" xbr="5" ybr="5" z_order="3"/>'
        + '<polyline label="road" points="0,0;5,5" z_order="3"/>'
    )
    return shapes, bitmap


def expected_scene(bitmap):
    """The numpy rasterisation: background 0, road 1, car 2, person 3."""
    width, height = SIZE
    ids = np.zeros((height, width), np.uint8)
    ids[6:16, 0:24] = 1  # PIL fills a rectangle's outline too
    ids[4:10, 4:10] = 2  # z_order 1 over the road
    ids[2:7, 14:20][bitmap] = 3
    return ids


def open_export(root, tmp_path, void_labels=()):
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return cvat_xml.open_source(
        root, scratch, FullSemanticConfig(name="x", source="cvat_xml", void_labels=void_labels)
    )


def read_masks(export, split):
    import io

    return {
        key: np.asarray(Image.open(io.BytesIO(example["mask"])))
        for key, example in export.examples(split)
    }


def test_polygons_masks_and_z_order_against_a_numpy_rasterisation(tmp_path, caplog):
    shapes, bitmap = scene_shapes()
    root = write_export(
        tmp_path / "export", [("a.png", "Train", shapes), ("b.png", "Validation", "")]
    )

    with caplog.at_level(logging.WARNING):
        export = open_export(root, tmp_path)

    assert export.class_names == ["background", "road", "car", "person"]
    assert export.palette[:3] == [[0, 0, 0], [128, 64, 128], [64, 0, 128]]
    assert export.split_names == ["train", "val"]
    np.testing.assert_array_equal(read_masks(export, "train")["a.png"], expected_scene(bitmap))
    np.testing.assert_array_equal(read_masks(export, "val")["b.png"], np.zeros((16, 24), np.uint8))
    assert "skipped 1 box(s), 1 polyline(s)" in caplog.text


def test_void_background_and_folders_in_image_names(tmp_path):
    shapes, bitmap = scene_shapes()
    root = write_export(tmp_path / "export", [("cam1/a.png", "default", shapes)])

    export = open_export(root, tmp_path, void_labels=("background",))

    assert export.class_names == ["road", "car", "person"] and export.split_names == ["train"]
    expected = expected_scene(bitmap).astype(int) - 1
    expected[expected < 0] = IGNORE_INDEX
    np.testing.assert_array_equal(read_masks(export, "train")["cam1/a.png"], expected)


def test_a_zip_is_detected_and_built_by_the_auto_config(tmp_path):
    shapes, bitmap = scene_shapes()
    root = write_export(tmp_path / "export", [("a.png", "train", shapes), ("b.png", "val", "")])
    zip_path = tmp_path / "task_7.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())

    assert detect.detect_source(zip_path)[0] == "cvat_xml"
    builder = build_dataset("auto", zip_path, tmp_path / "tfds")

    assert builder.info.metadata["source"] == "cvat_xml"
    train = examples_by_name(builder, "train")
    np.testing.assert_array_equal(train["a"]["mask"][..., 0], expected_scene(bitmap))


@pytest.mark.parametrize(
    "shapes, message",
    [
        (
            '<polygon label="tree" points="0,0;4,0;4,4"/>',
            r"polygon #1 \('tree'\): label 'tree' is not one of",
        ),
        (
            '<polygon label="road" points="0,0;4,0"/>',
            r"polygon #1 \('road'\) has 2 point\(s\); a polygon needs at least 3",
        ),
        (
            '<mask label="car" rle="3, 4" left="0" top="0" width="3" height="3"/>',
            r"mask #1 \('car'\): its RLE covers 7 pixels but its box is 3x3 = 9",
        ),
        (
            '<mask label="car" rle="0, 9" left="22" top="0" width="3" height="3"/>',
            r"mask #1 \('car'\): its box 3x3 at \(22, 0\) lies outside the 24x16 image",
        ),
        (
            '<polygon label="road" points="0,0;4,x;4,4"/>',
            r"polygon #1 \('road'\): points '0,0;4,x;4,4' are not",
        ),
    ],
)
def test_shape_mistakes_name_the_file_image_and_shape_and_build_nothing(tmp_path, shapes, message):
    root = write_export(
        tmp_path / "export", [("a.png", "train", ""), ("frame_9.png", "train", shapes)]
    )

    with pytest.raises(InputError, match=r"annotations.xml: image 'frame_9.png': " + message):
        open_export(root, tmp_path)
    builder = Builder(config="cvat_xml", data_dir=tmp_path / "tfds")
    with pytest.raises(InputError):
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=root))
    assert not (tmp_path / "tfds" / "full_semantic").exists()


def test_file_mistakes_are_one_line(tmp_path):
    cases = {
        "broken": ("<annotations><meta>", r"annotations.xml: not valid XML \(line 1, column \d+"),
        "entities": (
            '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxx">]><annotations>&x;</annotations>',
            r"annotations.xml: refused",
        ),
        "no_labels": (
            "<annotations><image name='a.png' width='1' height='1'/></annotations>",
            "no <labels> before",
        ),
    }
    for name, (xml, message) in cases.items():
        root = write_export(tmp_path / name, [("a.png", "train", "")], xml=xml)
        with pytest.raises(InputError, match=message):
            open_export(root, tmp_path)

    missing = write_export(tmp_path / "missing", [("a.png", "train", "")], write_images=False)
    with pytest.raises(InputError, match=r"image 'a.png' is not in images/"):
        open_export(missing, tmp_path)

    resized = write_export(tmp_path / "resized", [("a.png", "train", "")])
    Image.new("RGB", (10, 10)).save(resized / "images" / "a.png")
    with pytest.raises(
        InputError, match=r"images/a.png is 10x10 but .*annotations.xml says image 'a.png' is 24x16"
    ):
        list(open_export(resized, tmp_path).examples("train"))


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
@pytest.mark.parametrize("outside", ["absolute", "parent", "nested_parent", "drive"])
def test_image_names_that_point_outside_the_export_are_one_line(tmp_path, as_zip, outside):
    """An annotations.xml must not read any image on the disk into a dataset."""
    secret = tmp_path / "secret.png"
    Image.fromarray(np.full((SIZE[1], SIZE[0], 3), 200, np.uint8)).save(secret)
    name = {
        "absolute": str(secret),
        "parent": "../secret.png",
        "nested_parent": "sub/../../secret.png",
        "drive": "C:/secret.png",
    }[outside]
    root = write_export(tmp_path / "export", [("a.png", "train", "")], write_images=True)
    xml = (root / "annotations.xml").read_text()
    (root / "annotations.xml").write_text(
        xml.replace(
            "</annotations>", f'<image id="7" name="{name}" width="24" height="16"/></annotations>'
        )
    )
    manual = root
    if as_zip:
        manual = tmp_path / "export.zip"
        with zipfile.ZipFile(manual, "w") as archive:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(root).as_posix())
    message = input_error(lambda: open_export(manual, tmp_path))
    assert f"<image id='7'>: name {name!r} points outside the dataset folder" in message
    assert "annotations.xml" in message and "\n" not in message


def test_labels_that_share_a_colour_get_distinct_ones_and_a_warning(tmp_path, caplog):
    labels = (("road", "#804080"), ("lane", "#804080"), ("car", "#400080"))
    root = write_export(tmp_path / "export", [("a.png", "train", "")], labels=labels)
    with caplog.at_level(logging.WARNING):
        export = open_export(root, tmp_path)
    palette = dict(zip(export.class_names, map(tuple, export.palette)))
    assert palette["road"] == (128, 64, 128) and palette["car"] == (64, 0, 128)
    assert palette["lane"] not in {palette[name] for name in palette if name != "lane"}
    assert "labels 'road' and 'lane' share the colour #804080" in caplog.text


def test_a_doctype_is_accepted_and_its_dtd_never_fetched(tmp_path):
    root = write_export(tmp_path / "export", [("a.png", "train", "")])
    xml = (root / "annotations.xml").read_text()
    marker = tmp_path / "fetched"
    doctype = f'<!DOCTYPE annotations SYSTEM "file://{marker}">'
    (root / "annotations.xml").write_text(
        xml.replace("<annotations>", doctype + "<annotations>", 1)
    )
    export = open_export(root, tmp_path)
    assert export.class_names[0] == "background" and not marker.exists()
