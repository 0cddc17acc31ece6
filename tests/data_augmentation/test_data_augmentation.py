"""Tests of the offline augmentation tools in `data_augmentation/`.

Fixtures are exports of coloured squares written into `tmp_path`: the image colour
of a square encodes its class (`IMAGE_COLORS`), so any misalignment between an
augmented image and its mask shows. The last test augments 20 CamVid images
(`../shared/data/camvid_cvat`) and builds the result with the `cvat` config.

    .venv/bin/pytest tests/data_augmentation/test_data_augmentation.py
"""

import json
import os
import pathlib
import sys
import time
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from commands import python, run
from cvat_fixtures import DEFAULT_LABELS, write_cvat_export
from errors import assert_one_line_error, input_error
from PIL import Image
from real_data import CAMVID_DIR, require_camvid

from data_augmentation import augment_data, make_blank_label, source_files
from data_augmentation.augment_export import augment_export
from data_augmentation.augmentation import AugmentationSettings, Augmenter, example_rng
from data_augmentation.blank_labels import write_blank_labels
from data_augmentation.options import AugmentOptions
from full_semantic import cvat
from full_semantic.label_colors import LabelColors, object_ids_from_rgb
from full_semantic.prepare import build_dataset
from semseg.base.errors import InputError

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]
AUGMENT_SCRIPT = PROJECT_ROOT / "data_augmentation" / "augment_data.py"
BLANK_SCRIPT = PROJECT_ROOT / "data_augmentation" / "make_blank_label.py"

LABELS = (
    ("background", (0, 0, 0)),
    ("road", (128, 64, 128)),
    ("car", (64, 0, 128)),
    ("person", (220, 20, 60)),
    ("ignore", (255, 255, 255)),
)
LABEL_COLORS = np.array([color for _, color in LABELS], dtype=np.uint8)
# Image colour of each painted class (background is black, like the border fill):
# far apart, so a pixel close to one of them can only come from that class.
IMAGE_COLORS = np.array([(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)], dtype=np.uint8)
SIZE = (64, 48)  # width, height
BLOCK = 8
GEOMETRIC = "shift,rotate,scale,flip"


# === Fixtures ===


def labelmap_text(labels=LABELS):
    return "".join(f"{name}:{r},{g},{b}::\n" for name, (r, g, b) in labels)


