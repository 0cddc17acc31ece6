"""The one exception type for mistakes in user input.

Command-line tools catch `InputError` and print its message on one line with a
non-zero exit status instead of a traceback, so every message must say which
file (or flag) is wrong and what was expected.
"""


class InputError(ValueError):
    """Bad user input: a malformed file, a missing path or an invalid flag value."""
