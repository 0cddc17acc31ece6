"""How much a validation split leaks from training: near-duplicate frames and shared sequences.

Frames of one video are near-duplicates of each other, so a split that puts frames of
the same sequence on both sides (CamVid's val: 101 frames of `0016E5`, whose other 204
frames are in train, interleaved) scores a model on images it has almost seen, and the
"best" checkpoint is picked on them. A CVAT task is usually frames of a few videos, so
a random train/val split of one has the same trap.

Measured at build time from the images written (`Builder` records the report in the
build's metadata; `train.py` copies it into `config.json`; `eval.py` prints it next to
the mIoU of that split):

*   each image becomes a thumbnail of its edges (grey at 128x96, gradient magnitude, 32x24,
    zero mean, unit norm): cheap, and less fooled than colours by every road scene having sky on
    top and road below;
*   a val image is a near-duplicate of train when its most similar train thumbnail is
    at least as similar as `train_percentile` % of train images are to their own most
    similar other train image (train's own frame-to-frame similarity, so it adapts to
    the frame rate), and at least `ABSOLUTE_FLOOR` (distinct scenes are never
    duplicates, however alike the scenes of a dataset are);
*   a val image shares a sequence with train when the name before its trailing frame
    number (`0016E5_07959` -> `0016E5`, `Seq05VD_f02370` -> `Seq05VD`) is a train
    image's too.

On the shared CamVid export as it is, 98% of val are near-duplicates of train; with
whole sequences on each side (val one sequence, train the two others), 5%, 0% and 21%
for the three choices of val sequence (0006R0, 0001TP, 0016E5).

Example:

    report = measure(train_thumbnails, val_thumbnails)   # {name: thumbnail}
    if report.leaks:
        logger.warning("%s", report.warning("camvid", "cvat"))
"""

import dataclasses
import hashlib
import io
import json
import re

import numpy as np
from PIL import Image

from semseg.base.errors import InputError

EDGE_SIZE = (128, 96)
THUMBNAIL_SIZE = (32, 24)
ABSOLUTE_FLOOR = 0.55
TRAIN_PERCENTILE = 10
# Val is "mostly" near-duplicates of train above this share.
WARN_SHARE = 0.5
# A name's sequence: what precedes its trailing frame number.
SEQUENCE_PATTERN = r"^(.*?)[_\-. ]*f?\d+$"
_SEQUENCE = re.compile(SEQUENCE_PATTERN)
_NAMES_SHOWN = 3


def thumbnail(image):
    """The edge thumbnail of an image: float32 `(768,)`, zero mean, unit norm.

    Args:
        image: encoded image bytes, a uint8 array `(H, W, C)` or `(H, W)`, or a PIL image.
    """
    if isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
        # A JPEG decodes at a fraction of its size, no smaller than EDGE_SIZE.
        image.draft("L", EDGE_SIZE)
    elif isinstance(image, np.ndarray):
        array = image[..., :3] if image.ndim == 3 and image.shape[-1] >= 3 else image
        image = Image.fromarray(array.squeeze() if array.ndim == 3 else array)
    # Edges (gradient magnitude) at one scale whatever the image size, then the thumbnail.
    grey = np.asarray(image.convert("L").resize(EDGE_SIZE, Image.BILINEAR), np.float32)
    edges = np.abs(np.diff(grey, axis=1))[:-1] + np.abs(np.diff(grey, axis=0))[:, :-1]
    small = Image.fromarray(edges, mode="F").resize(THUMBNAIL_SIZE, Image.BILINEAR)
    values = np.array(small, np.float32).ravel()
    values -= values.mean()
    return values / (np.linalg.norm(values) + 1e-6)


def sequence_of(name):
    """The sequence an image name belongs to (the name without its trailing frame
    number), or `None` for a name without one."""
    match = _SEQUENCE.fullmatch(str(name).rsplit("/", 1)[-1])
    return match.group(1) if match and match.group(1) else None


@dataclasses.dataclass
class LeakReport:
    """How much of a val split leaks from train.

    Attributes:
        val_images: int, images in val.
        train_images: int, images in train.
        near_duplicate_share: float, share of val images that are near-duplicates of a
            train image.
        threshold: float, the thumbnail similarity that counted as near-duplicate.
        shared_sequence_share: float, share of val images whose sequence (name prefix)
            also has images in train.
        shared_sequences: list of str, those sequences (the first few).
    """

    val_images: int
    train_images: int
    near_duplicate_share: float
    threshold: float
    shared_sequence_share: float
    shared_sequences: list

    @property
    def leaks(self):
        """Whether val is mostly near-duplicates of train."""
        return self.near_duplicate_share >= WARN_SHARE

    def summary(self):
        """One phrase: the figures."""
        text = (
            f"{self.near_duplicate_share:.0%} of the {self.val_images} val images are "
            f"near-duplicates of train images (edge-thumbnail similarity >= {self.threshold:.2f})"
        )
        if self.shared_sequences:
            text += (
                f", {self.shared_sequence_share:.0%} share a sequence with train "
                f"({', '.join(self.shared_sequences[:_NAMES_SHOWN])})"
            )
        return text

    def warning(self, config_name, source):
        """The one-line warning of a leaking split, with the command that fixes it."""
        fields = json.dumps(
            {"name": f"{config_name}_grouped", "source": source, "group_by": SEQUENCE_PATTERN}
        )
        return (
            f"val leaks from train: {self.summary()}; its mIoU will flatter the model. Put "
            f"whole sequences on one side: tfds build full_semantic --config '{fields}' "
            "--manual_dir ... (see full_semantic/README.md, Leak-free validation)"
        )

    def to_dict(self):
        return dataclasses.asdict(self)