def square_classes(name, size=SIZE):
    """Class of every pixel of image `name`: 8x8 squares of random classes 0..3."""
    width, height = size
    seed = sum(name.encode())
    grid = np.random.default_rng(seed).integers(0, 4, size=(height // BLOCK, width // BLOCK))
    return np.kron(grid, np.ones((BLOCK, BLOCK), dtype=np.int64)).astype(np.uint8)


def object_colors(classes, object_classes):
    """Instance mask: every square of a class in `object_classes` is an object of its own."""
    height, width = classes.shape
    rows, columns = np.mgrid[0:height, 0:width]
    block_index = (rows // BLOCK) * (width // BLOCK) + columns // BLOCK + 1
    colours = np.stack(
        [(block_index * 37) % 256, (block_index * 91) % 256, 100 + block_index % 100], axis=-1
    ).astype(np.uint8)
    is_object = np.isin(classes, object_classes)
    return np.where(is_object[..., None], colours, 0).astype(np.uint8)


def write_squares_export(
    root, train=("a", "b", "c"), val=("d",), objects=True, object_classes=(1, 2, 3)
):
    """A CVAT export of square scenes with PNG images; returns its path."""
    root = pathlib.Path(root)
    for folder in ("ImageSets/Segmentation", "JPEGImages", "SegmentationClass"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n" + labelmap_text())
    for split, names in (("train", train), ("val", val)):
        if names:
            (root / "ImageSets/Segmentation" / f"{split}.txt").write_text(
                "".join(f"{name}\n" for name in names)
            )
    for name in (*train, *val):
        classes = square_classes(name)
        Image.fromarray(IMAGE_COLORS[classes]).save(root / "JPEGImages" / f"{name}.png")
        Image.fromarray(LABEL_COLORS[classes]).save(root / "SegmentationClass" / f"{name}.png")
        if objects:
            (root / "SegmentationObject").mkdir(exist_ok=True)
            Image.fromarray(object_colors(classes, object_classes)).save(
                root / "SegmentationObject" / f"{name}.png"
            )
    return root


def write_backgrounds(folder):
    """Two constant-colour backgrounds of other sizes than the scenes; returns their colours."""
    folder.mkdir(parents=True)
    colours = {"green.png": (10, 200, 30), "sub/pink.jpg": (200, 10, 150)}
    Image.fromarray(np.full((80, 100, 3), colours["green.png"], np.uint8)).save(
        folder / "green.png"
    )
    (folder / "sub").mkdir()
    Image.fromarray(np.full((20, 30, 3), colours["sub/pink.jpg"], np.uint8)).save(
        folder / "sub" / "pink.jpg", quality=100
    )
    return {str(folder / name): colour for name, colour in colours.items()}


def run_augment(export, output, **options):
    options.setdefault("image_format", "png")
    options.setdefault("num_per_image", 3)
    return augment_export(AugmentOptions(rgb_path=str(export), output_path=str(output), **options))


def rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


def label_colors(labels=LABELS):
    entries = [
        cvat.LabelmapEntry(name, color, line) for line, (name, color) in enumerate(labels, 1)
    ]
    return LabelColors(entries, "labelmap.txt")


def snapshot(folder):
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def read_list(export, split="train"):
    return (export / "ImageSets/Segmentation" / f"{split}.txt").read_text().split()


def record(output):
    return json.loads((output / "augmentation.json").read_text())


def misaligned_pixels(image, classes, tolerance=12):
    """Pixels whose image colour is close to the colour of one class but whose mask says another.

    Also returns how many pixels were close to a class colour at all. Bilinear
    resampling blends colours only within a pixel of a square's edge, and the
    nearest-neighbour mask pixel has at least a quarter of the blend weight, so with
    colours 255 apart an aligned pair has no such pixel; a shift by one shows at once.
    """
    distance = np.abs(image[:, :, None, :].astype(int) - IMAGE_COLORS[None, None].astype(int))
    close = distance.max(axis=-1) <= tolerance  # (H, W, classes)
    matched = close.any(axis=-1)
    expected = close.argmax(axis=-1)
    return int((matched & (expected != classes)).sum()), int(matched.sum())


# === The output export ===


def test_export_layout_originals_and_other_splits(tmp_path):
    export = write_squares_export(tmp_path / "export")
    inputs = snapshot(export)
    output = tmp_path / "out"

    summary = run_augment(export, output, num_per_image=2, ops=GEOMETRIC)

    assert snapshot(export) == inputs

    train = read_list(output)
    assert train == [
        "a", "a_aug00", "a_aug01", "b", "b_aug00", "b_aug01", "c", "c_aug00", "c_aug01",
    ]  # fmt: skip
    assert read_list(output, "val") == ["d"]
    assert (summary.num_sources, summary.num_originals, summary.num_augmented) == (3, 3, 6)
    assert summary.other_splits == {"val": 1}
    assert (output / "labelmap.txt").read_bytes() == (export / "labelmap.txt").read_bytes()
    for name in ("a", "d"):  # originals and the val example are copied byte for byte
        for folder in ("JPEGImages", "SegmentationClass", "SegmentationObject"):
            copied = (output / folder / f"{name}.png").read_bytes()
            assert copied == (export / folder / f"{name}.png").read_bytes()
    for name in train:
        for folder in ("JPEGImages", "SegmentationClass", "SegmentationObject"):
            assert (output / folder / f"{name}.png").is_file()
        assert (output / "VIS_MASK" / f"{name}.jpg").is_file()
    assert not (output / "VIS_MASK" / "d.jpg").exists()  # copied splits get no overlay
    examples = record(output)["examples"]
    assert examples["a"] == {"source": "a", "ops": [], "background": None}
    assert examples["b_aug01"]["source"] == "b"
    assert set(examples["b_aug01"]["ops"]) <= set(GEOMETRIC.split(","))
    assert examples["b_aug01"]["ops"]
    # No temporary folder is left beside the output.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["export", "out"]
    # The CVAT reader of the builder accepts the output as it is.
    reader = cvat.open_export(output, tmp_path / "scratch")
    assert reader.num_examples("train") == 9 and reader.num_examples("val") == 1


def test_no_keep_originals_and_jpeg_output(tmp_path):
    export = write_squares_export(tmp_path / "export", val=())
    output = tmp_path / "out"

    run_augment(
        export, output, num_per_image=2, keep_originals=False, image_format="jpg", vis=False
    )

    assert read_list(output) == ["a_aug00", "a_aug01", "b_aug00", "b_aug01", "c_aug00", "c_aug01"]
    assert sorted(path.name for path in (output / "JPEGImages").iterdir())[0] == "a_aug00.jpg"
    assert not (output / "JPEGImages" / "a.png").exists()
    assert not (output / "VIS_MASK").exists()
    assert not (output / "ImageSets/Segmentation/val.txt").exists()


def test_folders_image_list_and_zip_inputs(tmp_path):
    export = write_squares_export(tmp_path / "export", val=())
    names_file = tmp_path / "names.txt"
    names_file.write_text("c\n\na\n")

    from_folders = run_augment(
        export / "JPEGImages",
        tmp_path / "folders",
        mask_path=str(export / "SegmentationClass"),
        obj_mask_path=str(export / "SegmentationObject"),
        label_map_path=str(export / "labelmap.txt"),
        image_list=str(names_file),
        num_per_image=1,
    )
    with zipfile.ZipFile(tmp_path / "export.zip", "w") as archive:
        for path in sorted(export.rglob("*")):
            if path.is_file():
                archive.write(path, "task_1/" + path.relative_to(export).as_posix())
    run_augment(tmp_path / "export.zip", tmp_path / "zipped", num_per_image=1, seed=5)
    run_augment(export, tmp_path / "unzipped", num_per_image=1, seed=5)

    assert from_folders.num_sources == 2
    assert read_list(tmp_path / "folders") == ["c", "c_aug00", "a", "a_aug00"]
    assert (tmp_path / "folders" / "SegmentationObject" / "c_aug00.png").is_file()
    # A zip gives the same export as the folder it holds.
    for name in ("a_aug00", "c_aug00"):
        for folder in ("JPEGImages", "SegmentationClass", "SegmentationObject"):
            zipped = (tmp_path / "zipped" / folder / f"{name}.png").read_bytes()
            assert zipped == (tmp_path / "unzipped" / folder / f"{name}.png").read_bytes()


# === Guarantees ===


def test_masks_hold_only_labelmap_colours(tmp_path):
    export = write_squares_export(tmp_path / "export", val=())
    output = tmp_path / "out"

    run_augment(export, output, num_per_image=6, ops=GEOMETRIC + ",color,blur", op_probability=1)

    labelmap_colours = {tuple(color) for _, color in LABELS}
    border_pixels = 0
    for name in read_list(output):
        mask = rgb(output / "SegmentationClass" / f"{name}.png")
        source = rgb(export / "SegmentationClass" / f"{name.split('_aug')[0]}.png")
        colours = {tuple(color) for color in np.unique(mask.reshape(-1, 3), axis=0)}
        assert colours <= labelmap_colours, (name, colours - labelmap_colours)
        source_colours = {tuple(color) for color in np.unique(source.reshape(-1, 3), axis=0)}
        assert colours <= source_colours | {(0, 0, 0)}
        border_pixels += int((mask == 0).all(axis=-1).sum())
    assert border_pixels > 0


def test_border_ignore_paints_the_ignore_class(tmp_path):
    export = write_squares_export(tmp_path / "export", val=())
    output = tmp_path / "out"

    summary = run_augment(
        export, output, num_per_image=4, ops="rotate,scale", op_probability=1, border="ignore"
    )

    assert summary.void_label == "ignore"
    ignore_pixels = inner_pixels = 0
    for name in read_list(output):
        if "_aug" in name:
            classes = label_colors().to_ids(rgb(output / "SegmentationClass" / f"{name}.png"), name)
            image = rgb(output / "JPEGImages" / f"{name}.png")
            is_ignore = classes == 4
            ignore_pixels += int(is_ignore.sum())
            # The image border is black (blended with the scene along its edge only).
            assert misaligned_pixels(image, np.where(is_ignore, 0, classes))[0] == 0
            # Pixels two or more pixels inside the border (zooming in spreads the blend).
            inner = is_ignore.copy()
            for rows in range(-2, 3):
                for columns in range(-2, 3):
                    inner &= np.roll(is_ignore, (rows, columns), axis=(0, 1))
            assert (image[inner] == 0).all()
            inner_pixels += int(inner.sum())
            objects = rgb(output / "SegmentationObject" / f"{name}.png")
            assert (objects[is_ignore] == 0).all()  # and holds no object
    assert ignore_pixels > inner_pixels > 0


@pytest.mark.parametrize("ops", ["shift", "rotate", "scale", "shift,rotate,scale,flip"])
def test_image_and_masks_get_identical_geometry(tmp_path, ops):
    export = write_squares_export(tmp_path / "export", val=())
    output = tmp_path / "out"

    run_augment(export, output, num_per_image=4, ops=ops, op_probability=1)

    colours = label_colors()
    changed = 0
    for source_name in ("a", "b", "c"):
        source_objects = rgb(export / "SegmentationObject" / f"{source_name}.png")
        source_classes = square_classes(source_name)
        class_of_object = {
            tuple(color): source_classes[tuple(np.argwhere((source_objects == color).all(-1))[0])]
            for color in np.unique(source_objects.reshape(-1, 3), axis=0)
            if color.any()
        }
        for copy in range(4):
            name = f"{source_name}_aug{copy:02d}"
            image = rgb(output / "JPEGImages" / f"{name}.png")
            classes = colours.to_ids(rgb(output / "SegmentationClass" / f"{name}.png"), name)
            wrong, matched = misaligned_pixels(image, classes)
            assert wrong == 0, f"{name}: {wrong} misaligned pixels"
            assert matched > 0.6 * classes.size
            changed += not np.array_equal(classes, source_classes)
            # The object mask moved with them: each object keeps its class, and only
            # pixels of a class with objects have one.
            objects = rgb(output / "SegmentationObject" / f"{name}.png")
            has_object = objects.any(axis=-1)
            np.testing.assert_array_equal(has_object, classes != 0)
            for color in np.unique(objects[has_object], axis=0):
                pixels = (objects == color).all(axis=-1)
                assert (classes[pixels] == class_of_object[tuple(color)]).all()
    assert changed >= 10


def test_misalignment_check_sees_a_one_pixel_shift():
    classes = square_classes("a")
    image = IMAGE_COLORS[classes]

    assert misaligned_pixels(image, classes)[0] == 0
    assert misaligned_pixels(image, np.roll(classes, 1, axis=1))[0] > 0
    assert misaligned_pixels(image, np.roll(classes, 1, axis=0))[0] > 0


def test_flip_mirrors_image_and_masks_exactly(tmp_path):
    export = write_squares_export(tmp_path / "export", val=())
    output = tmp_path / "out"

    run_augment(export, output, num_per_image=1, ops="flip")

    for folder in ("JPEGImages", "SegmentationClass", "SegmentationObject"):
        flipped = rgb(output / folder / "b_aug00.png")
        np.testing.assert_array_equal(flipped, rgb(export / folder / "b.png")[:, ::-1])


def test_same_seed_same_output_whatever_the_workers(tmp_path):
    export = write_squares_export(tmp_path / "export", train=("a", "b", "c", "e"))
    options = {"num_per_image": 3, "ops": GEOMETRIC + ",color,blur", "image_format": "jpg"}

    run_augment(export, tmp_path / "one", seed=7, workers=1, **options)
    run_augment(export, tmp_path / "two", seed=7, workers=2, **options)
    run_augment(export, tmp_path / "other_seed", seed=8, workers=1, **options)

    def files(root):
        return {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file() and path.name != "augmentation.json"
        }

    one, two, other = (
        files(tmp_path / "one"),
        files(tmp_path / "two"),
        files(tmp_path / "other_seed"),
    )
    # 16 train names x (image, mask, object mask, overlay), val "d" x 3, labelmap, 2 lists.
    assert len(one) == 16 * 4 + 3 + 1 + 2
    assert one == two
    one_record, two_record = record(tmp_path / "one"), record(tmp_path / "two")
    assert one_record["examples"] == two_record["examples"]
    augmented = [name for name in one if "_aug" in name and name.startswith("JPEGImages")]
    assert sum(one[name] != other[name] for name in augmented) >= len(augmented) - 1


def test_example_rng_depends_on_seed_name_and_copy_only():
    def draw(*key):
        return example_rng(*key).integers(0, 2**31, size=4).tolist()

    assert draw(0, "a", 0) == draw(0, "a", 0)
    keys = [(0, "a", 0), (1, "a", 0), (0, "b", 0), (0, "a", 1), (0, "a_", 0)]
    assert len({str(draw(*key)) for key in keys}) == len(keys)


# === bg_replace ===


def test_bg_replace_keeps_the_foreground_pixels_exactly(tmp_path):
    export = write_squares_export(tmp_path / "export", val=(), objects=False)
    backgrounds = write_backgrounds(tmp_path / "backgrounds")
    output = tmp_path / "out"

    run_augment(
        export, output, num_per_image=4, ops="bg_replace", bg_path=str(tmp_path / "backgrounds")
    )

    used = set()
    for name in ("a", "b", "c"):
        source_image = rgb(export / "JPEGImages" / f"{name}.png")
        source_mask = rgb(export / "SegmentationClass" / f"{name}.png")
        foreground = (source_mask != 0).any(axis=-1)
        assert 0 < foreground.sum() < foreground.size
        for copy in range(4):
            augmented = f"{name}_aug{copy:02d}"
            image = rgb(output / "JPEGImages" / f"{augmented}.png")
            np.testing.assert_array_equal(image[foreground], source_image[foreground])
            np.testing.assert_array_equal(
                rgb(output / "SegmentationClass" / f"{augmented}.png"), source_mask
            )
            background = record(output)["examples"][augmented]["background"]
            used.add(background)
            expected = np.array(backgrounds[background], np.uint8)
            assert (np.abs(image[~foreground].astype(int) - expected) <= 2).all()
    assert used == set(backgrounds)


def test_bg_replace_foreground_comes_from_the_object_mask(tmp_path):
    # Only cars (class 2) are objects: road and person squares become background.
    export = write_squares_export(tmp_path / "export", val=(), object_classes=(2,))
    write_backgrounds(tmp_path / "backgrounds")
    output = tmp_path / "out"

    run_augment(
        export, output, num_per_image=2, ops="bg_replace", bg_path=str(tmp_path / "backgrounds")
    )

    source_image = rgb(export / "JPEGImages" / "a.png")
    cars = square_classes("a") == 2
    image = rgb(output / "JPEGImages" / "a_aug00.png")
    np.testing.assert_array_equal(image[cars], source_image[cars])
    assert not (image[~cars] == source_image[~cars]).all(axis=-1).any()
    mask = rgb(output / "SegmentationClass" / "a_aug00.png")
    np.testing.assert_array_equal((mask == LABEL_COLORS[2]).all(axis=-1), cars)
    np.testing.assert_array_equal((mask == 0).all(axis=-1), ~cars)
    objects = rgb(output / "SegmentationObject" / "a_aug00.png")
    np.testing.assert_array_equal(objects, rgb(export / "SegmentationObject" / "a.png"))


def test_bg_replace_after_geometry_fills_the_border_with_background(tmp_path):
    export = write_squares_export(tmp_path / "export", val=(), objects=False)
    backgrounds = write_backgrounds(tmp_path / "backgrounds")
    output = tmp_path / "out"

    run_augment(
        export,
        output,
        num_per_image=3,
        ops="rotate,scale,bg_replace",
        op_probability=1,
        bg_path=str(tmp_path / "backgrounds"),
        border="ignore",  # under bg_replace the border shows the new background instead
    )

    colours = label_colors()
    for copy in range(3):
        name = f"b_aug{copy:02d}"
        image = rgb(output / "JPEGImages" / f"{name}.png")
        classes = colours.to_ids(rgb(output / "SegmentationClass" / f"{name}.png"), name)
        assert not (classes == 4).any()
        expected = np.array(backgrounds[record(output)["examples"][name]["background"]])
        assert (np.abs(image[classes == 0].astype(int) - expected) <= 2).all()
        foreground_image = np.where((classes == 0)[..., None], 0, image).astype(np.uint8)
        assert misaligned_pixels(foreground_image, classes)[0] == 0


def test_augmenter_bg_replace_in_memory(tmp_path):
    classes = square_classes("a")
    image = IMAGE_COLORS[classes]
    background = tmp_path / "grey.png"
    Image.fromarray(np.full((5, 7, 3), 77, np.uint8)).save(background)
    augmenter = Augmenter(
        AugmentationSettings(ops=("bg_replace",), fill_class=0, background_class=0),
        [background],
    )

    copy = augmenter.augment(image, classes, None, example_rng(0, "a", 0))

    assert copy.ops == ("bg_replace",) and copy.background == background
    np.testing.assert_array_equal(copy.image[classes != 0], image[classes != 0])
    assert (copy.image[classes == 0] == 77).all()
    np.testing.assert_array_equal(copy.class_ids, classes)
    assert copy.object_ids is None


# === make_blank_label ===


def test_make_blank_label_fills_only_missing_masks(tmp_path):
    export = write_cvat_export(
        tmp_path / "export",
        splits={"train": ["a", "b", "c"], "val": ["d"]},
        image_size=(12, 8),
        omit_masks=["b", "d"],
        image_extensions={"d": ".png"},
    )
    (export / "JPEGImages" / "unlisted.jpg").write_bytes((export / "JPEGImages/a.jpg").read_bytes())
    before = {path: path.read_bytes() for path in (export / "SegmentationClass").iterdir()}

    dry = write_blank_labels(export, dry_run=True)
    report = write_blank_labels(export)
    again = write_blank_labels(export)

    expected = [
        export / "SegmentationClass" / "b.png",
        export / "SegmentationClass" / "d.png",
        export / "SegmentationClass" / "unlisted.png",
        export / "SegmentationObject" / "b.png",
        export / "SegmentationObject" / "d.png",
        export / "SegmentationObject" / "unlisted.png",
    ]
    assert dry.written == expected and report.written == expected
    assert again.written == []
    assert (report.num_images, report.num_existing, report.label) == (5, 2, "background")
    for path, content in before.items():
        assert path.read_bytes() == content
    for name in ("b", "d", "unlisted"):
        mask = rgb(export / "SegmentationClass" / f"{name}.png")
        assert mask.shape == (8, 12, 3) and (mask == DEFAULT_LABELS[0][1]).all()
        assert (rgb(export / "SegmentationObject" / f"{name}.png") == 0).all()
    # The export builds now: every listed image has a mask.
    reader = cvat.open_export(export, tmp_path / "scratch")
    assert reader.num_examples("train") == 3 and reader.num_examples("val") == 1


def test_make_blank_label_background_choice_and_folders(tmp_path):
    labels = (("road", (128, 64, 128)), ("car", (64, 0, 128)))
    export = write_cvat_export(tmp_path / "export", labels=labels, omit_masks=["b"])
    masks = tmp_path / "masks"

    first = write_blank_labels(export)  # no class named background: the first one
    folders = write_blank_labels(
        export / "JPEGImages",
        mask_path=masks,
        label_map_path=export / "labelmap.txt",
        background_label="car",
    )

    assert first.label == "road" and first.color == (128, 64, 128)
    assert (rgb(export / "SegmentationClass" / "b.png") == (128, 64, 128)).all()
    assert folders.label == "car" and len(folders.written) == 5
    assert (rgb(masks / "e.png") == (64, 0, 128)).all()
    with pytest.raises(InputError, match=r"--background_label 'sky' is not a class .*'road'"):
        write_blank_labels(export, background_label="sky")


def test_make_blank_label_command_lists_what_it_wrote(tmp_path):
    export = write_cvat_export(tmp_path / "export", omit_masks=["c"])

    result = run(sys.executable, BLANK_SCRIPT, "--rgb_path", export)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"wrote {export / 'SegmentationClass' / 'c.png'}"
    assert "wrote 2 blank mask(s) in class 'background' (0, 0, 0)" in lines[-1]
    assert "4 of 5 images already had a mask" in lines[-1]
    assert make_blank_label.parse_args(["--rgb_path", "x", "--dry_run"]).dry_run


# === Errors ===


def test_unknown_mask_colour_names_colour_count_and_file(tmp_path):
    export = write_squares_export(tmp_path / "export", val=())
    mask = rgb(export / "SegmentationClass" / "b.png").copy()
    mask[:3, :5] = (1, 2, 3)
    Image.fromarray(mask).save(export / "SegmentationClass" / "b.png")

    message = input_error(lambda: run_augment(export, tmp_path / "new" / "deeper" / "out"))
    assert str(export / "SegmentationClass" / "b.png") in message
    assert "1 colour(s) not in" in message and "(1, 2, 3) in 15 pixel(s)" in message
    assert "\n" not in message
    assert sorted(path.name for path in tmp_path.iterdir()) == ["export"]


def test_size_mismatch_names_both_files_and_sizes(tmp_path):
    export = write_squares_export(tmp_path / "export", val=())
    Image.fromarray(np.zeros((40, 64, 3), np.uint8)).save(export / "SegmentationObject" / "c.png")

    message = input_error(lambda: run_augment(export, tmp_path / "out", workers=2))
    assert f"{export / 'SegmentationObject' / 'c.png'} is 64x40 but" in message
    assert f"{export / 'JPEGImages' / 'c.png'} is 64x48" in message
    assert sorted(path.name for path in tmp_path.iterdir()) == ["export"]


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"ops": "shift,zoom"}, "--ops: unknown op(s) ['zoom']"),
        ({"ops": "bg_replace"}, "--ops bg_replace needs background images: pass --bg_path"),
        ({"bg_path": "."}, "--bg_path is only used by the bg_replace op"),
        ({"ignore_label": "ignore"}, "--ignore_label is only used with --border ignore"),
        ({"border": "ignore", "ignore_label": "sky"}, "--ignore_label 'sky' is not a class"),
        ({"num_per_image": 0}, "--num_per_image must be at least 1"),
        ({"split": "val"}, "has no list for --split 'val'; lists found: train"),
        ({"shift_limit": 1.5}, "--shift_limit must be in [0, 1)"),
    ],
)
def test_bad_options(tmp_path, options, fragment):
    export = write_squares_export(tmp_path / "export", val=())

    with pytest.raises(InputError) as error:
        run_augment(export, tmp_path / "out", **options)

    assert fragment in str(error.value)
    assert not (tmp_path / "out").exists()


