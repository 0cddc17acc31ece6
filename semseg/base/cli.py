"""The plumbing every command shares.

A command's flags are the fields of one dataclass: each field is declared with
`option` (its default, help and argparse settings) and `config_parser` turns the fields
into the parser, one flag each, so a flag is typed once and option groups shared by
several commands (`semseg.base.options`) are inherited, not retyped. The parser keeps the
docstring's examples as written, shows every flag's default in `--help` and adds
`-v/--verbose`. Commands run their `main` through `run_command`, which prints an
`InputError` on one line with a non-zero exit status instead of a traceback, so every
message must say which file (or flag) is wrong and what was expected.

Example (a command-line tool):

    @dataclasses.dataclass
    class ShowConfig(Command):
        work_dir: str | None = option(help="work dir written by train.py")
        count: int = option(8, "images to show", check=at_least(1))

    def parse_args(argv=None):
        return parse_config(ShowConfig, __doc__, argv)

    if __name__ == "__main__":
        run_command(main, parse_args)
"""

import argparse
import copy
import dataclasses
import logging
import os
import sys
import types

from semseg.base.errors import FlagError, InputError

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
    elif default is True:
        default = "yes"
    return f"default: {str(default).replace('%', '%%')}"


VERBOSE_HELP = "show TensorFlow's start-up lines and debug messages"
# The metavar of a size flag, a `tuple[int, int]` field.
HEIGHT_WIDTH = ("H", "W")
# Field metadata that `flag_options` passes to argparse as they are.
ARGPARSE_KEYS = ("choices", "metavar", "required", "type")


def option(default=None, help=None, *, check=None, group=None, **argparse_options):
    """A field of a command's config dataclass, and its flag.

    Args:
        default: the field's default and the flag's (a tuple for a list of values).
        help: the flag's help text.
        check: `value -> None` raising `InputError` for a bad value (`at_least`,
            `within`); `Command` runs it when the config is made, from flags or not.
        group: title of the `--help` section the flag is listed under.
        **argparse_options: `choices`, `metavar`, `required`, or a `type` that converts
            the flag's text (default: from the field's annotation).
    """
    metadata = {"help": help, "check": check, "group": group, **argparse_options}
    unknown = set(argparse_options) - set(ARGPARSE_KEYS)
    if unknown:
        raise TypeError(f"option() got unknown settings {sorted(unknown)}")
    return dataclasses.field(default=default, metadata=metadata)


def at_least(minimum):
    """A `check` for `option`: the value is `minimum` or more (None passes)."""

    def check(name, value):
        if value is not None and value < minimum:
            raise InputError(f"--{name} must be at least {minimum}. Received: {value}")

    return check


def size_at_least(minimum):
    """A `check` for `option`: both sides of an `(H, W)` size are `minimum` or more
    (None passes)."""

    def check(name, size):
        if size is not None and min(size) < minimum:
            raise InputError(
                f"--{name} must be at least {minimum} {minimum}. "
                f"Received: {' '.join(map(str, size))}"
            )

    return check


def within(low, high):
    """A `check` for `option`: `low <= value <= high` (None passes)."""

    def check(name, value):
        if value is not None and not low <= value <= high:
            raise InputError(f"--{name} must be in {low}..{high}. Received: {value}")

    return check


