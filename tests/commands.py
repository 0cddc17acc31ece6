"""Running the project's command lines in tests.

from commands import python, run
result = run(sys.executable, "predict.py", "--input", image)            # any exit status
run(sys.executable, "train.py", "--epochs", "1", check=True)            # must succeed
python("eval.py", "--work_dir", work_dir, check=True)                   # the same, shorter
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*command, check=False, timeout=900):
    """Runs a command in the project root, TensorFlow's C++ logs quiet and no GPU.

    Args:
        command: the program and its arguments (paths are turned into strings).
        check: fail the test, with the command's output, unless it exits with 0.
        timeout: seconds.

    Returns:
        The `subprocess.CompletedProcess` (text stdout and stderr).
    """
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [str(part) for part in command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed:\n{result.stdout}\n{result.stderr[-4000:]}")
    return result


def python(*arguments, check=False, timeout=900):
    """`run` of the project's Python: `python("eval.py", "--work_dir", run_dir, check=True)`."""
    return run(sys.executable, *arguments, check=check, timeout=timeout)


def tfds_build(*arguments, check=False, timeout=900):
    """`tfds build full_semantic ARGUMENTS` from the project root, as a user types it:
    `tfds_build("--config", "cvat", "--manual_dir", export, "--data_dir", data_dir)`."""
    tfds = Path(sys.executable).parent / "tfds"
    return run(tfds, "build", "full_semantic", *arguments, check=check, timeout=timeout)


# One epoch of two batches of two 64x64 crops: a run that only has to exist.
TINY_RUN = (
    "--image_size",
    "64",
    "64",
    "--batch_size",
    "2",
    "--epochs",
    "1",
    "--steps_per_epoch",
    "2",
)


def train_tiny(dataset, data_dir, work_dir, *flags, check=True):
    """`train.py` of `TINY_RUN` on `dataset` into `work_dir`, with more `flags`."""
    return python(
        "train.py", "--dataset", dataset, "--data_dir", data_dir, "--work_dir", work_dir,
        *TINY_RUN, *flags, check=check,
    )  # fmt: skip


def evaluate(work_dir, *flags, check=False):
    """`eval.py` of the run in `work_dir` on its `val` split, with more `flags`."""
    return python("eval.py", "--work_dir", work_dir, "--split", "val", *flags, check=check)


def free_ports(count):
    """`count` TCP ports free on 127.0.0.1 now (for multi-worker clusters)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def wait_all(processes, timeout):
    """Waits for every `subprocess.Popen` (`timeout` seconds each), then kills any left."""
    try:
        for process in processes:
            process.wait(timeout=timeout)
    finally:
        for process in processes:
            process.kill()
