"""One rule for what a command writes: never over an input, never over earlier work unasked."""

import cv2
import numpy as np
import pytest
from commands import python

import predict
import predict_video
import select_images
from semseg.base.errors import InputError
from semseg.base.labels import LabelSpec
from semseg.config.run import Run, check_work_dir, save_run
from semseg.config.run_config import RunConfig

VIDEO = "../shared/data/video/solidWhiteRight.mp4"


def test_a_new_run_never_replaces_a_converted_model(tmp_path):
    """convert_weights.py writes config.json, checkpoints/best.keras and weights.json."""
    work_dir = tmp_path / "converted"
    (work_dir / "checkpoints").mkdir(parents=True)
    (work_dir / "checkpoints" / "best.keras").write_bytes(b"model")
    (work_dir / "weights.json").write_text("{}")
    config = RunConfig(work_dir=str(work_dir), dataset="full_semantic/cityscapes")
    save_run(Run(config=config, labels=LabelSpec(["a", "b"])), {"converted_from": "x.pth"})
    new_run = RunConfig(work_dir=str(work_dir), dataset="full_semantic/cvat", epochs=3)
    with pytest.raises(InputError, match="holds a model .* pick a new --work_dir"):
        check_work_dir(new_run)


def test_predict_video_refuses_to_write_over_its_input(demo_run, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(open(VIDEO, "rb").read())
    size = video.stat().st_size
    result = python("predict_video.py", "--work_dir", demo_run, "--input", video, "--output", video)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --output {video}: is the input {video}; give another path"
    )
    assert video.stat().st_size == size


def test_predict_video_replaces_an_existing_output_only_when_asked(demo_run, tmp_path):
    earlier = tmp_path / "out.mp4"
    earlier.write_bytes(b"earlier work")
    arguments = ["--work_dir", str(demo_run), "--input", VIDEO, "--output", str(earlier)]
    with pytest.raises(InputError, match="already exists; pass --overwrite"):
        predict_video.parse_args(arguments)
    assert predict_video.parse_args([*arguments, "--overwrite"]).overwrite


def test_an_existing_cvat_archive_is_kept_unless_overwrite(demo_run, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    archive = tmp_path / "labelled.zip"
    archive.write_bytes(b"a labelled CVAT export")
    arguments = ["--work_dir", str(demo_run), "--input", str(images), "--cvat", str(archive)]
    with pytest.raises(InputError, match=f"^--cvat {archive}: already exists"):
        predict.parse_args(arguments)
    assert predict.parse_args([*arguments, "--overwrite"]).cvat == str(archive)
    with pytest.raises(InputError, match="inside the input folder"):
        predict.parse_args([*arguments[:4], "--cvat", str(images / "pre.zip")])


def test_select_images_output_apart_from_the_pool_and_earlier_picks(demo_run, tmp_path):
    pool = tmp_path / "pool"
    pool.mkdir()
    base = ["--work_dir", str(demo_run), "--input", str(pool), "--count", "2"]
    for output, message in (
        (pool, "is the input"),
        (pool / "next", "inside the input folder"),
    ):
        with pytest.raises(InputError, match=message):
            select_images.parse_args([*base, "--output", str(output)])
    earlier = tmp_path / "round1"
    earlier.mkdir()
    (earlier / "picks.txt").write_text("frame_0001.jpg\n")
    with pytest.raises(InputError, match="not empty; pass --overwrite"):
        select_images.parse_args([*base, "--output", str(earlier)])
    assert select_images.parse_args([*base, "--output", str(earlier), "--overwrite"]).overwrite


def test_a_failed_predict_leaves_no_partial_output(demo_run, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(images / name), np.full((40, 50, 3), 90, np.uint8))
    (images / "c.png").write_bytes(b"not an image")  # fails third, after two were written
    output = tmp_path / "out"
    result = python("predict.py", "--work_dir", demo_run, "--input", images, "--output", output)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "c.png" in result.stderr.strip().splitlines()[-1]
    assert not output.exists()
    # Into an output that holds earlier results: they stay as they were.
    (output / "masks").mkdir(parents=True)
    (output / "masks" / "a.png").write_bytes(b"earlier")
    result = python("predict.py", "--work_dir", demo_run, "--input", images, "--output", output)
    assert result.returncode == 1
    assert sorted(path.relative_to(output).as_posix() for path in output.rglob("*")) == [
        "masks",
        "masks/a.png",
    ]
    assert (output / "masks" / "a.png").read_bytes() == b"earlier"


def test_select_images_says_why_it_picked_fewer_and_leaves_nothing_on_failure(demo_run, tmp_path):
    pool = tmp_path / "pool"
    pool.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        picture = rng.integers(0, 255, (72, 88, 3), dtype=np.uint8)
        cv2.imwrite(str(pool / f"frame_{index}.png"), picture)
    base = ["--work_dir", demo_run, "--input", pool, "--count", "10"]
    result = python("select_images.py", *base, "--output", tmp_path / "picks")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(only 3: the pool holds 3 images)" in result.stdout
    assert "near-duplicates" not in result.stdout
    # A truncated JPEG (libjpeg alone would decode its first half, naming no file).
    cv2.imwrite(str(tmp_path / "whole.jpg"), rng.integers(0, 255, (72, 88, 3), dtype=np.uint8))
    whole = (tmp_path / "whole.jpg").read_bytes()
    (pool / "frame_9.jpg").write_bytes(whole[: len(whole) // 2])
    result = python("select_images.py", *base, "--output", tmp_path / "next")
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and last.startswith(f"error: {pool / 'frame_9.jpg'}: ")
    assert "truncated" in last
    assert not (tmp_path / "next").exists()


def test_an_archive_where_nothing_can_be_written_names_the_flag(demo_run, tmp_path):
    arguments = ["--work_dir", str(demo_run), "--input", str(tmp_path), "--cvat"]
    with pytest.raises(InputError, match=r"^--cvat /proc/pre.zip: cannot write in /proc \("):
        predict.parse_args([*arguments, "/proc/pre.zip"])


def test_export_never_writes_over_the_checkpoint_it_reads(demo_run):
    checkpoint = demo_run / "checkpoints" / "best.keras"
    size = checkpoint.stat().st_size
    # A folder format takes any name: the checkpoint itself is refused.
    for format_name, message in (
        ("saved_model", f"error: --output {checkpoint}: is"),
        ("onnx", f"error: --output {checkpoint}: a onnx model is a .onnx file"),
    ):
        result = python(
            "export.py", "--work_dir", demo_run, "--format", format_name, "--output", checkpoint
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(message)
        assert checkpoint.stat().st_size == size
