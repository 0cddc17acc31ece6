"""Temporary folders that the next run can tell from a live one (`semseg.base.files`)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from semseg.base import files
from semseg.base.errors import InputError

PROJECT_ROOT = str(Path(__file__).resolve().parents[3])
OWNER = textwrap.dedent(
    """
    import sys, time
    from semseg.base import files
    with files.owned_temp_dir(sys.argv[1], prefix="job_") as folder:
        (folder / "half-written").write_text("x")
        print(folder, flush=True)
        time.sleep(600)
    """
)


def start_owner(parent):
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(parent)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    folder = owner.stdout.readline().strip()
    assert folder, "the owner process did not start"
    return owner, folder


def age(path, seconds=3600):
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_remove_abandoned_takes_only_folders_whose_owner_is_gone(tmp_path):
    live, live_folder = start_owner(tmp_path)
    killed, killed_folder = start_owner(tmp_path)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        (tmp_path / "job_young").mkdir()  # an owner may not have locked it yet
        (tmp_path / "other").mkdir()
        for folder in (live_folder, killed_folder, tmp_path / "other"):
            age(folder)

        removed = files.remove_abandoned(tmp_path, "job_*")

        assert [str(path) for path in removed] == [killed_folder]
        assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
            [os.path.basename(live_folder), "job_young", "other"]
        )
    finally:
        live.kill()
        live.wait(timeout=30)
    # Once its owner is gone, the last one goes too.
    age(live_folder)
    assert [str(path) for path in files.remove_abandoned(tmp_path, "job_*")] == [live_folder]


def test_owned_temp_dir_is_removed_after_the_block_even_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with files.owned_temp_dir(tmp_path, prefix="job_") as folder:
            (folder / "part").write_text("x")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_locked_refuses_a_second_holder_until_the_first_lets_go(tmp_path):
    with files.locked(tmp_path, "busy: another build"):
        with pytest.raises(InputError, match="busy: another build"):
            with files.locked(tmp_path, "busy: another build"):
                pass
    with files.locked(tmp_path, "busy: another build"):
        pass
