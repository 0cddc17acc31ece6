"""Training at scale and over faults (issue 5), through the real `train.py` where it matters:
two logical CPU devices under MirroredStrategy, two worker processes on 127.0.0.1,
SIGKILL and resume, NaN stop, fine-tuning, mixed precision and
recipes under tcmalloc."""

import csv
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from commands import free_ports, wait_all
from cvat_fixtures import build_demo_dataset, write_cvat_export
from errors import assert_one_line_error
from real_data import reference

import models
from full_semantic.config import FullSemanticConfig
from full_semantic.prepare import build_dataset
from semseg.base import cpu
from semseg.base.errors import InputError
from semseg.base.files import remove_stale_temporaries
from semseg.config.run_config import RunConfig
from semseg.train.backup import TrainingBackup
from semseg.train.callbacks import (
    AveragedWeights,
    ExplainEarlyValidation,
    SaveCheckpoints,
    StopOnNaN,
    TrainingDiverged,
)
from semseg.train.schedules import learning_rate_schedule
from semseg.train.setup import warn_if_val_leaks
from semseg.train.training import train
from semseg.weights.finetune import load_matching_weights

ROOT = Path(__file__).resolve().parents[3]
TCMALLOC = Path(cpu.TCMALLOC)
SIZE = ("64", "64")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("training_data")
    build_demo_dataset(base, num_train=16, num_val=4, size=(64, 80), seed=2)
    return base / "tfds"


def environment(**extra):
    values = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    values.pop("TF_CONFIG", None)
    values.pop("LD_PRELOAD", None)
    values.update(extra)
    return values


# Optimizer steps after which batch norm's moving statistics have settled (momentum 0.9:
# 0.9 ** 48 < 1%), so a short run's validation loss is finite.
SETTLING_STEPS = 48


def train_command(data_dir, work_dir, *flags):
    return [
        sys.executable, str(ROOT / "train.py"),
        "--dataset", "full_semantic/cvat", "--data_dir", str(data_dir),
        "--image_size", *SIZE, "--work_dir", str(work_dir), "--vis_every", "0", *flags,
    ]  # fmt: skip


def run_train(data_dir, work_dir, *flags, env=None, check=True):
    result = subprocess.run(
        train_command(data_dir, work_dir, *flags),
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env or environment(),
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"train.py failed:\n{result.stdout}\n{result.stderr[-4000:]}")
    return result


def read_history(path):
    return list(csv.DictReader(io.StringIO(path.read_text())))


def load_weights(path):
    return [np.asarray(weight) for weight in keras.saving.load_model(path, compile=False).weights]


def event_steps(log_dir, tag):
    """Steps of the summaries named `tag` in the event files under `log_dir`."""
    from tensorboard.compat.proto import event_pb2

    steps = []
    for path in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return sorted(steps)


@pytest.fixture(scope="module")
def plain_run(data_dir, tmp_path_factory):
    """One process, one device, global batch 4, trained for 2 epochs."""
    work_dir = tmp_path_factory.mktemp("plain") / "run"
    run_train(
        data_dir, work_dir, "--batch_size", "4", "--epochs", "2", "--steps_per_epoch", "2",
        "--seed", "3", "--optimizer", "sgd", "--learning_rate", "0.01",
    )  # fmt: skip
    return work_dir


@pytest.mark.large
def test_mirrored_strategy_on_two_cpu_devices_with_init_from(data_dir, plain_run, tmp_path):
    work_dir = tmp_path / "mirrored"
    result = run_train(
        data_dir, work_dir, "--multi_gpu", "--cpu_devices", "2", "--batch_size", "2",
        "--epochs", "1", "--steps_per_epoch", "2", "--scale_lr", "linear",
        "--learning_rate", "0.01", "--init_from", str(plain_run),
    )  # fmt: skip
    assert "MirroredStrategy over 2 devices (CPU:0, CPU:1)" in result.stderr
    assert "global batch 4 = 2 per replica x 2 replica(s); learning rate 0.02" in result.stderr
    assert "batch norm synchronised over the replicas" in result.stderr
    training = json.loads((work_dir / "config.json").read_text())["training"]
    assert training["num_replicas"] == 2 and training["global_batch_size"] == 4
    assert training["learning_rate"] == pytest.approx(0.02)
    transfer = json.loads((work_dir / "init_from.json").read_text())
    assert transfer["source"].endswith("best.keras") and not transfer["skipped"]
    assert transfer["loaded_parameters"] == transfer["total_parameters"]
    assert (work_dir / "checkpoints" / "best.keras").is_file()


