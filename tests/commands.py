"""Running the project's command lines in tests.

from commands import run
result = run(sys.executable, "predict.py", "--input", image)            # any exit status
run(sys.executable, "train.py", "--epochs", "1", check=True)            # must succeed
"""

import os
import subprocess
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
