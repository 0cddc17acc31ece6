"""The labelling loop with CVAT: pre-annotation archives (`predict.py --cvat`)."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds
from commands import ROOT, python
from PIL import Image

import predict
import select_images
from full_semantic.prepare import build_dataset
from semseg.base.errors import InputError
from semseg.base.labels import IGNORE_INDEX, LabelSpec
from semseg.labelling.cvat_masks import MAX_OBJECTS, CvatMaskArchive, labelmap_text, objects
from semseg.predict.inference import Predictor, read_image


def object_count(instances):
    return len(np.unique(instances[instances > 0]))


# === One object per connected region ===


def test_a_region_with_a_hole_is_one_object_and_separate_regions_are_several():
    ids = np.zeros((20, 20), dtype=np.uint8)
    ids[2:12, 2:12] = 1
    ids[5:8, 5:8] = 0  # a hole: the ring stays one object
    ids[15:19, 15:19] = 1  # a second region of the same class
    ids[15:19, 2:6] = 2
    ids[0, 19] = 2  # a speck

    instances, kept = objects(ids, min_area=2, background_id=0)

    assert object_count(instances) == 3
    ring = instances[2:12, 2:12][ids[2:12, 2:12] == 1]
    assert len(np.unique(ring)) == 1 and ring[0] == 1  # the largest object comes first
    assert instances[16, 16] != instances[3, 3] and instances[16, 3] not in (0, instances[3, 3])
    assert instances[0, 19] == 0 and kept[0, 19] == IGNORE_INDEX
    assert (instances[ids == 0] == 0).all()
    assert (kept[instances > 0] == ids[instances > 0]).all()


def test_diagonal_neighbours_are_one_object_and_objects_beyond_the_format_are_dropped():
    ids = np.zeros((40, 40), dtype=np.uint8)
    ids[np.arange(10), np.arange(10)] = 1  # a diagonal line: 8-connected, one object
    instances, _ = objects(ids, background_id=0)
    assert object_count(instances) == 1

    grid = np.zeros((64, 64), dtype=np.uint8)
    grid[::2, ::2] = 1  # 1024 isolated pixels
    grid[::2, ::2][0, :3] = 0
    grid[:1, :5] = 1  # one 5-pixel region: the largest
    instances, kept = objects(grid, background_id=0)
    assert instances.max() == MAX_OBJECTS and instances[0, 0] == 1
    assert (kept[(grid == 1) & (instances == 0)] == IGNORE_INDEX).all()


def test_labelmap_has_cvat_background_first_and_unique_non_black_colours():
    labels = LabelSpec(
        ["background", "road", "car", "sky"], [[0, 0, 0], [128, 64, 128], [128, 64, 128], [0, 0, 0]]
    )
    lines = labelmap_text(labels).splitlines()
    assert lines[0] == "background:0,0,0::"
    assert [line.split(":")[0] for line in lines] == ["background", "road", "car", "sky"]
    colours = [line.split(":")[1] for line in lines]
    assert len(set(colours)) == 4
    with pytest.raises(InputError, match="'a:b' cannot be written to labelmap.txt"):
        labelmap_text(LabelSpec(["a:b", "c"]))


def test_a_failed_archive_leaves_nothing(tmp_path):
    labels = LabelSpec(["road", "car"])
    with pytest.raises(RuntimeError):
        with CvatMaskArchive(tmp_path / "pre.zip", labels) as archive:
            archive.add("a", np.zeros((4, 4), np.uint8))
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


# === predict.py --cvat on a trained run ===


@pytest.fixture(scope="module")
def pre_annotations(demo_run, tmp_path_factory):
    """`predict.py --cvat` on 6 demo images: (images folder, archive, predictions)."""
    base = tmp_path_factory.mktemp("pre")
    images = base / "task_images"
    images.mkdir()
    export_images = demo_run.parent / "export" / "JPEGImages"
    for path in sorted(export_images.iterdir())[:6]:
        shutil.copy(path, images / path.name)
    archive = base / "pre.zip"
    arguments = ["--work_dir", str(demo_run), "--input", str(images), "--output", str(base / "out")]
    predict.main(predict.parse_args([*arguments, "--cvat", str(archive), "--min_area", "0"]))
    predictor = Predictor.from_work_dir(demo_run)
    predictions = {
        path.stem: predictor.predict(read_image(path)) for path in sorted(images.iterdir())
    }
    return images, archive, predictions, predictor.labels


def test_the_archive_has_cvat_layout_and_one_object_per_region(pre_annotations):
    images, archive, predictions, labels = pre_annotations
    with zipfile.ZipFile(archive) as handle:
        names = sorted(handle.namelist())
        default = handle.read("ImageSets/Segmentation/default.txt").decode().split()
        labelmap = handle.read("labelmap.txt").decode()
        object_masks = {
            name: np.asarray(Image.open(handle.open(f"SegmentationObject/{name}.png")))
            for name in predictions
        }
    assert sorted(default) == sorted(predictions)
    assert labelmap == labelmap_text(labels)
    assert names == sorted(
        ["labelmap.txt", "ImageSets/Segmentation/default.txt"]
        + [f"SegmentationClass/{name}.png" for name in predictions]
        + [f"SegmentationObject/{name}.png" for name in predictions]
    )
    background_id = labels.class_names.index("background")
    for name, prediction in predictions.items():
        expected, _ = objects(prediction, background_id=background_id)
        colours = object_masks[name].reshape(-1, 3)
        _, per_pixel = np.unique(colours, axis=0, return_inverse=True)
        # One colour per object: the colour partition equals the region partition.
        pairs = np.unique(np.stack([per_pixel.ravel(), expected.ravel()]), axis=1)
        assert len(pairs[0]) == len(np.unique(pairs[0])) == len(np.unique(pairs[1]))


def test_our_own_build_of_the_archive_gives_back_the_predicted_masks(pre_annotations, tmp_path):
    images, archive, predictions, labels = pre_annotations
    export = tmp_path / "export"
    with zipfile.ZipFile(archive) as handle:
        handle.extractall(export)
    shutil.copytree(images, export / "JPEGImages")

    builder = build_dataset("cvat", export, tmp_path / "tfds")

    assert builder.info.metadata["class_names"] == labels.class_names
    built = {
        example["file_name"].decode(): example["mask"][..., 0]
        for example in tfds.as_numpy(builder.as_dataset(split="train"))
    }
    assert sorted(built) == sorted(predictions)
    for name, prediction in predictions.items():
        np.testing.assert_array_equal(built[name], prediction)


# Datumaro (the library CVAT imports "Segmentation mask 1.1" with) pins
# opencv-python-headless<5 and we ship OpenCV 5, so it cannot live in the project's
# environment: the test installs it into a virtualenv of its own under build/.
DATUMARO = "datumaro==1.13.12"
DATUMARO_VENV = ROOT / "build" / "datumaro-venv"


def datumaro_python():
    python = DATUMARO_VENV / "bin" / "python"
    marker = DATUMARO_VENV / f".installed-{DATUMARO}"
    if not marker.exists():
        shutil.rmtree(DATUMARO_VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(DATUMARO_VENV)], check=True)
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", DATUMARO],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert install.returncode == 0, f"pip install {DATUMARO} failed: {install.stderr[-2000:]}"
        marker.touch()
    return python


@pytest.mark.large
def test_datumaro_imports_the_archive_with_every_pixel_as_predicted(pre_annotations, tmp_path):
    images, archive, predictions, labels = pre_annotations
    extracted = tmp_path / "archive"
    with zipfile.ZipFile(archive) as handle:
        handle.extractall(extracted)

    result = subprocess.run(
        [
            str(datumaro_python()),
            str(ROOT / "tests" / "datumaro_import.py"),
            str(extracted),
            str(tmp_path / "got.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    got = np.load(tmp_path / "got.npz")
    names = list(got["__labels__"])
    assert names == [line.split(":")[0] for line in labelmap_text(labels).splitlines()]
    background_id = labels.class_names.index("background")
    to_run_id = np.array([labels.class_names.index(name) for name in names])
    objects_of = {
        key[: -len("__objects")]: int(got[key]) for key in got.files if key.endswith("__objects")
    }
    assert sorted(objects_of) == sorted(predictions)
    for name, prediction in predictions.items():
        instances, _ = objects(prediction, background_id=background_id)
        assert objects_of[name] == instances.max()
        if objects_of[name]:
            np.testing.assert_array_equal(to_run_id[got[name]], prediction)
        else:
            assert (prediction == background_id).all()
    assert sum(count > 0 for count in objects_of.values()) >= 3


def test_cvat_flag_mistakes_are_one_line_before_any_work(demo_run, tmp_path):
    image = tmp_path / "a.jpg"
    Image.new("RGB", (8, 8)).save(image)
    (tmp_path / "folder.zip").mkdir()
    for target, message in (
        (tmp_path / "pre.txt", "give a .zip file name"),
        (tmp_path / "missing" / "pre.zip", "no such folder"),
        (tmp_path / "folder.zip", "is a folder"),
    ):
        with pytest.raises(InputError, match=f"^--cvat {target}: {message}"):
            predict.parse_args(
                ["--work_dir", str(demo_run), "--input", str(image), "--cvat", str(target)]
            )
    # The one-line form of such an error, as the command prints it.
    result = python(
        "predict.py", "--work_dir", demo_run, "--input", image, "--cvat", tmp_path / "x.txt"
    )
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        f"error: --cvat {tmp_path / 'x.txt'}: give a .zip file name"
    ]


# === What to label next (select_images.py) ===


class FakePredictor:
    """`view_probabilities` from a function of the image, for score tests."""

    num_channels = 3

    def __init__(self, views):
        self.views = views

    def view_probabilities(self, image):
        return self.views(image)


def one_hot(classes, num_classes):
    return np.eye(num_classes, dtype=np.float32)[classes]


def test_scores_follow_uncertainty_flip_disagreement_and_rarity():
    from semseg.labelling.selection import score_images

    kinds = {"sure": 0, "unsure": 1, "flippy": 2, "rare": 3}
    images = {name: np.full((8, 8, 3), kind, np.uint8) for name, kind in kinds.items()}
    common = np.zeros((8, 8), np.int64)
    rare = common.copy()
    rare[:, :4] = 2

    def views(image):
        kind = int(image[0, 0, 0])
        if kind == 1:
            uniform = np.full((8, 8, 3), 1 / 3, np.float32)
            return uniform, uniform
        if kind == 2:
            left = common.copy()
            left[:, :4] = 1
            return one_hot(left, 3), one_hot(left[:, ::-1], 3)
        classes = rare if kind == 3 else common
        return one_hot(classes, 3), one_hot(classes, 3)

    scores = {
        score.path.name: score
        for score in score_images(
            FakePredictor(views), list(images), read=lambda name: images[name]
        )
    }

    assert scores["unsure"].entropy == pytest.approx(1.0)
    assert scores["sure"].entropy == pytest.approx(0.0, abs=1e-6)
    assert scores["flippy"].flip_disagreement == pytest.approx(1.0)
    assert scores["sure"].flip_disagreement == 0.0
    assert scores["rare"].rarity > scores["sure"].rarity
    assert scores["sure"].score == min(score.score for score in scores.values())


def test_picks_skip_near_duplicates_such_as_consecutive_frames():
    from semseg.labelling.selection import ImageScore, pick_diverse, thumbnail

    rng = np.random.default_rng(0)
    scene = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    next_frame = np.clip(scene.astype(int) + rng.integers(-8, 9, scene.shape), 0, 255)
    other = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)

    def scored(name, image, value):
        return ImageScore(Path(name), value, 0.0, np.ones(2) / 2, thumbnail(image), score=value)

    scores = [
        scored("frame_1.jpg", scene, 0.9),
        scored("frame_2.jpg", next_frame.astype(np.uint8), 0.8),
        scored("other.jpg", other, 0.5),
    ]
    picks = pick_diverse(scores, count=2, max_similarity=0.9)

    assert [pick.path.name for pick in picks] == ["frame_1.jpg", "other.jpg"]
    assert scores[1].duplicate_of == "frame_1.jpg" and scores[1].rank == 0
    assert [pick.rank for pick in picks] == [1, 2]


def test_select_images_writes_scores_sheet_list_and_cvat_archive(demo_run, tmp_path, capsys):
    pool = tmp_path / "pool"
    pool.mkdir()
    for path in sorted((demo_run.parent / "export" / "JPEGImages").iterdir())[:12]:
        shutil.copy(path, pool / path.name)
    first = sorted(pool.iterdir())[0]
    shutil.copy(first, pool / f"copy_of_{first.name}")  # a duplicate: never both picked
    output = tmp_path / "next_task"

    select_images.main(
        select_images.parse_args(
            [
                "--work_dir",
                str(demo_run),
                "--input",
                str(pool),
                "--count",
                "5",
                "--output",
                str(output),
            ]
        )
    )

    assert "picked 5 of 13 images" in capsys.readouterr().out
    assert sorted(path.name for path in output.iterdir()) == [
        "picks.jpg", "picks.txt", "pre_annotations.zip", "scores.csv",
    ]  # fmt: skip
    import csv

    rows = list(csv.DictReader((output / "scores.csv").open()))
    assert len(rows) == 13
    assert [float(row["score"]) for row in rows] == sorted(
        (float(row["score"]) for row in rows), reverse=True
    )
    picked = [
        row["name"] for row in sorted(rows, key=lambda row: int(row["rank"])) if row["rank"] != "0"
    ]
    assert len(picked) == 5
    assert not {first.name, f"copy_of_{first.name}"} <= set(picked)
    listed = [Path(line).name for line in (output / "picks.txt").read_text().splitlines()]
    assert listed == picked
    with zipfile.ZipFile(output / "pre_annotations.zip") as handle:
        default = handle.read("ImageSets/Segmentation/default.txt").decode().split()
    assert default == [Path(name).stem for name in picked]
    sheet = np.asarray(Image.open(output / "picks.jpg"))
    assert sheet.shape[1] == 4 * 320 and sheet.std() > 10


# === The model inside CVAT (semseg/labelling/cvat_function.py) ===


class Context:
    """A `cvat_sdk.auto_annotation.DetectionFunctionContext` as the SDK's driver gives."""

    def __init__(self, conf_threshold=None, conv_mask_to_poly=False):
        self.frame_name = "frame.jpg"
        self.conf_threshold = conf_threshold
        self.conv_mask_to_poly = conv_mask_to_poly


