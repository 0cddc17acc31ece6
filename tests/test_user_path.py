"""The user's path through the real command lines on a generated tiny CVAT export:
tfds build -> train.py (1 epoch of 2 steps) -> eval.py -> predict.py."""

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from commands import evaluate, python, run, tfds_build, train_tiny
from errors import assert_one_line_error

from full_semantic.demo_data import LABELMAP, write_demo_export
from full_semantic.fingerprint import source_fingerprint


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    export = write_demo_export(base / "export", num_train=8, num_val=3, size=(64, 80), seed=1)
    tfds_build("--config", "cvat", "--manual_dir", export, "--data_dir", base / "tfds", check=True)
    work_dir = base / "run"
    train_tiny("full_semantic/cvat", base / "tfds", work_dir, "--model", "ddrnet23_slim")
    return base, export, work_dir


def test_train_writes_the_work_dir(trained):
    _, _, work_dir = trained
    config = json.loads((work_dir / "config.json").read_text())
    assert config["class_names"] == [name for name, _ in LABELMAP]
    assert config["palette"] == [list(color) for _, color in LABELMAP]
    assert config["image_size"] == [64, 64] and config["model"] == "ddrnet23_slim"
    for name in ("best.keras", "last.keras", "best.json"):
        assert (work_dir / "checkpoints" / name).is_file()
    assert len((work_dir / "history.csv").read_text().splitlines()) == 2  # header + 1 epoch
    assert list((work_dir / "logs").rglob("events.out.tfevents.*"))
    build = config["dataset_build"]
    base, export, _ = trained
    assert build["name"] == "full_semantic/cvat/1.0.0"
    assert Path(build["version_dir"]) == base / "tfds" / "full_semantic" / "cvat" / "1.0.0"
    assert build["source_fingerprint"] == source_fingerprint(export)


def test_eval_writes_metrics_json_reports_and_panels(trained):
    _, _, work_dir = trained
    result = evaluate(
        work_dir,
        "--visualize",
        "--num_vis",
        "2",
        "--latency_runs",
        "0",
        check=True,
    )
    assert "mIoU" in result.stdout and "background" in result.stdout
    output = work_dir / "eval" / "val"
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["split"] == "val" and metrics["num_examples"] == 3
    for key in ("mIoU", "mAcc", "aAcc"):
        assert 0.0 <= metrics[key] <= 1.0
    assert set(metrics["per_class"]) == {name for name, _ in LABELMAP}
    assert set(metrics["per_class"]["background"]) >= {"iou", "precision", "recall", "f1"}
    panels = sorted(path.name for path in (output / "vis").glob("*.png"))
    assert [name[:7] for name in panels] == ["best_01", "best_02", "worst_0", "worst_0"]
    panel = cv2.imread(str(output / "vis" / panels[0]))
    assert panel.shape[1] == 4 * 80 and panel.shape[0] > 64
    assert (output / "report.md").read_text().startswith("# Evaluation")
    for name in ("confusion_matrix.csv", "confusion_matrix.png", "per_class_iou.png"):
        assert (output / name).is_file()


def copy_of_run(work_dir, destination, **changes):
    """A copy of the run's config.json and best checkpoint, with `changes` to config.json."""
    (destination / "checkpoints").mkdir(parents=True)
    shutil.copy(work_dir / "checkpoints" / "best.keras", destination / "checkpoints")
    config = json.loads((work_dir / "config.json").read_text())
    for key, value in changes.items():
        config[key] = value(config[key])
    (destination / "config.json").write_text(json.dumps(config))
    return destination


def test_eval_on_a_rebuilt_dataset_warns_and_on_other_classes_stops(trained, tmp_path):
    _, _, work_dir = trained
    # The run trained on an export that has since changed: the build now holds
    # another fingerprint than the one config.json recorded.
    older = copy_of_run(
        work_dir,
        tmp_path / "older",
        dataset_build=lambda build: dict(build, source_fingerprint="sha256:0123"),
    )
    rebuilt = evaluate(older, "--max_examples", "1", "--latency_runs", "0", check=True)
    assert "rebuilt from other files since this run trained on it" in rebuilt.stderr
    assert "sha256:0123 at training" in rebuilt.stderr
    metrics = json.loads((older / "eval" / "val" / "metrics.json").read_text())
    assert metrics["dataset_build"]["source_fingerprint"] in rebuilt.stderr
    same = evaluate(
        work_dir, "--max_examples", "1", "--latency_runs", "0",
        "--output_dir", tmp_path / "same", check=True,
    )  # fmt: skip
    assert "rebuilt" not in same.stderr
    renamed = copy_of_run(
        work_dir, tmp_path / "renamed", class_names=lambda names: [*names[:-1], "lane"]
    )
    assert_one_line_error(
        evaluate(renamed, "--max_examples", "1"), "its classes", "differ from the run's"
    )
    assert not (renamed / "eval").exists()