@pytest.mark.large
def test_pidnet_heads_on_two_cpu_devices_in_mixed_precision(data_dir, tmp_path):
    """PIDNet's four losses under MirroredStrategy with bf16 mixed precision."""
    work_dir = tmp_path / "pidnet"
    result = run_train(
        data_dir, work_dir, "--model", "pidnet_s", "--aux_weight", "0.4", "--multi_gpu",
        "--cpu_devices", "2", "--batch_size", "2", "--epochs", "1", "--steps_per_epoch", "2",
        "--mixed_precision", "--force_mixed_precision", "--loss", "ohem(thresh=0.9)",
    )  # fmt: skip
    assert "MirroredStrategy over 2 devices (CPU:0, CPU:1)" in result.stderr
    assert "batch norm synchronised over the replicas" in result.stderr
    (row,) = read_history(work_dir / "history.csv")
    for term in ("logits_loss", "aux_logits_loss", "boundary_logits_loss", "bas_logits_loss"):
        assert np.isfinite(float(row[term])) and np.isfinite(float(row[f"val_{term}"])), term
    training = json.loads((work_dir / "config.json").read_text())["training"]
    assert training["num_replicas"] == 2 and training["dtype_policy"] == "mixed_bfloat16"


def test_torch_weights_for_a_model_without_them_is_one_error(data_dir, tmp_path):
    weights = reference("ddrnet23_slim_cityscapes.pth")
    work_dir = tmp_path / "effdeeplab"
    result = run_train(
        data_dir, work_dir, "--model", "effdeeplabv3plus_lite", "--weights", str(weights),
        "--epochs", "1", "--steps_per_epoch", "1", check=False,
    )  # fmt: skip
    assert result.returncode == 1
    last = assert_one_line_error(result)
    assert last.startswith(f"error: --weights {weights}: PyTorch checkpoints are read for")
    assert not work_dir.exists()


@pytest.mark.large
def test_two_workers_on_loopback_match_one_process_and_only_the_chief_writes(
    data_dir, plain_run, tmp_path
):
    """Two train.py workers (batch 2 each) against one process (batch 4), same seed,
    fine-tuned from `plain_run` (loaded by the chief, broadcast to the other worker).

    In float64: in float32, DDRNet trained from scratch on 64x64 crops amplifies
    rounding so much that even one process differs from itself with the batch-norm
    moments summed in another order (weights 5e-3 apart after 2 SGD steps at lr
    1e-3); in float64 the two runs agree to about 2e-4 (2e-5 relative) after 4 steps.
    """
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    flags = (
        "--epochs", "2", "--steps_per_epoch", "2", "--seed", "3", "--optimizer", "sgd",
        "--learning_rate", "0.01", "--float64", "--init_from", str(plain_run),
    )  # fmt: skip
    single_dir = tmp_path / "single"
    run_train(data_dir, single_dir, "--batch_size", "4", *flags)
    work_dir = tmp_path / "workers"
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        # Output to files, not pipes: a worker blocked on a full pipe stalls the collectives.
        with open(logs / f"{index}.out", "w") as out, open(logs / f"{index}.err", "w") as err:
            processes.append(
                subprocess.Popen(
                    train_command(data_dir, work_dir, "--batch_size", "2", *flags),
                    cwd=ROOT,
                    env=environment(TF_CONFIG=tf_config),
                    stdout=out,
                    stderr=err,
                )
            )
    wait_all(processes, timeout=600)
    outputs = [
        ((logs / f"{index}.out").read_text(), (logs / f"{index}.err").read_text())
        for index in range(2)
    ]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, f"{stdout}\n{stderr[-4000:]}"
    assert "MultiWorkerMirroredStrategy: 2 workers, 2 replicas" in outputs[0][1]
    assert "worker done; the chief wrote the work dir" in outputs[1][0]
    training = json.loads((work_dir / "config.json").read_text())["training"]
    assert training["num_workers"] == 2 and training["global_batch_size"] == 4
    assert not json.loads((work_dir / "init_from.json").read_text())["skipped"]

    history = read_history(work_dir / "history.csv")
    single_history = read_history(single_dir / "history.csv")
    assert [row["epoch"] for row in history] == ["0", "1"]
    assert [int(float(row["step"])) for row in history] == [2, 4]
    for row, single_row in zip(history, single_history):
        assert float(row["loss"]) == pytest.approx(float(single_row["loss"]), rel=1e-3)
    weights = load_weights(work_dir / "checkpoints" / "last.keras")
    single_weights = load_weights(single_dir / "checkpoints" / "last.keras")
    initial = load_weights(plain_run / "checkpoints" / "best.keras")  # what --init_from loads
    # Training moved the weights far more than the tolerance, so the match is not trivial.
    assert max(np.abs(a - b).max() for a, b in zip(single_weights, initial)) > 0.05
    for weight, single_weight in zip(weights, single_weights):
        np.testing.assert_allclose(weight, single_weight, rtol=1e-3, atol=1e-3)
    # Only the chief writes: nothing but the work dirs (and the test's logs) appeared.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["logs", "single", "workers"]


