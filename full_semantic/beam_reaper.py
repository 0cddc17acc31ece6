"""Stops a local Beam build's worker processes when the build dies, however it dies.

The DirectRunner's `multi_processing` workers are `sdk_worker_main` processes the
build starts; a build killed with SIGKILL cannot stop them, and they stay (about 180 MB
each, parent pid 1). `beam_build.local_workers` marks them with an environment
variable (`MARKER`, whose value is the build's private temporary folder) and starts
this file as a script beside the build, in its own session: it waits for its parent
(the build) to go, then kills every process carrying the mark and removes the folder.
When the build ends normally it stops this watcher first.

Standard library only, run as a script: it must start in milliseconds and hold a few
MB, not import TensorFlow. Linux (`/proc`); elsewhere it only removes the folder.

Usage (by `full_semantic.beam_build`):

    python full_semantic/beam_reaper.py BUILD_PID PRIVATE_TMP_DIR
"""

import os
import shutil
import signal
import sys
import time

MARKER = "FULL_SEMANTIC_BEAM_BUILD"
POLL_SECONDS = 0.25


def marked_processes(value):
    """Pids of this user's processes whose environment has `MARKER=value` (Linux)."""
    wanted = f"{MARKER}={value}".encode()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environment = handle.read().split(b"\0")
        except OSError:  # gone, or another user's
            continue
        if wanted in environment:
            found.append(int(entry))
    return found


def kill_marked(value):
    """SIGKILLs the processes marked with `value`; returns how many there were."""
    pids = marked_processes(value)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return len(pids)


def main(build_pid, folder):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the build, which says why
    while os.getppid() == build_pid:
        time.sleep(POLL_SECONDS)
    kill_marked(folder)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
