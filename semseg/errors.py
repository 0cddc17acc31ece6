"""The one exception type for mistakes in user input, and how a command reports it.

Command-line tools run their `main` through `run_command`, which prints an
`InputError` on one line with a non-zero exit status instead of a traceback, so
every message must say which file (or flag) is wrong and what was expected.

Example (the end of every command-line tool):

    if __name__ == "__main__":
        run_command(main, parse_args)
"""

import logging
import sys

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class InputError(ValueError):
    """Bad user input: a malformed file, a missing path or an invalid flag value."""


def run_command(main, parse_args, log_level=logging.INFO):
    """Runs `main(parse_args())`; an `InputError` exits with status 1 and `error: <message>`.

    Args:
        main: the command's function, called with the parsed arguments.
        parse_args: returns the parsed command line.
        log_level: level of the root logger (messages as `LEVEL name: text` on
            stderr), or `None` to leave logging as it is (benchmarks printing JSON).
    """
    if log_level is not None:
        logging.basicConfig(level=log_level, format=LOG_FORMAT)
    try:
        main(parse_args())
    except InputError as error:
        sys.exit(f"error: {error}")