@pytest.mark.large
def test_sigkill_mid_epoch_then_the_same_command_resumes(data_dir, tmp_path):
    work_dir = tmp_path / "killed"
    flags = (
        "--batch_size", "2", "--epochs", "4", "--steps_per_epoch", "12", "--optimizer", "sgd",
        "--learning_rate", "0.01", "--vis_every", "1",
    )  # fmt: skip
    state_file = work_dir / "backup" / "state.json"
    process = subprocess.Popen(
        train_command(data_dir, work_dir, *flags),
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            if state_file.is_file() and json.loads(state_file.read_text())["epoch"] >= 2:
                break
            time.sleep(0.05)
        time.sleep(0.5)  # into epoch 3
        assert process.poll() is None, "the run ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        process.kill()
    completed = json.loads(state_file.read_text())["epoch"]
    assert 2 <= completed < 4

    result = run_train(data_dir, work_dir, *flags)
    assert f"resumed after epoch {completed}: optimizer step {12 * completed}" in result.stderr
    history = read_history(work_dir / "history.csv")
    assert [int(row["epoch"]) for row in history] == [0, 1, 2, 3]
    assert [int(float(row["step"])) for row in history] == [12, 24, 36, 48]
    for row in history:  # the schedule carried on: poly over the 48 steps of the run
        step = int(float(row["step"]))
        assert float(row["learning_rate"]) == pytest.approx(0.01 * (1 - step / 48) ** 0.9, abs=1e-7)
    for tag in ("epoch_loss", "epoch_learning_rate"):
        assert event_steps(work_dir / "logs" / "train", tag) == [0, 1, 2, 3], tag
    assert event_steps(work_dir / "logs" / "validation", "epoch_mean_iou") == [0, 1, 2, 3]
    assert event_steps(work_dir / "logs" / "predictions", "predictions") == [0, 1, 2, 3]
    assert not (work_dir / "backup").exists()
    for name in ("best.keras", "last.keras"):
        keras.saving.load_model(work_dir / "checkpoints" / name, compile=False)
    assert (work_dir / "training_curves.png").stat().st_size > 0


@pytest.mark.large
def test_a_kill_after_any_file_commit_leaves_a_run_the_same_command_finishes(data_dir, tmp_path):
    """SIGKILL right after each `os.replace` of a run in turn (config.json, the backup's
    start, then at the epoch's end the checkpoints, best.json, the curves, the backup's
    weights and state): the work dir is always an unfinished run that the same command
    completes, or the finished run itself. One epoch: every epoch end commits the same
    files, and resuming in the middle of a run is the mid-epoch kill test's."""
    # Enough steps for batch norm to settle: a run ending on a validation loss that is
    # not finite fails (`StopOnNaN`), which this test is not about.
    flags = ("--batch_size", "2", "--epochs", "1", "--steps_per_epoch", str(SETTLING_STEPS))
    hook = str(ROOT / "tests" / "kill_hook")
    kill_point, killed_runs = 0, 0
    while True:
        kill_point += 1
        work_dir = tmp_path / f"kill_{kill_point}"
        env = environment(KILL_AFTER_REPLACE=str(kill_point), PYTHONPATH=hook)
        first = run_train(data_dir, work_dir, *flags, env=env, check=False)
        if first.returncode == 0:
            break  # past the run's last commit: it finished untouched
        assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
        killed_runs += 1
        finished = (work_dir / "checkpoints" / "last.keras").is_file() and not (
            work_dir / "backup"
        ).exists()
        assert not finished, f"kill point {kill_point}: a killed run looks finished"
        rerun = run_train(data_dir, work_dir, *flags)
        assert "a finished run is already there" not in rerun.stderr
        history = read_history(work_dir / "history.csv")
        assert [int(row["epoch"]) for row in history] == [0], kill_point
        assert not (work_dir / "backup").exists()
        assert json.loads((work_dir / "checkpoints" / "best.json").read_text())["epoch"] == 1
        keras.saving.load_model(work_dir / "checkpoints" / "last.keras", compile=False)
        leftovers = [path.name for path in work_dir.rglob("*") if ".tmp" in path.name]
        assert leftovers == [], kill_point
    assert killed_runs >= 7  # config.json, backup start, last, best, best.json, weights, state


@pytest.fixture
def small_disk(tmp_path):
    """A 60 MB tmpfs (mounted and unmounted here); skips when mounting is not permitted."""
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=60m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


@pytest.mark.large
def test_a_full_disk_is_one_line_and_the_run_resumes_once_there_is_space(data_dir, small_disk):
    """Two checkpoints fit on the 60 MB disk, the backup of the first epoch does not."""
    work_dir = small_disk / "run"
    flags = ("--batch_size", "2", "--epochs", "2", "--steps_per_epoch", "2")
    first = run_train(data_dir, work_dir, *flags, check=False)
    assert first.returncode == 1, first.stderr[-3000:]
    assert_one_line_error(first, "No space left on device")
    assert (work_dir / "backup").is_dir(), "a run stopped by a full disk must look unfinished"
    assert [path.name for path in work_dir.rglob("*") if ".tmp" in path.name] == []

    subprocess.run(["mount", "-o", "remount,size=400m", str(small_disk)], check=True)
    run_train(data_dir, work_dir, *flags)
    assert [int(row["epoch"]) for row in read_history(work_dir / "history.csv")] == [0, 1]
    assert not (work_dir / "backup").exists()


@pytest.mark.large
def test_mixed_precision_iterations_warmup_and_recipe_under_tcmalloc(data_dir, tmp_path):
    assert TCMALLOC.is_file(), f"{TCMALLOC} missing: apt-get install libtcmalloc-minimal4"
    recipe = tmp_path / "recipe.json"
    recipe.write_text(
        json.dumps(
            {"batch_size": 2, "epochs": 50, "schedule": "cosine", "optimizer": "adamw",
             "learning_rate": 0.004, "weight_decay": 0.01, "mixed_precision": True,
             "force_mixed_precision": True, "ema": 0.9, "crop_size": [64, 48]}
        )
    )  # fmt: skip
    work_dir = tmp_path / "run"
    result = run_train(
        data_dir, work_dir, "--recipe", str(recipe), "--steps", "5", "--steps_per_epoch", "2",
        "--warmup_steps", "2", "--learning_rate", "0.002",
        env=environment(LD_PRELOAD=str(TCMALLOC)),
    )  # fmt: skip
    assert "memory allocator: tcmalloc" in result.stderr
    assert "mixed precision bf16" in result.stderr
    config = json.loads((work_dir / "config.json").read_text())
    assert config["recipe"] == str(recipe) and config["schedule"] == "cosine"
    assert config["learning_rate"] == 0.002  # the flag overrides the recipe
    assert config["training"]["dtype_policy"] == "mixed_bfloat16"
    assert config["ema"] == 0.9 and config["crop_size"] == [64, 48]
    assert config["training"]["total_steps"] == 5 and config["training"]["epochs"] == 3
    history = read_history(work_dir / "history.csv")
    assert [int(float(row["step"])) for row in history] == [2, 4, 5]
    expected = learning_rate_schedule("cosine", 0.002, 5, warmup_steps=2)
    for row in history:
        step = int(float(row["step"]))
        assert float(row["learning_rate"]) == pytest.approx(float(expected(step)), abs=1e-7)
    model = keras.saving.load_model(work_dir / "checkpoints" / "last.keras", compile=False)
    assert all(weight.dtype == "float32" for weight in model.weights)


def test_schedules_poly_cosine_and_linear_warmup():
    poly = learning_rate_schedule("poly", 0.01, 100)
    assert float(poly(0)) == pytest.approx(0.01)
    assert float(poly(50)) == pytest.approx(0.01 * 0.5**0.9)
    assert float(poly(100)) == pytest.approx(0.0)
    cosine = learning_rate_schedule("cosine", 0.01, 100)
    assert float(cosine(50)) == pytest.approx(0.005)
    warm = learning_rate_schedule("poly", 0.01, 100, warmup_steps=10)
    assert float(warm(0)) == pytest.approx(0.01 * 0.1)
    assert float(warm(4)) == pytest.approx(0.01 * (1 - 4 / 100) ** 0.9 * 0.5)
    assert float(warm(50)) == pytest.approx(float(poly(50)))
    assert learning_rate_schedule("constant", 0.01, 100) == 0.01
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(warm))
    assert float(restored(4)) == pytest.approx(float(warm(4)))


