"""The labelling loop with CVAT: pre-annotation archives (`predict.py --cvat`)."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from full_semantic.full_semantic_dataset_builder import Builder
from semseg.cvat_masks import MAX_OBJECTS, CvatMaskArchive, labelmap_text, objects
from semseg.errors import InputError
from semseg.inference import Predictor, read_image
from semseg.labels import IGNORE_INDEX, LabelSpec

ROOT = Path(__file__).resolve().parents[1]


def run(*command):
    return subprocess.run(
        [str(part) for part in command], cwd=ROOT, capture_output=True, text=True, timeout=900
    )


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
    result = run(
        sys.executable,
        "predict.py",
        "--work_dir",
        demo_run,
        "--input",
        images,
        "--output",
        base / "out",
        "--cvat",
        archive,
        "--min_area",
        "0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Upload annotations" in result.stdout
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

    builder = Builder(config="cvat", data_dir=tmp_path / "tfds")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=export))

    assert builder.info.metadata["class_names"] == labels.class_names
    built = {
        example["file_name"].decode(): example["mask"][..., 0]
        for example in tfds.as_numpy(builder.as_dataset(split="train"))
    }
    assert sorted(built) == sorted(predictions)
    for name, prediction in predictions.items():
        np.testing.assert_array_equal(built[name], prediction)


def test_cvat_flag_mistakes_are_one_line_before_any_work(demo_run, tmp_path):
    image = tmp_path / "a.jpg"
    Image.new("RGB", (8, 8)).save(image)
    (tmp_path / "folder.zip").mkdir()
    for target, message in (
        (tmp_path / "pre.txt", "give a .zip file name"),
        (tmp_path / "missing" / "pre.zip", "no such folder"),
        (tmp_path / "folder.zip", "is a folder"),
    ):
        result = run(
            sys.executable, "predict.py", "--work_dir", demo_run, "--input", image, "--cvat", target
        )
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert message in result.stderr.strip().splitlines()[-1]