@dataclasses.dataclass
class Command:
    """Base of the commands' config dataclasses: when an instance is made, from flags or
    not, checks every field against its `choices` and `check`, then `check_together` (for
    rules about several flags)."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            choices = field.metadata.get("choices")
            if choices is not None:
                values = value if isinstance(value, tuple) else (value,)  # several values
                refused = [item for item in values if item is not None and item not in choices]
                if refused:
                    raise InputError(
                        f"--{field.name} must be one of {list(choices)}. Received: {refused[0]!r}"
                    )
            check = field.metadata.get("check")
            if check is not None:
                check(field.name, value)
        self.check_together()

    def check_together(self):
        """Raises `InputError` where flags that are each fine do not go together."""


def _value_type(annotation):
    """`int | None` -> `int`."""
    if isinstance(annotation, types.UnionType):
        return next(arg for arg in annotation.__args__ if arg is not type(None))
    return annotation


def flag_options(config_class):
    """The argparse options of a config dataclass's fields, in field order: a list of
    `(flag, --help section or None, keyword arguments)`.

    The type, `nargs` and action come from the annotation (`bool`: a switch, `--no-<name>`
    too for one that defaults to true; `tuple[int, int]`: a size, two ints shown as `H W`;
    `tuple[str, ...]`: one or more); help, choices, metavar, required and a converting type
    from the field's `option` metadata; the default from the field.
    """
    options = []
    for field in dataclasses.fields(config_class):
        keywords = {"help": field.metadata.get("help") or None}
        keywords.update(
            {key: field.metadata[key] for key in ARGPARSE_KEYS if key in field.metadata}
        )
        annotation = _value_type(field.type)
        if annotation is bool:
            keywords["action"] = argparse.BooleanOptionalAction if field.default else "store_true"
        elif getattr(annotation, "__origin__", None) is tuple:
            arguments = annotation.__args__
            many = len(arguments) == 2 and arguments[1] is Ellipsis
            keywords.setdefault("type", arguments[0])
            keywords["nargs"] = "+" if many else len(arguments)
            if arguments == (int, int):
                keywords.setdefault("metavar", HEIGHT_WIDTH)
        elif annotation is not str:
            keywords.setdefault("type", annotation)
        if not keywords.get("required"):
            keywords["default"] = field.default
        options.append((f"--{field.name}", field.metadata.get("group"), keywords))
    return options


def config_parser(description, config_class, prog=None):
    """The parser of a command: `-v/--verbose` and one flag per field of `config_class`;
    `prog` names the command in its usage line (default: the script's name)."""
    parser = _parser(description, prog)
    _add_flags(parser, config_class)
    return parser


def parse_config(config_class, description, argv=None, prog=None):
    """The command line as a `config_class` instance, with `verbose` set on it.

    Raises:
        FlagError: a value that a field's `check` (or `check_together`) refuses, an
            `InputError` that `run_command` prints on one line with exit status 1.
    """
    parser = config_parser(description, config_class, prog)
    return _make_config(config_class, vars(parser.parse_args(argv)))


def parse_subcommand(commands, description, argv=None):
    """For a tool of several commands (`report.py machine ...`): `commands` maps each
    name to its config dataclass, whose docstring's first line is the command's help.
    Returns the chosen command's config, with `command` (its name) and `verbose` set."""
    parser = _parser(description)
    chosen = parser.add_subparsers(dest="command", required=True)
    parsers = {}
    for name, config_class in commands.items():
        summary = (config_class.__doc__ or "").strip().splitlines()[0]
        parsers[name] = chosen.add_parser(name, help=summary, formatter_class=HelpFormatter)
        _add_flags(parsers[name], config_class)
    values = vars(parser.parse_args(argv))
    name = values.pop("command")
    config = _make_config(commands[name], values)
    config.command = name
    return config


def _parser(description, prog=None):
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=HelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    return parser


def _add_flags(parser, config_class):
    groups = {}
    for flag, group, keywords in flag_options(config_class):
        if group is not None and group not in groups:
            groups[group] = parser.add_argument_group(group)
        groups.get(group, parser).add_argument(flag, **keywords)


def _make_config(config_class, values):
    verbose = values.pop("verbose")
    for field in dataclasses.fields(config_class):
        # argparse gives a list for `nargs`; the field holds a tuple, as its default does.
        if isinstance(values.get(field.name), list):
            values[field.name] = tuple(values[field.name])
    try:
        config = config_class(**values)
    except InputError as error:
        raise FlagError(str(error)) from error
    config.verbose = verbose
    return config


def run_command(main, parse_args, log_level=logging.INFO):
    """Runs `main(parse_args())`; an `InputError` exits with status 1 and `error: <message>`.

    The command line is parsed, and checked, before `main` imports TensorFlow.
    `-v/--verbose` (an attribute of what `parse_args` returns) lets TensorFlow print
    its C++ start-up lines and sets the log level to DEBUG.

    Args:
        main: the command's function, called with the parsed arguments.
        parse_args: returns the parsed command line.
        log_level: level of the root logger (messages as `LEVEL name: text` on
            stderr), or `None` to leave logging as it is (benchmarks printing JSON).
    """
    try:
        args = parse_args()
        if getattr(args, "verbose", False):
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
