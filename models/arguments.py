"""Argument checks shared by the model builders of the zoo.

Every check raises `ValueError("... Received: name=value")`, so a wrong
argument is reported with the value that was passed.
"""

import numbers


def is_positive_int(value):
    """True for an integral number >= 1 (and not a bool)."""
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= 1


def check_positive_int(argument, value):
    """Raises `ValueError` unless `value` is an integer >= 1."""
    if not is_positive_int(value):
        raise ValueError(f"`{argument}` must be a positive integer. Received: {argument}={value!r}")


def check_bool(argument, value):
    """Raises `ValueError` unless `value` is `True` or `False`."""
    if not isinstance(value, bool):
        raise ValueError(f"`{argument}` must be True or False. Received: {argument}={value!r}")


def check_choice(argument, value, choices):
    """Raises `ValueError` unless `value` is one of `choices`."""
    if isinstance(value, bool) or value not in choices:
        raise ValueError(
            f"`{argument}` must be one of {list(choices)}. Received: {argument}={value!r}"
        )


def check_input_shape(input_shape):
    """Returns `input_shape` as a tuple `(height, width, channels)` or raises `ValueError`.

    Height and width are `None` (any size) or positive ints; channels a positive int.
    """
    valid = isinstance(input_shape, (tuple, list)) and len(input_shape) == 3
    if valid:
        height, width, channels = input_shape
        for size in (height, width):
            valid = valid and (size is None or is_positive_int(size))
        valid = valid and is_positive_int(channels)
    if not valid:
        raise ValueError(
            "`input_shape` must be `(height, width, channels)` with height and width "
            "None or positive ints and channels a positive int, e.g. (None, None, 3). "
            f"Received: input_shape={input_shape!r}"
        )
    return tuple(None if size is None else int(size) for size in input_shape)


def channel_statistics(argument, value, channels, default):
    """Returns `value` (None, a number or a sequence) as a list of `channels` floats.

    Args:
        argument: str, the argument's name for error messages (`"mean"`, `"std"`).
        value: `None` (use `default`), a number (the same for every channel) or a
            sequence of `channels` numbers.
        channels: int, number of input channels.
        default: list of `channels` floats used when `value` is `None`.

    Returns:
        list of `channels` floats.
    """
    if value is None:
        value = default
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return [float(value)] * channels
    if (
        isinstance(value, (tuple, list))
        and len(value) == channels
        and all(isinstance(item, numbers.Real) and not isinstance(item, bool) for item in value)
    ):
        return [float(item) for item in value]
    raise ValueError(
        f"`{argument}` must be a number or a sequence of {channels} numbers (one per "
        f"input channel). Received: {argument}={value!r}"
    )


def check_options(model_name, options, valid_options):
    """Raises `ValueError` naming the options of `options` not in `valid_options`."""
    unknown = sorted(set(options) - set(valid_options))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for model '{model_name}'; valid options are "
            f"{list(valid_options)}. Received: options={options}"
        )


def check_dropout(value):
    """Returns `value` as a float, or raises `ValueError` unless it is a rate in [0, 1)."""
    valid = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= value < 1
    if not valid:
        raise ValueError(f"`dropout` must be a number in [0, 1). Received: dropout={value!r}")
    return float(value)