def measure(train, val, train_percentile=TRAIN_PERCENTILE):
    """The `LeakReport` of a val split against a train split.

    Args:
        train: dict `{name: thumbnail}` of the train images.
        val: dict `{name: thumbnail}` of the val images.
        train_percentile: the percentile of train's own nearest-neighbour similarity
            that a val image must reach to count as a near-duplicate.

    Returns:
        `LeakReport`.
    """
    train_names, val_names = list(train), list(val)
    train_matrix = np.stack([train[name] for name in train_names])
    val_matrix = np.stack([val[name] for name in val_names])
    nearest_val = (val_matrix @ train_matrix.T).max(axis=1)
    within = train_matrix @ train_matrix.T
    np.fill_diagonal(within, -np.inf)
    nearest_train = within.max(axis=1) if len(train_names) > 1 else np.ones(1)
    threshold = max(float(np.percentile(nearest_train, train_percentile)), ABSOLUTE_FLOOR)
    train_sequences = {sequence_of(name) for name in train_names} - {None}
    shared = [sequence_of(name) in train_sequences for name in val_names]
    shared_sequences = sorted({sequence_of(name) for name, on in zip(val_names, shared) if on})
    return LeakReport(
        val_images=len(val_names),
        train_images=len(train_names),
        near_duplicate_share=round(float(np.mean(nearest_val >= threshold)), 4),
        threshold=round(threshold, 4),
        shared_sequence_share=round(float(np.mean(shared)), 4),
        shared_sequences=shared_sequences,
    )


def group_of(key, pattern):
    """The group (sequence) of an example key under a `group_by` regex: its first group,
    or the whole match when it has none; `None` when it does not match."""
    match = re.search(pattern, str(key))
    if match is None:
        return None
    return match.group(1) if match.re.groups else match.group(0)


def regroup_splits(source, pattern, val_groups=(), where="--config"):
    """Re-splits train and val by group, so that no sequence is on both sides.

    The examples of `train` and `val` (or `validation`) are pooled; each goes to the
    side of its group (`group_of(key, pattern)`). Val is `val_groups` when given,
    else whole groups in a fixed order (by the sha256 of their names, so a rebuild
    splits the same way) until val holds at least the share of the examples it held
    before (20% when the source had no val split). Other splits (`test`) are kept.

    Args:
        source: the source's dataset (`items`, `key`, `set_examples`, `split_names`).
        pattern: str, the `group_by` regex.
        val_groups: the groups to put in val; empty to choose them.
        where: names the config in messages.

    Returns:
        dict: `group_by`, `val` and `train` (the groups on each side).

    Raises:
        InputError: for a key the pattern does not match, an unknown `val_groups`
            name, or fewer than two groups.
    """
    val_name = next((name for name in ("val", "validation") if name in source.split_names), "val")
    before = {split: source.items(split) for split in source.split_names}
    pool = before.get("train", []) + before.get(val_name, [])
    groups = {}
    for item in pool:
        key = source.key(item)
        group = group_of(key, pattern)
        if not group:
            raise InputError(
                f"{where}: group_by {pattern!r} does not match example {key!r}; it must find "
                "the sequence in every train and val name"
            )
        groups.setdefault(group, []).append(item)
    if len(groups) < 2:
        raise InputError(
            f"{where}: group_by {pattern!r} finds one group ({next(iter(groups), '')!r}) in "
            f"{len(pool)} examples; whole groups cannot make both train and val"
        )
    if val_groups:
        unknown = sorted(set(val_groups) - set(groups))
        if unknown:
            raise InputError(
                f"{where}: val_groups {unknown} are not groups of group_by {pattern!r}; "
                f"groups: {sorted(groups)[:10]}"
            )
        chosen = [group for group in groups if group in set(val_groups)]
    else:
        share = len(before.get(val_name, [])) / len(pool) if before.get(val_name) else 0.2
        order = sorted(groups, key=lambda group: hashlib.sha256(group.encode()).hexdigest())
        chosen, count = [], 0
        for group in order[:-1]:  # train keeps at least one group
            if count >= share * len(pool):
                break
            chosen.append(group)
            count += len(groups[group])
    val_items = [item for group in groups if group in chosen for item in groups[group]]
    train_items = [item for group in groups if group not in chosen for item in groups[group]]
    examples = {"train": train_items, val_name: val_items}
    examples.update({split: items for split, items in before.items() if split not in examples})
    source.set_examples(examples)
    return {
        "group_by": pattern,
        "val": sorted(chosen),
        "train": sorted(group for group in groups if group not in chosen),
    }
