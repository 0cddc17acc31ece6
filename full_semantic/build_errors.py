"""How `tfds build full_semantic` ends on a mistake: one `error:` line, exit status 1, and
nothing it created left behind.

TFDS's command line would print a traceback for any exception; the hook installed by
the builder's module (`install_input_error_hook`) prints an `InputError` (also one
raised on a Beam worker and wrapped by the runner), a malformed `--config` JSON and an
environment error (a full disk, a missing permission) as one line instead, and removes
the `--data_dir` the failed build created.
"""

import json
import os
import re
import sys

from etils import epath

from semseg.base.errors import InputError

# How an InputError raised on a Beam worker reads in the error the pipeline raises:
# in one process, the InputError itself with ` [while running 'STEP']` appended; with
# several, a RuntimeError holding the worker's traceback as text.
_BEAM_INPUT_ERROR = re.compile(r"(?:^|[\s.])InputError: (?P<message>[^\n]*)$", re.MULTILINE)


_BEAM_STEP = re.compile(r"( \[while running '[^']*'\])+$")


def worker_input_error(error):
    """The `InputError` a Beam worker raised, as its own one-line message, from the
    error of the pipeline; None when there is none in it."""
    found = find_input_error(error)
    if found is not None:
        message = str(found)
    else:
        matches = list(_BEAM_INPUT_ERROR.finditer(str(error)))
        if not matches:
            return None
        message = matches[-1].group("message")
    return InputError(_BEAM_STEP.sub("", message.strip()))


def find_input_error(error):
    """The `InputError` in `error` or in the exceptions it was raised from, if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, InputError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def flag_value(argv, flag):
    """The value of `flag` (`--flag VALUE` or `--flag=VALUE`) on a command line, or `None`."""
    for index, argument in enumerate(argv):
        if argument.startswith(f"{flag}="):
            return argument.partition("=")[2]
        if argument == flag and index + 1 < len(argv):
            return argv[index + 1]
    return None


def json_config_given(argv):
    """Whether the command line has `--config {...}` (or `--config={...}`)."""
    value = flag_value(argv, "--config")
    return value is not None and value.lstrip().startswith("{")


def environment_error(exception, config_names=()):
    """An `InputError` for the mistakes TFDS's own code meets before ours runs: an unknown
    `--config` name (`config_names` are the known ones), and a `--data_dir` (or other
    path) that is a file, unwritable or full. None for anything else."""
    if isinstance(exception, ValueError) and re.match(
        r"BuilderConfig (.+) not found", str(exception)
    ):
        name = re.match(r"BuilderConfig (.+?) not found", str(exception)).group(1)
        known = ", ".join(config_names)
        return InputError(
            f"--config {name}: full_semantic has no such config; configs: {known}, or a JSON "
            'object such as \'{"name": "mydata", "source": "cvat"}\''
        )
    if isinstance(exception, OSError) and exception.filename:
        path = epath.Path(exception.filename)
        blocking = next((parent for parent in path.parents if parent.is_file()), None)
        if isinstance(exception, NotADirectoryError) and blocking is not None:
            return InputError(f"{path}: {blocking} is a file, not a folder")
        return InputError(f"{path}: {exception.strerror or exception}")
    return None


def first_new_folder(path):
    """The outermost folder of `path` that does not exist yet (what a build would create),
    or `None` when `path` exists."""
    path = os.path.abspath(path)
    new = None
    while not os.path.exists(path):
        new = path
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return new


def remove_empty_tree(root):
    """Removes `root` and its sub-folders if none of them holds a file."""
    if not root or not os.path.isdir(root):
        return
    for directory, _, file_names in os.walk(root, topdown=False):
        if file_names:
            return
        try:
            os.rmdir(directory)
        except OSError:
            return


def install_input_error_hook(config_names=()):
    """Makes an uncaught `InputError` print `error: <message>` on one line, exit status 1.

    `config_names`: the builder's configs, listed when `--config` names another.

    `tfds build` has no handler of its own, so a user mistake in the export would
    end in a traceback. Every other exception goes to the previous hook. It is installed
    when this module is imported because `tfds build` gives a builder no other moment
    before its own code runs (it parses `--config` and reads `--data_dir` first); from
    Python, nothing changes but how an uncaught `InputError` prints.
    """
    previous_hook = sys.excepthook
    if getattr(previous_hook, "handles_input_error", False):
        return
    # A failed build leaves no empty --data_dir behind (only folders it made, only empty).
    data_dir = flag_value(sys.argv, "--data_dir")
    created_by_build = first_new_folder(data_dir) if data_dir else None

    def input_error_hook(exception_type, exception, traceback):
        input_error = find_input_error(exception)
        if (
            input_error is None
            and isinstance(exception, json.JSONDecodeError)
            and json_config_given(sys.argv)
        ):
            # `tfds build --config '{...'` parses the JSON itself, before our code runs.
            input_error = InputError(
                f"--config is not valid JSON ({exception}); e.g. --config "
                '\'{"name": "mydata", "source": "cvat", "void_labels": ["background"]}\''
            )
        if input_error is None:
            input_error = environment_error(exception, config_names)
        if input_error is None:
            previous_hook(exception_type, exception, traceback)
            return
        message = " ".join(str(input_error).splitlines())
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()
        remove_empty_tree(created_by_build)

    input_error_hook.handles_input_error = True
    sys.excepthook = input_error_hook
