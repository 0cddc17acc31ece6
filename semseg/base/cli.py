"""The plumbing every command shares.

Command-line tools build their parser with `command_parser`, which keeps the
docstring's examples as written, shows every flag's default in `--help` and adds
`-v/--verbose`, and run their `main` through `run_command`, which prints an
`InputError` on one line with a non-zero exit status instead of a traceback, so
every message must say which file (or flag) is wrong and what was expected.

Example (a command-line tool):

    def parse_args(argv=None):
        parser = command_parser(__doc__)
        parser.add_argument("--work_dir", help="work dir written by train.py")
        return parser.parse_args(argv)

    if __name__ == "__main__":
        run_command(main, parse_args)
"""

import argparse
import copy
import logging
import os
import sys

from semseg.base.errors import InputError

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """`--help` with the description as written (examples keep their `\\` lines) and
    `(default: ...)` after every flag that has a default other than None or False."""

    def _format_action(self, action):
        default = _default_text(action)
        if default is not None and "%(default)" not in (action.help or ""):
            action = copy.copy(action)
            action.help = f"{action.help} ({default})" if action.help else default
        return super()._format_action(action)


def _default_text(action):
    default = action.default
    if (
        not action.option_strings
        or default is None
        or default is False
        or default is argparse.SUPPRESS
    ):
        return None
    if isinstance(default, (list, tuple)):
        default = " ".join(str(value) for value in default)
    return f"default: {str(default).replace('%', '%%')}"


def command_parser(description):
    """An `argparse.ArgumentParser` with `HelpFormatter` and `-v/--verbose`."""
    parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show TensorFlow's start-up lines and debug messages",
    )
    return parser


def add_run_arguments(parser, exported_model=False):
    """`--work_dir` and `--checkpoint`, the run every command after train.py reads, and
    `--weights NAME`, a published model used instead of a run; with `exported_model`,
    also `--model`, an exported model used instead of a run."""
    latest = "the latest finished run under runs/"
    parser.add_argument(
        "--work_dir",
        help="work dir written by train.py (default"
        + (" without --model: " if exported_model else ": ")
        + f"{latest})",
    )
    parser.add_argument(
        "--weights",
        metavar="NAME",
        help="a published Cityscapes model instead of --work_dir, e.g. pidnet_s_cityscapes "
        "(python convert_weights.py --list): downloaded and converted once into $SEMSEG_CACHE",
    )
    if exported_model:
        parser.add_argument("--model", help="an exported model (instead of --work_dir)")
    parser.add_argument(
        "--checkpoint",
        default="best",
        help=("with --work_dir: " if exported_model else "") + "best, last, or a .keras file",
    )


def run_command(main, parse_args, log_level=logging.INFO):
    """Runs `main(parse_args())`; an `InputError` exits with status 1 and `error: <message>`.

    The command line is parsed, and checked, before `main` imports TensorFlow.
    `-v/--verbose` (removed from the arguments `main` sees) lets TensorFlow print
    its C++ start-up lines and sets the log level to DEBUG.

    Args:
        main: the command's function, called with the parsed arguments.
        parse_args: returns the parsed command line.
        log_level: level of the root logger (messages as `LEVEL name: text` on
            stderr), or `None` to leave logging as it is (benchmarks printing JSON).
    """
    try:
        args = parse_args()
        if vars(args).pop("verbose", False):
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
            log_level = logging.DEBUG
        if log_level is not None:
            logging.basicConfig(level=log_level, format=LOG_FORMAT)
            if log_level > logging.DEBUG:
                # TFDS's and TensorFlow's own INFO lines ("Constructing tf.data.Dataset ...").
                logging.getLogger("absl").setLevel(max(log_level, logging.WARNING))
        main(args)
    except InputError as error:
        sys.exit(f"error: {error}")
    except OSError as error:
        # A file-system refusal (no space left, permission, a file where a folder goes):
        # the path and the system's reason are the whole story.
        where = f"{error.filename}: " if error.filename else ""
        sys.exit(f"error: {where}{error.strerror or error}")
