"""Test hook: SIGKILLs this process right after its N-th `os.replace` (`KILL_AFTER_REPLACE=N`).

Every file the toolkit commits (config, checkpoints, best.json, the backup's weights
and state) goes through `os.replace`, so killing after each one in turn visits every
on-disk state a real kill can leave. Put this folder first on `PYTHONPATH`.
"""

import os
import signal

_limit = int(os.environ.get("KILL_AFTER_REPLACE", "0"))
if _limit:
    _replace = os.replace
    _count = 0

    def _replace_then_maybe_die(*args, **kwargs):
        global _count
        _replace(*args, **kwargs)
        _count += 1
        if _count == _limit:
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = _replace_then_maybe_die