def tiny_model():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))


def test_nan_loss_stops_and_keeps_the_last_good_epoch(tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="mse")
    features = np.ones((24, 4), "float32")
    features[12:] = np.nan  # the second epoch's batches
    targets = np.zeros((24, 2), "float32")
    after_first = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: after_first.append(model.get_weights())
    )
    batches = tf.data.Dataset.from_tensor_slices((features, targets)).batch(4)
    with pytest.raises(TrainingDiverged, match="the loss is nan at epoch 2, step 1 of 3"):
        model.fit(
            batches,
            steps_per_epoch=3,
            epochs=3,
            verbose=0,
            shuffle=False,
            callbacks=[
                StopOnNaN(tmp_path),
                record,
                SaveCheckpoints(tmp_path / "checkpoints", "loss"),
                TrainingBackup(tmp_path / "backup"),
            ],
        )
    assert len(after_first) == 1
    kept = keras.saving.load_model(tmp_path / "checkpoints" / "last.keras").get_weights()
    for weight, expected in zip(kept, after_first[0]):
        np.testing.assert_array_equal(weight, expected)
        assert np.isfinite(weight).all()
    assert json.loads((tmp_path / "backup" / "state.json").read_text())["epoch"] == 1


@pytest.mark.parametrize("broken", ["val_loss", "weights"])
def test_a_non_finite_validation_loss_or_weight_stops_before_anything_is_saved(tmp_path, broken):
    """A diverged epoch whose training loss stays finite (a NaN only in the validation
    data, or a weight turned NaN) is never saved as best or last."""
    keras.utils.set_random_seed(0)
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    features, targets = np.ones((8, 4), "float32"), np.zeros((8, 2), "float32")
    val_features = features.copy()

    class BreakInSecondEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1 and broken == "val_loss":
                val_features[:] = np.nan

        def on_train_batch_end(self, batch, logs=None):
            # After the epoch's last loss: only the weights tell.
            if self.epoch == 1 and batch == 1 and broken == "weights":
                kernel = self.model.weights[0]
                kernel.assign(np.full(kernel.shape, np.inf, "float32"))

        def on_epoch_end(self, epoch, logs=None):
            self.epoch = epoch + 1

    val_batches = tf.data.Dataset.from_generator(
        lambda: ((val_features[start : start + 4], targets[:4]) for start in (0, 4)),
        output_signature=(tf.TensorSpec((None, 4)), tf.TensorSpec((None, 2))),
    )
    message = {
        "val_loss": "the validation loss is nan after epoch 2",
        "weights": "weight tensor\\(s\\) are not finite after epoch 2",
    }[broken]
    breaker = BreakInSecondEpoch()
    breaker.epoch = 0
    monitor = "val_loss" if broken == "val_loss" else "loss"
    with pytest.raises(TrainingDiverged, match=message):
        model.fit(
            features,
            targets,
            batch_size=4,
            epochs=3,
            verbose=0,
            validation_data=val_batches if broken == "val_loss" else None,
            callbacks=[
                breaker,
                StopOnNaN(tmp_path),
                SaveCheckpoints(tmp_path / "checkpoints", monitor),
                TrainingBackup(tmp_path / "backup"),
            ],
        )
    best = json.loads((tmp_path / "checkpoints" / "best.json").read_text())
    assert best["epoch"] == 1 and np.isfinite(best["value"])
    kept = keras.saving.load_model(tmp_path / "checkpoints" / "last.keras").get_weights()
    assert all(np.isfinite(weight).all() for weight in kept)
    assert json.loads((tmp_path / "backup" / "state.json").read_text())["epoch"] == 1