def test_cvat_function_returns_one_mask_shape_per_object_that_decodes_to_the_prediction(
    demo_run,
):
    import cvat_sdk.auto_annotation as cvataa
    from cvat_sdk.masks import decode_mask

    from semseg.labelling import cvat_function

    function = cvat_function.create(work_dir=str(demo_run), min_area=4)
    assert isinstance(function.spec, cvataa.DetectionFunctionSpec)
    labels = function.predictor.labels
    spec_names = {label.id: label.name for label in function.spec.labels}
    background_id = labels.class_names.index("background")
    assert spec_names == {
        class_id: name
        for class_id, name in enumerate(labels.class_names)
        if class_id != background_id
    }
    assert all(label.type == "mask" for label in function.spec.labels)
    path = sorted((demo_run.parent / "export" / "JPEGImages").iterdir())[0]
    image = Image.open(path)
    height, width = image.height, image.width

    shapes = function.detect(Context(), image)

    prediction = function.predictor.predict(read_image(path))
    instances, kept = objects(prediction, 4, background_id)
    assert len(shapes) == instances.max() > 0
    drawn = np.full((height, width), IGNORE_INDEX, np.uint8)
    for shape in shapes:
        assert shape.type.value == "mask" and shape.frame == 0 and shape.label_id in spec_names
        region = decode_mask(shape.points, image_width=width, image_height=height)
        assert (drawn[region] == IGNORE_INDEX).all()  # objects do not overlap
        drawn[region] = shape.label_id
    np.testing.assert_array_equal(drawn, np.where(instances > 0, kept, IGNORE_INDEX))

    polygons = function.detect(Context(conv_mask_to_poly=True), image)
    assert polygons and all(shape.type.value == "polygon" for shape in polygons)
    assert all(len(shape.points) >= 6 for shape in polygons)
    confident = function.detect(Context(conf_threshold=0.999), image)
    assert len(confident) < len(shapes)