def test_border_ignore_needs_a_labelmap_class(tmp_path):
    export = write_cvat_export(tmp_path / "export")  # background, road, car: no ignore

    with pytest.raises(InputError, match="--border ignore needs a class of .*--ignore_label"):
        run_augment(export, tmp_path / "out", border="ignore")


def test_missing_mask_points_to_make_blank_label(tmp_path):
    export = write_cvat_export(tmp_path / "export", omit_masks=["b"])

    with pytest.raises(InputError, match=r"1 image\(s\) of .*train.txt have no mask in .*b"):
        run_augment(export, tmp_path / "out")
    with pytest.raises(InputError, match="make_blank_label.py"):
        run_augment(export, tmp_path / "out")


def test_folder_input_needs_masks_and_labelmap(tmp_path):
    export = write_squares_export(tmp_path / "export", val=())

    with pytest.raises(InputError, match="--mask_path and --label_map_path required"):
        run_augment(export / "JPEGImages", tmp_path / "out")


def test_output_is_refused_when_not_empty_or_inside_the_input(tmp_path):
    export = write_squares_export(tmp_path / "export", val=())
    other_data = tmp_path / "other_data"
    other_data.mkdir()
    (other_data / "notes.txt").write_text("keep me")
    earlier = tmp_path / "earlier"
    run_augment(export, earlier, num_per_image=2)
    (earlier / "marker.txt").write_text("from the first run")

    with pytest.raises(InputError, match="is not empty; pass --overwrite"):
        run_augment(export, earlier, num_per_image=1)
    with pytest.raises(InputError, match="holds no augmentation.json, so it is not an earlier"):
        run_augment(export, other_data, overwrite=True)
    for inside in (export, export / "augmented", export / "JPEGImages", tmp_path):
        with pytest.raises(InputError, match="overlaps the input"):
            run_augment(export, inside, overwrite=True)
    assert (other_data / "notes.txt").read_text() == "keep me"
    assert len(read_list(earlier)) == 9

    run_augment(export, earlier, overwrite=True, num_per_image=1)

    assert not (earlier / "marker.txt").exists() and len(read_list(earlier)) == 6
    empty = tmp_path / "empty"
    empty.mkdir()
    run_augment(export, empty, num_per_image=1)
    assert len(read_list(empty)) == 6
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "earlier", "empty", "export", "other_data",
    ]  # fmt: skip