def test_backup_restores_the_optimizer_state(tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="mse")
    features = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    model.fit(features, np.ones((8, 2)), batch_size=4, epochs=2, verbose=0,
              callbacks=[TrainingBackup(tmp_path, delete_at_end=False)])  # fmt: skip
    restored = tiny_model()
    restored.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="mse")
    assert TrainingBackup(tmp_path).restore(restored) == 2
    assert int(restored.optimizer.iterations.numpy()) == 4
    for ours, theirs in zip(restored.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    for ours, theirs in zip(restored.weights, model.weights):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_fine_tune_across_class_counts_skips_only_the_classifiers(tmp_path):
    keras.utils.set_random_seed(0)
    source = models.build_model("ddrnet23_slim", 5, input_shape=(64, 64, 3), aux_head=True)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    source.save(tmp_path / "run" / "checkpoints" / "best.keras")
    target = models.build_model("ddrnet23_slim", 3, input_shape=(64, 64, 3), aux_head=True)
    before = {variable.path: np.asarray(variable) for variable in target.weights}
    report = load_matching_weights(target, tmp_path / "run")
    assert report.source.endswith("best.keras")
    assert len(report.skipped) == 2, report.skipped  # the main and the auxiliary classifier
    assert all("(" in reason and "5" in reason for reason in report.skipped.values())
    assert 0 < report.loaded_parameters < report.total_parameters
    expected = {variable.path: np.asarray(variable) for variable in source.weights}
    for variable in target.weights:
        layer = variable.path.rpartition("/")[0]
        if layer in report.skipped:
            np.testing.assert_array_equal(np.asarray(variable), before[variable.path])
        else:
            np.testing.assert_array_equal(np.asarray(variable), expected[variable.path])
    assert "skipped (other shapes)" in report.summary()


def test_the_first_validations_of_a_short_run_say_why_val_loss_is_high(caplog):
    images = np.random.default_rng(0).random((16, 8)).astype("float32")
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.BatchNormalization(momentum=0.9), keras.layers.Dense(1)]
    )
    model.compile("adam", "mse")
    with caplog.at_level(logging.INFO, logger="semseg.train.callbacks"):
        model.fit(
            images,
            images[:, :1],
            validation_data=(images, images[:, :1]),
            epochs=2,
            batch_size=8,
            callbacks=[ExplainEarlyValidation()],
            verbose=0,
        )
    notes = [record.getMessage() for record in caplog.records if "batch-norm" in record.message]
    assert notes == [
        "validating after 2 optimizer step(s): the batch-norm moving statistics still hold 81% "
        "of their initial mean 0 / variance 1 (momentum 0.9), so val_loss and val_mean_iou are "
        "far worse than the model until about step 44"
    ]