def test_predict_writes_masks_in_dataset_colours_and_overlays(trained):
    base, export, work_dir = trained
    output = base / "predictions"
    python(
        "predict.py",
        "--work_dir",
        work_dir,
        "--input",
        export / "JPEGImages",
        "--output",
        output,
        check=True,
    )
    masks = sorted((output / "masks").glob("*.png"))
    assert len(masks) == 11 and len(list((output / "overlays").glob("*.jpg"))) == 11
    mask = cv2.cvtColor(cv2.imread(str(masks[0])), cv2.COLOR_BGR2RGB)
    assert mask.shape == (64, 80, 3)
    allowed = {color for _, color in LABELMAP}
    assert {tuple(color) for color in np.unique(mask.reshape(-1, 3), axis=0)} <= allowed


def test_user_mistakes_get_a_one_line_error(trained, tmp_path):
    base, export, work_dir = trained
    assert_one_line_error(
        run(sys.executable, "eval.py", "--work_dir", tmp_path / "nowhere", check=False),
        "config.json: not found",
    )
    assert_one_line_error(
        python(
            "train.py",
            "--dataset",
            "full_semantic/missing",
            "--data_dir",
            base / "tfds",
            "--work_dir",
            tmp_path / "run",
            check=False,
        ),
        "no built dataset 'full_semantic/missing'",
        "tfds build",
    )
    assert_one_line_error(
        python(
            "train.py",
            "--dataset",
            "full_semantic/cvat",
            "--data_dir",
            base / "tfds",
            "--work_dir",
            work_dir,
            "--image_size",
            "64",
            "64",
            check=False,
        ),
        "a finished run is already there",
    )
    conflict = python(
        "train.py", "--dataset", "full_semantic/cvat", "--data_dir", base / "tfds",
        "--work_dir", tmp_path / "conflict", "--float64", "--mixed_precision",
    )  # fmt: skip
    assert_one_line_error(conflict, "--float64 must be left out with --mixed_precision")
    assert not (tmp_path / "conflict").exists()
    assert_one_line_error(
        run(sys.executable, "eval.py", "--work_dir", work_dir, "--split", "test", check=False),
        "no split 'test'",
    )
    assert_one_line_error(
        python(
            "predict.py",
            "--work_dir",
            work_dir,
            "--input",
            tmp_path / "missing.jpg",
            "--output",
            tmp_path / "out",
            check=False,
        ),
        "missing.jpg: no such file",
    )
    assert not (tmp_path / "run").exists(), "a failed train.py left a work dir behind"


def test_eval_reports_cost_and_speed(trained, tmp_path):
    _, _, work_dir = trained
    result = evaluate(
        work_dir,
        "--latency_runs",
        "5",
        "--batch_size",
        "2",
        "--output_dir",
        tmp_path / "report",
        check=True,
    )
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["params"]["trainable"] > 5_000_000
    assert metrics["flops"] == 2 * metrics["macs"] > 0 and isinstance(metrics["flops"], int)
    assert metrics["image_size"] == [64, 64] and metrics["groups"] == {}
    latency = metrics["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] and metrics["fps"] > 0
    assert metrics["throughput"]["batch_size"] == 2
    assert "(CPU)" in metrics["device"] and metrics["threads"] >= 1
    assert "GFLOPs" in result.stdout and "FPS" in result.stdout
    report = (tmp_path / "report" / "report.md").read_text()
    assert "latency batch 1 (ms)" in report and "GMACs" in report


def test_outputs_that_are_files_are_refused_before_any_work(trained, tmp_path):
    base, export, work_dir = trained
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    for command, flag in (
        (["predict.py", "--input", export / "JPEGImages", "--output", a_file], "--output"),
        (["eval.py", "--output_dir", a_file, "--latency_runs", "0"], "--output_dir"),
        (["export.py", "--format", "onnx", "--output", a_file / "model.onnx"], "--output"),
    ):
        result = run(sys.executable, *command, "--work_dir", work_dir, check=False)
        assert_one_line_error(result, f"{flag} {a_file}", "give a folder")
    assert a_file.read_text() == "not a folder"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a_file"]