def test_a_run_removes_what_killed_runs_left_and_puts_back_a_moved_output(tmp_path):
    export = write_squares_export(tmp_path / "export", val=())
    output = tmp_path / "out"
    run_augment(export, output, num_per_image=1)
    # Killed while writing (a partial folder) and while replacing `out` (moved aside).
    partial = tmp_path / ".out.partial-1a2b3c4d"
    (partial / "JPEGImages").mkdir(parents=True)
    moved = tmp_path / ".out.old-5e6f7a8b"
    os.rename(output, moved)
    for folder in (partial, moved):
        os.utime(folder, (time.time() - 3600,) * 2)

    with pytest.raises(InputError, match="is not empty; pass --overwrite"):
        run_augment(export, output, num_per_image=2)

    assert len(read_list(output)) == 6  # the finished output is back under its name
    assert sorted(path.name for path in tmp_path.iterdir()) == ["export", "out"]


def test_name_collisions_are_refused(tmp_path):
    export = write_squares_export(tmp_path / "export", train=("a", "a_aug00"), val=())

    with pytest.raises(InputError, match="output name 'a_aug00' .* collides"):
        run_augment(export, tmp_path / "out")


def test_command_line_error_is_one_line(tmp_path):
    export = write_squares_export(tmp_path / "export", val=())
    mask = rgb(export / "SegmentationClass" / "a.png").copy()
    mask[0, 0] = (9, 9, 9)
    Image.fromarray(mask).save(export / "SegmentationClass" / "a.png")

    result = python(
        AUGMENT_SCRIPT, "--rgb_path", export, "--output_path", tmp_path / "out", "--workers", "1"
    )

    assert result.returncode == 1
    assert_one_line_error(
        result, "SegmentationClass/a.png: 1 colour(s) not in", "(9, 9, 9) in 1 pixel(s)"
    )
    assert not (tmp_path / "out").exists()