@pytest.mark.parametrize(
    "flags, capability, expected, warning",
    [
        ({"avx2", "avx512_bf16"}, None, "bf16", None),
        ({"avx2", "amx_bf16"}, None, "bf16", None),
        ({"avx2", "fma"}, None, "fp32", "neither AVX512_BF16 nor AMX-BF16"),
        ({"avx2"}, (8, 0), "fp16", None),
        ({"avx2"}, (6, 1), "fp32", "compute capability 6.1) has no float16 tensor cores"),
    ],
)
def test_mixed_precision_falls_back_to_float32_where_the_hardware_lacks_it(
    monkeypatch, caplog, flags, capability, expected, warning
):
    from semseg.runtime import precision
    from semseg.train import setup

    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    monkeypatch.setattr(precision, "_gpu_compute_capability", lambda: capability)
    config = RunConfig(work_dir="w", dataset="full_semantic/x", mixed_precision=True)
    with caplog.at_level(logging.WARNING, logger="semseg.train.setup"):
        assert setup.precision_of(config) == expected
    warnings = [record.getMessage() for record in caplog.records]
    if warning is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warning in warnings[0]
        assert "training in float32 instead" in warnings[0]
        # --force_mixed_precision keeps the emulated precision, saying so.
        caplog.clear()
        config.force_mixed_precision = True
        with caplog.at_level(logging.WARNING, logger="semseg.train.setup"):
            assert setup.precision_of(config) == "bf16"
        assert "slower than float32" in caplog.records[0].getMessage()
    assert setup.precision_of(RunConfig(work_dir="w", dataset="full_semantic/x")) == "fp32"


