"""The exception type for mistakes in user input.

Every message of an `InputError` says which file (or flag) is wrong and what was
expected: the commands print it on one line with exit status 1 instead of a traceback
(`semseg.base.cli.run_command`).
"""


class InputError(ValueError):
    """Bad user input: a malformed file, a missing path or an invalid flag value."""


class FlagError(InputError):
    """A flag value (or a combination of flags) that the command's config refuses, told
    before anything is read or run."""
