"""The configs of the `full_semantic` builder: one per source, and any other given as JSON
(`tfds build full_semantic --config '{"name": ..., "source": ..., ...}'`).

`SOURCES` lists every source by name, as its module declares it
(`full_semantic.source.Source`); `FullSemanticConfig` checks a config's fields before
anything is written.
"""

import dataclasses
import re

import tensorflow_datasets as tfds

from full_semantic import (
    cityscapes,
    cvat,
    cvat_xml,
    folder,
    rgb_gt,
    satellite,
    utokyo,
)
from full_semantic.source import Source
from semseg.base.errors import InputError

# `tfds build` without `--config`: the source detected from the manual dir's contents.
AUTO = "auto"


# Every source by name, as its module declares it (`full_semantic.source.Source`).
SOURCES = {
    source.name: source
    for source in (
        cvat.SOURCE,
        cityscapes.SOURCE,
        utokyo.SOURCE,
        satellite.SOURCE,
        folder.SOURCE,
        rgb_gt.SOURCE,
        cvat_xml.SOURCE,
        Source(
            name=AUTO,
            open=None,
            manual_dir="a dataset folder or .zip of any source (put it in "
            "~/tensorflow_datasets/downloads/manual/ or pass --manual_dir)",
            homepage="https://www.tensorflow.org/datasets/add_dataset",
        ),
    )
}


# The fields a JSON `--config` may set.
JSON_FIELDS = (
    "name",
    "source",
    "void_labels",
    "channels",
    "class_set",
    "blank_missing_masks",
    "group_by",
    "val_groups",
    "description",
)


# A config name is a folder name under the data dir: nothing that climbs out of it.
CONFIG_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


@dataclasses.dataclass(eq=False)
class FullSemanticConfig(tfds.core.BuilderConfig):
    """A `full_semantic` variant: which reader to use, with which options.

    Custom variants come from JSON on the command line, e.g.
    `--config '{"name": "camvid", "source": "cvat", "void_labels": ["background"]}'`.

    Attributes:
        source: str, a key of `SOURCES` (e.g. `"cvat"`).
        void_labels: tuple of str, class names mapped to `IGNORE_INDEX` (255) and
            dropped from the class list; the remaining ids are renumbered 0..K-1
            in the order of the source's class list. A JSON list is accepted.
        channels: int, channels of the `image` feature, one of
            `SOURCES[source].channels`: 3 everywhere; `utokyo` also 1 (thermal)
            and 4 (RGB + thermal), `folder` also 1 and 4.
        class_set: str, the classes of a source that has several sets
            (`SOURCES[source].class_sets`): `cityscapes` takes `"train_ids"` (19 classes,
            the default) or `"categories"` (8). Empty for the default.
        blank_missing_masks: bool, `cvat` only: build a listed image that has no
            mask with an all-background mask instead of failing.
        group_by: str, a regex finding an example's sequence in its name (its first
            group, or the whole match), e.g. `"^(.*?)[_\\-. ]*f?\\d+$"` (the name
            without its frame number): train and val are pooled and split again with
            every sequence on one side (`split_leakage.regroup_splits`). Empty: the
            splits as the source gives them.
        val_groups: tuple of str, with `group_by`: the sequences that make val
            (default: chosen by a fixed order until val holds its former share).
    """

    source: str = "cvat"
    void_labels: tuple[str, ...] = ()
    channels: int = 3
    class_set: str = ""
    blank_missing_masks: bool = False
    group_by: str = ""
    val_groups: tuple[str, ...] = ()

    def __post_init__(self):
        where = f"--config {self.name!r}"
        # The name becomes a folder under --data_dir: a plain name only.
        if not isinstance(self.name, str) or not CONFIG_NAME.fullmatch(self.name):
            raise InputError(
                f"{where}: a config name is letters, digits, '_', '-' and '.' (not first), "
                "e.g. camvid or my_task-2"
            )
        if self.source not in SOURCES:
            raise InputError(
                f"{where}: unknown source {self.source!r}; expected one of {sorted(SOURCES)}."
            )
        void_labels = self.void_labels
        if not isinstance(void_labels, (list, tuple)) or not all(
            isinstance(name, str) for name in void_labels
        ):
            raise InputError(
                f"{where}: void_labels must be a list of class names, "
                f'e.g. ["background"]. Received: void_labels={void_labels!r}'
            )
        self.void_labels = tuple(void_labels)
        allowed_channels = SOURCES[self.source].channels
        if isinstance(self.channels, bool) or self.channels not in allowed_channels:
            raise InputError(
                f"{where}: source {self.source!r} gives images with "
                f"{' or '.join(str(count) for count in allowed_channels)} channel(s). "
                f"Received: channels={self.channels!r}"
            )
        class_sets = SOURCES[self.source].class_sets
        if class_sets:
            self.class_set = self.class_set or class_sets[0]
        if self.class_set and self.class_set not in class_sets:
            expected = f"one of {list(class_sets)}" if class_sets else "none (leave it out)"
            raise InputError(
                f"{where}: class_set {self.class_set!r} is not a class set of source "
                f"{self.source!r}; expected {expected}."
            )
        if not isinstance(self.blank_missing_masks, bool):
            raise InputError(
                f"{where}: blank_missing_masks must be true or false. "
                f"Received: {self.blank_missing_masks!r}"
            )
        if not isinstance(self.group_by, str):
            raise InputError(
                f"{where}: group_by must be a regex string. Received: {self.group_by!r}"
            )
        try:
            re.compile(self.group_by)
        except re.error as error:
            raise InputError(
                f"{where}: group_by {self.group_by!r} is not a regex ({error})"
            ) from None
        if not isinstance(self.val_groups, (list, tuple)) or not all(
            isinstance(name, str) for name in self.val_groups
        ):
            raise InputError(
                f"{where}: val_groups must be a list of sequence names. "
                f"Received: {self.val_groups!r}"
            )
        self.val_groups = tuple(self.val_groups)
        if self.val_groups and not self.group_by:
            raise InputError(f"{where}: val_groups needs group_by (how names give sequences)")
        if self.blank_missing_masks and self.source != "cvat":
            raise InputError(
                f"{where}: blank_missing_masks applies to source 'cvat' only. "
                f"Received: source={self.source!r}"
            )


# `tfds build` without `--config`: detect the source.
AUTO_CONFIG = FullSemanticConfig(
    name=AUTO,
    source=AUTO,
    description="The source detected from --manual_dir's contents (full_semantic/detect.py), "
    "e.g. the original rgb/ + gt/ layout in full_semantic.zip.",
)


def config_from_json_fields(**fields):
    """`FullSemanticConfig(**fields)`, with an `InputError` for a misspelled field.

    `tfds build --config '{...}'` calls `Builder.builder_config_cls(**fields)`;
    the dataclass constructor alone would end a typo in a `TypeError` traceback.
    """
    unknown = sorted(set(fields) - set(JSON_FIELDS))
    if unknown:
        raise InputError(
            f"--config: unknown field(s) {unknown}; expected some of {list(JSON_FIELDS)}."
        )
    for field in ("name", "source", "class_set", "description"):
        if field in fields and not isinstance(fields[field], str):
            raise InputError(
                f"--config: {field} must be a string. Received: {field}={fields[field]!r}"
            )
    return FullSemanticConfig(**fields)