def test_command_line_flags_map_to_options():
    options = augment_data.parse_args(
        ["--rgb_path", "in", "--output_path", "out", "--no-keep_originals", "--ops", "flip"]
    )

    assert isinstance(options, AugmentOptions) and options.verbose is False
    assert options.keep_originals is False and options.ops == "flip" and options.vis is True
    assert options.workers == (os.cpu_count() or 1)
    with pytest.raises(InputError, match="--num_per_image must be at least 1"):
        augment_data.parse_args(["--rgb_path", "in", "--output_path", "o", "--num_per_image", "0"])


def test_a_mask_without_colour_has_no_object():
    assert object_ids_from_rgb(np.zeros((2, 2, 3), np.uint8), "x")[0].max() == 0


# === CamVid end to end ===


def test_camvid_twenty_images_augment_and_build(tmp_path):
    require_camvid()
    names = (CAMVID_DIR / "ImageSets/Segmentation/train.txt").read_text().split()[:20]
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    output = tmp_path / "camvid_aug"

    result = python(
        AUGMENT_SCRIPT,
        "--rgb_path",
        CAMVID_DIR,
        "--image_list",
        tmp_path / "names.txt",
        "--output_path",
        output,
        "--num_per_image",
        "2",
        "--workers",
        "2",
        "--seed",
        "3",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "20 images augmented" in result.stdout and "train 60" in result.stdout
    assert "augmenting: 100%" in result.stderr  # the progress bar
    builder = build_dataset("cvat", output, tmp_path / "tfds")

    assert builder.info.splits["train"].num_examples == 60
    assert builder.info.splits["val"].num_examples == 101
    assert builder.info.metadata["class_names"][0] == "background"
    train = builder.as_dataset(split="train", decoders={"image": tfds.decode.SkipDecoding()})
    built = {example["file_name"].decode(): example for example in tfds.as_numpy(train)}
    assert sorted(built) == sorted(
        name for source in names for name in (source, f"{source}_aug00", f"{source}_aug01")
    )
    camvid_colours = LabelColors.from_labelmap(CAMVID_DIR / "labelmap.txt")
    for name in (f"{names[0]}_aug00", f"{names[7]}_aug01"):
        expected = camvid_colours.to_ids(rgb(output / "SegmentationClass" / f"{name}.png"), name)
        np.testing.assert_array_equal(built[name]["mask"][..., 0], expected)
        assert built[name]["mask"].shape == (360, 480, 1)


def test_source_images_with_an_exif_orientation_are_read_upright(tmp_path):
    upright = np.random.default_rng(3).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    stored = Image.fromarray(np.rot90(upright, 1))
    exif = stored.getexif()
    exif[0x0112] = 6
    stored.save(tmp_path / "photo.png", exif=exif)

    assert source_files.read_size(tmp_path / "photo.png") == (12, 8)
    np.testing.assert_array_equal(source_files.read_rgb(tmp_path / "photo.png"), upright)
