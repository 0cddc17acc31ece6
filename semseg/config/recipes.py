"""Recipes: `train.py --recipe FILE.json`, a JSON object of `RunConfig` fields (train.py's
flags without `--`), e.g. `{"model": "ddrnet23_slim", "image_size": [360, 480]}`. Flags
given on the command line override it; every value is checked against its field's type.
"""

import dataclasses
import json
import types
from pathlib import Path

from semseg.base.errors import InputError
from semseg.config.run_config import RunConfig


def _describe_type(annotation):
    if isinstance(annotation, types.UnionType):
        names = [_describe_type(arg) for arg in annotation.__args__ if arg is not type(None)]
        return " or ".join(names) + " or null"
    if getattr(annotation, "__origin__", None) is tuple:
        plural = {int: "integers", float: "numbers", str: "strings"}[annotation.__args__[0]]
        return f"a list of {len(annotation.__args__)} {plural}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[
        annotation
    ]


def _has_type(value, annotation):
    if isinstance(annotation, types.UnionType):
        return any(_has_type(value, arg) for arg in annotation.__args__)
    if annotation is type(None):
        return value is None
    if getattr(annotation, "__origin__", None) is tuple:
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(annotation.__args__)
            and all(_has_type(item, arg) for item, arg in zip(value, annotation.__args__))
        )
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, annotation)


def load_recipe(path):
    """Reads a recipe: a JSON object whose keys are `RunConfig` fields (train.py's flags).

    Args:
        path: the recipe file.

    Returns:
        dict of field values, type-checked (not yet validated together).

    Raises:
        InputError: naming the file, for a missing or malformed file, an unknown
            key or a value of the wrong type.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: recipe not found")
    try:
        values = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a JSON recipe ({error})") from error
    if not isinstance(values, dict):
        raise InputError(f"{path}: a recipe is a JSON object of train.py flags without --")
    fields = {
        field.name: field for field in dataclasses.fields(RunConfig) if field.name != "recipe"
    }
    for key, value in values.items():
        if key not in fields:
            raise InputError(
                f"{path}: unknown key {key!r}; recipe keys are train.py flags without --: "
                f"{', '.join(fields)}"
            )
        annotation = fields[key].type
        if not _has_type(value, annotation):
            raise InputError(
                f"{path}: {key} must be {_describe_type(annotation)}. Received: {value!r}"
            )
    return values


def apply_recipe(flags, given):
    """Merges `flags["recipe"]` (when set) under the flags given on the command line.

    Args:
        flags: dict of every `RunConfig` field from the command line, defaults included.
        given: names of the flags actually given on the command line.

    Returns:
        dict of every field: a given flag, else the recipe's value, else the default.

    Raises:
        InputError: for a bad recipe.
    """
    values = dict(flags)
    if values.get("recipe"):
        for key, value in load_recipe(values["recipe"]).items():
            if key not in given:
                values[key] = value
    return values