def test_a_one_class_dataset_is_one_error_and_leaves_no_work_dir(tmp_path):
    export = write_cvat_export(tmp_path / "export", labels=(("background", (0, 0, 0)),))
    build_dataset(FullSemanticConfig(name="one", source="cvat"), export, tmp_path / "tfds")
    config = RunConfig(
        work_dir=str(tmp_path / "run"), dataset="full_semantic/one", data_dir=str(tmp_path / "tfds")
    )
    with pytest.raises(InputError, match=r"full_semantic/one: 1 class \(background\); "):
        train(config)
    assert not (tmp_path / "run").exists()


class _ValidationBlowsUp(keras.callbacks.Callback):
    """Validation data that overflows in the epochs listed (1-based), finite otherwise."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.epochs:
            logs["val_loss"] = float("nan")


def fit_with_validation(callbacks, epochs=2):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.BatchNormalization(momentum=0.9), keras.layers.Dense(2)]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    features, targets = np.ones((8, 4), "float32"), np.zeros((8, 2), "float32")
    return model.fit(
        features,
        targets,
        batch_size=4,
        epochs=epochs,
        verbose=0,
        validation_data=(features[:4], targets[:4]),
        callbacks=callbacks,
    )


def test_an_early_non_finite_validation_loss_with_unsettled_batch_norm_is_a_warning(caplog):
    """After a few steps batch norm's moving statistics can make validation overflow
    although nothing diverged: the run goes on, saying so, and is fine once it is finite."""
    stop = StopOnNaN(Path("unused"))
    with caplog.at_level(logging.WARNING, logger="semseg.train.callbacks"):
        history = fit_with_validation([_ValidationBlowsUp({1}), stop], epochs=2)
    assert len(history.epoch) == 2
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and "not treated as divergence yet" in warnings[0]


def test_a_run_that_ends_on_a_non_finite_validation_loss_fails(tmp_path, caplog):
    """The settling allowance delays the verdict, never skips it; such an epoch is never best."""
    (tmp_path / "checkpoints").mkdir()
    saver = SaveCheckpoints(tmp_path / "checkpoints", "val_mean")
    marker = _ValidationBlowsUp({1, 2})

    class Monitor(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_mean"] = 0.19  # what the real run reported as "best"

    with pytest.raises(TrainingDiverged, match=r"ended on epoch 2, whose validation loss is nan"):
        fit_with_validation([marker, Monitor(), StopOnNaN(tmp_path), saver], epochs=2)
    assert (tmp_path / "checkpoints" / "last.keras").is_file()
    assert not (tmp_path / "checkpoints" / "best.keras").exists()


def write_litter(work_dir):
    """Temporary files as a killed writer leaves them, and two files that are not."""
    litter = [
        work_dir / "checkpoints" / ".last.1a2b3c4d.tmp.keras",
        work_dir / "backup" / ".0f1e2d3c.tmp.weights.h5",
        work_dir / ".config.89abcdef.tmp.json",
    ]
    kept = [work_dir / "notes.tmp.txt", work_dir / ".hidden_config.json"]
    for path in litter + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    return litter, kept


def test_only_the_temporary_files_of_killed_writers_are_removed(tmp_path):
    litter, kept = write_litter(tmp_path / "run")
    assert remove_stale_temporaries(tmp_path / "run") == 3
    assert [path for path in litter + kept if path.exists()] == kept


@pytest.mark.large
def test_a_run_removes_the_temporary_files_a_killed_run_left(data_dir, tmp_path):
    work_dir = tmp_path / "run"
    litter, _ = write_litter(work_dir)
    result = run_train(data_dir, work_dir, "--batch_size", "2", "--epochs", "1",
                       "--steps_per_epoch", str(SETTLING_STEPS))  # fmt: skip
    assert "removed 3 temporary file(s) a killed run left" in result.stderr
    assert not any(path.exists() for path in litter)


def averaging_model():
    keras.utils.set_random_seed(0)
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5), loss="mse")
    return model


def averaging_fit(callbacks, epochs, initial_epoch=0, model=None):
    """Fits `model` (default: `averaging_model()`) on fixed batches, 2 steps an epoch."""
    model = model or averaging_model()
    features = np.random.default_rng(1).normal(size=(8, 4)).astype("float32")
    targets = features[:, :2] * 3.0
    history = model.fit(
        features, targets, batch_size=4, epochs=epochs, initial_epoch=initial_epoch,
        shuffle=False, verbose=0, validation_data=(features, targets), callbacks=callbacks,
    )  # fmt: skip
    return model, history


def test_averaged_weights_are_validated_saved_and_kept(tmp_path):
    """With --ema the moving average of the raw weights (computed here by hand from a run
    without it) is what validation scores, what the checkpoints hold and what remains."""
    raw_steps = []
    record_raw = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: raw_steps.append(raw.get_weights())
    )
    keras.utils.set_random_seed(0)
    raw = tiny_model()
    raw.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    averaging_fit([record_raw], epochs=3, model=raw)
    averages = [raw_steps[0]]
    for weights in raw_steps[1:]:
        averages.append([0.5 * old + 0.5 * new for old, new in zip(averages[-1], weights)])

    at_epoch_end = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            at_epoch_end.append(self.model.get_weights())

    record = Record()
    checkpoints = SaveCheckpoints(tmp_path / "checkpoints", "val_loss")
    model, history = averaging_fit([AveragedWeights(), record, checkpoints], epochs=3)
    for epoch, weights in enumerate(at_epoch_end):
        for ours, expected in zip(weights, averages[2 * epoch + 1]):
            np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
        assert not np.allclose(weights[0], raw_steps[2 * epoch + 1][0])
    for ours, expected in zip(model.get_weights(), averages[-1]):
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    saved = keras.saving.load_model(tmp_path / "checkpoints" / "last.keras")
    for ours, expected in zip(saved.get_weights(), averages[-1]):
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    features = np.random.default_rng(1).normal(size=(8, 4)).astype("float32")
    scored = float(saved.evaluate(features, features[:, :2] * 3.0, verbose=0))
    assert history.history["val_loss"][-1] == pytest.approx(scored, rel=1e-5)


class StopAfter(keras.callbacks.Callback):
    """Ends `fit` after `epochs` epochs, as a kill after the backup's commit would."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = epoch + 1 == self.epochs


