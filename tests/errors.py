"""What the tests expect of refused input: an `InputError` and its message."""

import pytest

from semseg.base.errors import InputError


def input_error(call):
    """The message of the `InputError` that `call()` raises; fails the test when it raises
    none."""
    with pytest.raises(InputError) as error:
        call()
    return str(error.value)


def assert_one_line_error(result, *fragments):
    """Fails the test unless the finished command `result` failed with no traceback and
    its last line is `error: ...` holding every fragment; returns that line."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in last_line, last_line
    return last_line
