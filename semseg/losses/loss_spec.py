"""The `train.py --loss` spec: a comma-separated sum of `NAME[(OPTION=VALUE,...)][:WEIGHT]`.

Parsed without TensorFlow, so that `train.py` checks its flags before importing it;
`semseg.losses.losses.build_loss` turns the terms into Keras losses.

Example:

    parse_loss_spec("ohem(thresh=0.9):1.0,dice:0.5")
    # [LossTerm("ohem", 1.0, (("thresh", 0.9),)), LossTerm("dice", 0.5, ())]
"""

import dataclasses
import math
import re

from semseg.base.errors import InputError

# Options a spec may give each loss (constructor arguments) and their types.
LOSS_OPTIONS = {
    "ce": {},
    "focal": {"gamma": float, "alpha": float},
    "ohem": {"thresh": float, "min_kept": int},
    "lovasz": {"per_image": bool},
    "dice": {"smooth": float},
    "bce": {},
    "binary_focal": {"gamma": float, "alpha": float},
    "lovasz_hinge": {"per_image": bool},
}
BINARY_ONLY = ("bce", "binary_focal", "lovasz_hinge")
# What a multi-class name means for a model with one logit channel.
BINARY_EQUIVALENTS = {
    "ce": "bce",
    "focal": "binary_focal",
    "lovasz": "lovasz_hinge",
    "dice": "dice",
    "bce": "bce",
    "binary_focal": "binary_focal",
    "lovasz_hinge": "lovasz_hinge",
}
CLASS_WEIGHTED = ("ce", "ohem")

_TERM = re.compile(
    r"^(?P<name>[a-z_]+)\s*(?:\((?P<options>[^()]*)\))?\s*(?::\s*(?P<weight>[^:]+))?$"
)


@dataclasses.dataclass(frozen=True)
class LossTerm:
    """One term of a loss spec: `weight * semseg.losses.losses.LOSSES[name](**options)`."""

    name: str
    weight: float = 1.0
    options: tuple = ()


def _spec_error(spec, problem):
    return InputError(
        f"--loss: {problem}. Expected comma-separated NAME[(OPTION=VALUE,...)][:WEIGHT] "
        f"terms with NAME one of {', '.join(LOSS_OPTIONS)}, e.g. 'ce:1.0,lovasz:0.5'. "
        f"Received: loss={spec!r}"
    )


def _split_terms(spec):
    """Splits on the commas outside parentheses."""
    terms, depth, current = [], 0, ""
    for char in spec:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return None
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        return None
    return [*terms, current]


def _parse_value(spec, name, option, kind, text):
    text = text.strip()
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
        if kind is int:
            if value != int(value):
                raise ValueError(text)
            return int(value)
        return value
    except ValueError:
        raise _spec_error(
            spec, f"option {option} of {name} must be {kind.__name__}, not {text!r}"
        ) from None


def parse_loss_spec(spec):
    """Parses a `--loss` spec string into its terms.

    Args:
        spec: str, e.g. `"ce"`, `"ce:1.0,lovasz:0.5"` or
            `"ohem(thresh=0.9,min_kept=50000),dice:0.5"`.

    Returns:
        list of `LossTerm`.

    Raises:
        InputError: naming `--loss`, for an unknown loss or option, a bad value
            or weight, or a malformed spec.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise _spec_error(spec, "empty loss spec")
    parts = _split_terms(spec)
    if parts is None:
        raise _spec_error(spec, "unbalanced parentheses")
    terms = []
    for part in parts:
        match = _TERM.match(part.strip())
        if not match:
            raise _spec_error(spec, f"cannot read the term {part.strip()!r}")
        name = match["name"]
        if name not in LOSS_OPTIONS:
            raise _spec_error(spec, f"unknown loss {name!r}")
        weight = 1.0
        if match["weight"] is not None:
            try:
                weight = float(match["weight"])
            except ValueError:
                weight = math.nan
            if not math.isfinite(weight) or weight <= 0:
                raise _spec_error(spec, f"the weight of {name} must be a positive number")
        options = {}
        if match["options"] is not None and match["options"].strip():
            for item in match["options"].split(","):
                option, equals, text = item.partition("=")
                option = option.strip()
                if not equals or option not in LOSS_OPTIONS[name]:
                    valid = ", ".join(LOSS_OPTIONS[name]) or "none"
                    raise _spec_error(
                        spec, f"unknown option {item.strip()!r} for {name} (options: {valid})"
                    )
                kind = LOSS_OPTIONS[name][option]
                options[option] = _parse_value(spec, name, option, kind, text)
        terms.append(LossTerm(name, weight, tuple(sorted(options.items()))))
    return terms


def is_binary_spec(spec):
    """True when the spec names a binary-only loss (`bce`, `binary_focal`, `lovasz_hinge`)."""
    return any(term.name in BINARY_ONLY for term in parse_loss_spec(spec))


def uses_class_weights(spec):
    """True when a term of the spec takes class weights (`ce`, `ohem`)."""
    return any(term.name in CLASS_WEIGHTED for term in parse_loss_spec(spec))