def test_a_resumed_averaging_run_ends_as_an_uninterrupted_one(tmp_path):
    whole, _ = averaging_fit([AveragedWeights()], epochs=3)
    backup = TrainingBackup(tmp_path, delete_at_end=False)
    averaging_fit([AveragedWeights(), backup, StopAfter(2)], epochs=3)
    resumed = averaging_model()
    assert TrainingBackup(tmp_path).restore(resumed) == 2
    averaging_fit([AveragedWeights(resumed=True)], epochs=3, initial_epoch=2, model=resumed)
    for ours, expected in zip(resumed.get_weights(), whole.get_weights()):
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-7)


def test_a_val_split_inside_the_training_split_is_a_warning(caplog):
    config = RunConfig(work_dir="w", dataset="full_semantic/x", train_split="train+val[:50%]")
    with caplog.at_level(logging.WARNING, logger="semseg.train.setup"):
        warn_if_val_leaks(builder=None, config=config)
    assert "--val_split val is part of --train_split train+val[:50%]" in caplog.text


def test_the_weight_average_warms_up_so_a_short_run_averages_its_recent_weights():
    """`--ema`: momentum min(M, (1 + t) / (10 + t)), 0 at the first step (hand-computed
    from a run without averaging); Keras's plain average would still be mostly the
    first step's weights."""
    from semseg.train.optimizers import AveragingSGD

    raw_steps = []
    keras.utils.set_random_seed(0)
    raw = tiny_model()
    raw.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: raw_steps.append(raw.get_weights())
    )
    averaging_fit([record], epochs=3, model=raw)
    expected = raw_steps[0]
    for step, weights in enumerate(raw_steps[1:], start=1):
        momentum = min(0.999, (1 + step) / (10 + step))
        expected = [momentum * old + (1 - momentum) * new for old, new in zip(expected, weights)]

    keras.utils.set_random_seed(0)
    model = tiny_model()
    model.compile(optimizer=AveragingSGD(0.1, use_ema=True, ema_momentum=0.999), loss="mse")
    averaging_fit([], epochs=3, model=model)
    averages = [np.asarray(value) for value in model.optimizer._model_variables_moving_average]
    for ours, theirs in zip(averages, expected):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    # Keras's average after 6 steps: 0.999 ** 5 of it is the first step's weights.
    keras_average = raw_steps[0]
    for weights in raw_steps[1:]:
        keras_average = [0.999 * old + 0.001 * new for old, new in zip(keras_average, weights)]
    last = raw_steps[-1][0]
    assert np.abs(averages[0] - last).max() < 0.5 * np.abs(keras_average[0] - last).max()
