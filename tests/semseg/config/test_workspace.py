"""Defaults of --dataset, --work_dir and the latest run (`semseg.config.workspace`), checked
before TensorFlow is imported."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from source_fixtures import new_user_environment

import train
from semseg.base.errors import InputError
from semseg.config import workspace

ROOT = Path(__file__).resolve().parents[3]


def fake_build(data_dir, config, version="1.0.0"):
    version_dir = Path(data_dir) / "full_semantic" / config / version
    version_dir.mkdir(parents=True)
    (version_dir / "dataset_info.json").write_text("{}")


def fake_run(work_dir, finished=True):
    (work_dir / "checkpoints").mkdir(parents=True)
    (work_dir / "config.json").write_text("{}")
    (work_dir / "checkpoints" / "last.keras").write_bytes(b"")
    if not finished:
        (work_dir / "backup").mkdir()


def test_the_one_build_is_the_default_dataset_and_several_are_listed(tmp_path):
    with pytest.raises(InputError, match="no full_semantic build in"):
        workspace.default_dataset(tmp_path)
    fake_build(tmp_path, "camvid")
    # A failed build's leftovers (no dataset_info.json) do not count.
    (tmp_path / "full_semantic" / "broken" / "1.0.0").mkdir(parents=True)
    assert workspace.default_dataset(tmp_path) == "full_semantic/camvid"
    fake_build(tmp_path, "cityscapes")
    with pytest.raises(InputError, match=r"2 full_semantic builds .*camvid, full_semantic/city"):
        workspace.default_dataset(tmp_path)


def test_a_data_dir_that_is_a_file_is_named(tmp_path, monkeypatch):
    afile = tmp_path / "tfds"
    afile.write_text("not a folder")
    with pytest.raises(InputError, match=f"^--data_dir {afile} is a file"):
        workspace.default_dataset(afile)
    with pytest.raises(InputError, match=f"^--data_dir {afile} is a file"):
        workspace.dataset_path("full_semantic/cvat", afile)
    monkeypatch.setenv("TFDS_DATA_DIR", str(afile))
    with pytest.raises(InputError, match=f"^TFDS_DATA_DIR {afile} is a file"):
        workspace.default_dataset()


def test_tfds_data_dir_is_the_default_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    fake_build(tmp_path, "camvid")
    assert workspace.default_dataset() == "full_semantic/camvid"
    assert workspace.dataset_path("full_semantic/camvid").parent.name == "camvid"


def test_new_work_dirs_take_the_next_free_suffix(tmp_path):
    first = workspace.new_work_dir("full_semantic/camvid", "ddrnet23_slim", tmp_path)
    assert first == tmp_path / "camvid-ddrnet23_slim"
    first.mkdir()
    second = workspace.new_work_dir("full_semantic/camvid:1.0.0", "ddrnet23_slim", tmp_path)
    assert second.name == "camvid-ddrnet23_slim-2"
    second.mkdir()
    assert workspace.new_work_dir("full_semantic/camvid", "ddrnet23_slim", tmp_path).name == (
        "camvid-ddrnet23_slim-3"
    )


def test_the_latest_run_is_the_one_that_finished_last(tmp_path):
    with pytest.raises(InputError, match="no finished run under"):
        workspace.latest_run(tmp_path)
    fake_run(tmp_path / "b-old")
    fake_run(tmp_path / "a-new")
    fake_run(tmp_path / "c-unfinished", finished=False)
    old = time.time() - 100
    os.utime(tmp_path / "b-old" / "checkpoints" / "last.keras", (old, old))
    assert workspace.latest_run(tmp_path) == tmp_path / "a-new"
    with pytest.raises(InputError, match="nothing/config.json: not found"):
        workspace.resolve_work_dir(str(tmp_path / "nothing"))


def test_train_without_dataset_or_work_dir_takes_the_build_and_a_new_run(tmp_path, monkeypatch):
    fake_build(tmp_path / "tfds", "camvid")
    monkeypatch.chdir(tmp_path)
    config = train.parse_args(["--data_dir", "tfds"]).config
    assert config.dataset == "full_semantic/camvid"
    assert config.work_dir == os.path.join("runs", "camvid-ddrnet23_slim")


def _run_cli(args, cwd, env=None):
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_every_bad_flag_is_reported_at_once_without_importing_tensorflow(tmp_path):
    code = (
        "import sys, train\n"
        "from semseg.base.errors import InputError\n"
        "try:\n"
        "    train.parse_args(sys.argv[1:])\n"
        "except InputError as error:\n"
        "    print(error)\n"
        "print('tensorflow imported' if 'tensorflow' in sys.modules else 'no tensorflow')\n"
    )
    argv = ["--data_dir", str(tmp_path), "--epochs", "0", "--batch_size", "0", "--loss", "x"]
    result = _run_cli(["-c", code, *argv], cwd=ROOT)
    message, imported = result.stdout.strip().splitlines()
    assert "--dataset: no full_semantic build in" in message
    assert "--batch_size must be at least 1" in message and "--epochs must be at least 1" in message
    assert "--loss: unknown loss 'x'" in message
    assert imported == "no tensorflow"


@pytest.mark.parametrize("script", ["eval.py", "predict.py", "export.py", "predict_video.py"])
def test_commands_without_work_dir_name_the_missing_run_in_one_line(tmp_path, script):
    args = [str(ROOT / script)]
    if script == "export.py":
        args += ["--format", "onnx"]
    if script == "predict.py":
        args += ["--input", str(tmp_path)]
    if script == "predict_video.py":
        args += ["--input", str(tmp_path / "clip.mp4")]
    result = _run_cli(args, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --work_dir: no finished run under runs/; train one (python train.py) or pass "
        "--work_dir"
    )
    assert "cuInit" not in result.stderr and "cudart" not in result.stderr


@pytest.mark.large
def test_the_first_hour_commands_as_typed(tmp_path):
    """The original layout's zip in the default manual dir, then `tfds build`, `train.py
    --multi_gpu` and `eval.py --visualize` without any other flag, as the README says."""
    env = new_user_environment(tmp_path, count=12)
    outputs = []

    def command(*args, cwd=tmp_path):
        result = subprocess.run(
            [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True
        )
        outputs.append(result.stdout + result.stderr)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    command(Path(sys.executable).parent / "tfds", "build", cwd=ROOT / "full_semantic")
    small = ["--image_size", "64", "64", "--batch_size", "2"]
    trained = command(
        sys.executable, ROOT / "train.py", "--multi_gpu", "--epochs", "1", "--steps_per_epoch",
        "2", *small,
    )  # fmt: skip
    assert trained.splitlines()[0] == "work dir: runs/auto-ddrnet23_slim"
    evaluated = command(sys.executable, ROOT / "eval.py", "--visualize", "--latency_runs", "0")
    assert evaluated.splitlines()[0] == (
        "work dir: runs/auto-ddrnet23_slim (the latest finished run under runs/)"
    )
    assert list((tmp_path / "runs" / "auto-ddrnet23_slim" / "eval" / "val" / "vis").glob("*"))
    # A second run goes next to the first.
    again = command(
        sys.executable, ROOT / "train.py", "--epochs", "1", "--steps_per_epoch", "1", *small
    )
    assert again.splitlines()[0] == "work dir: runs/auto-ddrnet23_slim-2"
    for output in outputs:
        assert "cuInit" not in output and "cudart" not in output
        assert "cpu_feature_guard" not in output