def test_cvat_function_names_a_missing_run_or_model_in_one_line(tmp_path):
    from semseg.labelling import cvat_function

    with pytest.raises(InputError, match=r"missing_run/config.json"):
        cvat_function.create(work_dir=str(tmp_path / "missing_run"))
    with pytest.raises(InputError, match=r"model.onnx.json: not found"):
        cvat_function.create(model=str(tmp_path / "model.onnx"))


@pytest.mark.parametrize("holes", [1, 2])
def test_polygons_of_a_region_with_holes_keep_the_holes(holes):
    """CVAT polygons have no holes: each hole is joined to the outline by a zero-width cut."""
    from semseg.labelling.cvat_function import _polygons

    yy, xx = np.mgrid[:80, :90]
    region = (yy - 40) ** 2 + (xx - 45) ** 2 <= 36**2
    centres = [(40, 45)] if holes == 1 else [(40, 28), (40, 62)]
    for y, x in centres:
        region &= (yy - y) ** 2 + (xx - x) ** 2 > 9**2
    left, top = 10, 5
    polygons = _polygons(region, left, top)
    assert len(polygons) == 1  # one object, one polygon
    drawn = np.zeros((80 + top, 90 + left), np.uint8)
    points = np.asarray(polygons[0]).reshape(-1, 2).round().astype(np.int32)
    cv2.fillPoly(drawn, [points], 1)
    drawn = drawn[top:, left:].astype(bool)
    for y, x in centres:
        assert not drawn[y, x]  # the hole stays a hole
    iou = (drawn & region).sum() / (drawn | region).sum()
    assert iou > 0.93
