"""The accelerator paths, on whatever device this process has (`bench/gpu_check.sh`).

On an NVIDIA GPU: MirroredStrategy over two logical GPUs split from one, fp16 mixed
precision with loss scaling, XLA `jit_compile` against plain Keras, and two train.py
workers on 127.0.0.1 sharing the GPU. Without a GPU (`bench/gpu_check.sh --smoke`, which a
default-suite test runs) the same tests run on two logical CPU devices, in bfloat16.

The device split must come before TensorFlow starts its devices, so these tests run in a
process of their own (`pytest -m gpu tests/test_gpu.py`); `make test` and `make test-all`
leave them out (`-m "not gpu"`) and run the smoke script instead.
"""

import csv
import io
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from commands import ROOT, free_ports, wait_all
from cvat_fixtures import build_demo_dataset

import models
from semseg.config.run_config import RunConfig
from semseg.runtime.runtimes import KerasRuntime, XlaRuntime
from semseg.train.training import train

pytestmark = pytest.mark.gpu

GPUS = tf.config.list_physical_devices("GPU")
if GPUS:
    # Two logical GPUs of 8 GiB each from the first one: what MirroredStrategy mirrors over.
    tf.config.set_logical_device_configuration(
        GPUS[0], [tf.config.LogicalDeviceConfiguration(memory_limit=8192)] * 2
    )
else:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
    # The CPU smoke proves these tests, not TensorFlow's graph optimiser, which would take a
    # third of its time on the two-replica training graph; a GPU keeps it, as runs do.
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
DEVICE = "GPU" if GPUS else "CPU"
SIZE = (64, 64)
# The paths under test do not depend on the model: DDRNet-lite (DDRNet-23-slim's code, fewer
# layers) builds and compiles faster; bench/gpu_latency.py times DDRNet-23-slim and PIDNet-S.
MODEL = "ddrnet_lite"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("gpu_data")
    build_demo_dataset(base, num_train=8, num_val=2, size=(64, 80), seed=5)
    return base / "tfds"


def history(work_dir):
    return list(csv.DictReader(io.StringIO((work_dir / "history.csv").read_text())))


def test_mirrored_over_two_logical_devices_in_mixed_precision(data_dir, tmp_path):
    config = RunConfig(
        work_dir=str(tmp_path / "run"),
        dataset="full_semantic/cvat",
        data_dir=str(data_dir),
        model=MODEL,
        image_size=SIZE,
        batch_size=2,
        epochs=1,
        steps_per_epoch=1,
        multi_gpu=True,
        cpu_devices=None if GPUS else 2,
        mixed_precision=True,
        force_mixed_precision=True,
        vis_every=0,
    )
    train(config)
    training = json.loads((tmp_path / "run" / "config.json").read_text())["training"]
    assert training["num_replicas"] == 2 and training["global_batch_size"] == 4
    assert f"{DEVICE}:1" in training["strategy"]
    # fp16 on a GPU, with loss scaling; bf16 (which needs none) on a CPU.
    assert training["dtype_policy"] == ("mixed_float16" if GPUS else "mixed_bfloat16")
    (row,) = history(tmp_path / "run")
    assert np.isfinite(float(row["loss"])) and np.isfinite(float(row["val_loss"]))
    model = keras.saving.load_model(tmp_path / "run" / "checkpoints" / "last.keras")
    if GPUS:
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_xla_logits_match_plain_keras():
    model = models.build_model(MODEL, num_classes=5, input_shape=(*SIZE, 3))
    images = tf.random.uniform((1, *SIZE, 3), 0.0, 255.0, seed=1)
    precision = "fp16" if GPUS else "fp32"
    keras_logits = KerasRuntime(model, 3, precision)(images).numpy()
    xla_logits = XlaRuntime(model, 3, precision)(images).numpy()
    assert xla_logits.shape == (1, *SIZE, 5)
    tolerance = 0.05 if GPUS else 1e-3  # fp16 rounds at about 1e-3 of the logits' scale
    scale = np.abs(keras_logits).max()
    np.testing.assert_allclose(xla_logits, keras_logits, atol=tolerance * scale)


def test_two_workers_on_loopback(data_dir, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_FORCE_GPU_ALLOW_GROWTH="true")
    if not GPUS:
        environment["CUDA_VISIBLE_DEVICES"] = ""
    command = [
        sys.executable, "train.py", "--model", MODEL, "--dataset", "full_semantic/cvat",
        "--data_dir", data_dir,
        "--image_size", *map(str, SIZE), "--batch_size", "1", "--epochs", "1",
        "--steps_per_epoch", "1", "--vis_every", "0", "--work_dir", tmp_path / "workers",
    ]  # fmt: skip
    processes = []
    for index in range(2):
        task = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        # Output to files, not pipes: a worker blocked on a full pipe stalls the collectives.
        with open(tmp_path / f"{index}.log", "w") as log:
            processes.append(
                subprocess.Popen(
                    [str(part) for part in command],
                    cwd=ROOT,
                    env=dict(environment, TF_CONFIG=json.dumps(task)),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    wait_all(processes, timeout=300)
    logs = [(tmp_path / f"{index}.log").read_text() for index in range(2)]
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log[-4000:]
    assert "MultiWorkerMirroredStrategy: 2 workers, 2 replicas" in logs[0]
    training = json.loads((tmp_path / "workers" / "config.json").read_text())["training"]
    assert training["num_workers"] == 2 and training["global_batch_size"] == 2
    assert len(history(tmp_path / "workers")) == 1
