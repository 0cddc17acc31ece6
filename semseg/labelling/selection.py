"""Which unlabelled images to label next (active learning), from a trained run.

Every pool image is segmented twice at the model's input size, as it is and mirrored,
and gets three numbers in 0..1:

*   `entropy`: the mean pixel entropy of the class probabilities (both views averaged),
    divided by `log(K)`: 1 where the model cannot tell the K classes apart.
*   `flip_disagreement`: the share of pixels whose class changes when the image is
    mirrored; a model that has learnt a scene does not care about left and right.
*   `rarity`: how much of the image the model gives to classes it rarely predicts in
    the pool: the pixel share of each class times `-log(pool share) / log(K)`, capped
    at 1. Images of rare classes teach the most per label.

`score = 0.5 * entropy + 0.3 * flip_disagreement + 0.2 * rarity`. The picks are the
highest scores, skipping near-duplicates: an image whose thumbnail (32x24 grey, zero
mean, unit norm) has a cosine similarity above `max_similarity` with an earlier pick
(consecutive video frames score alike and teach the same thing).

    scores = score_images(predictor, paths)
    picks = pick_diverse(scores, count=20, max_similarity=0.9)
"""

import csv
import dataclasses
import math
from pathlib import Path

import cv2
import numpy as np

from semseg.base.errors import InputError
from semseg.base.files import atomic_path, write_image

WEIGHTS = {"entropy": 0.5, "flip_disagreement": 0.3, "rarity": 0.2}
THUMBNAIL_SIZE = (32, 24)  # width, height


@dataclasses.dataclass
class ImageScore:
    """The numbers of one pool image (module doc)."""

    path: Path
    entropy: float
    flip_disagreement: float
    class_shares: np.ndarray  # (K,) pixel share of each predicted class
    thumbnail: np.ndarray  # unit-norm float32 vector
    rarity: float = 0.0
    score: float = 0.0
    rank: int = 0
    duplicate_of: str = ""


def thumbnail(image):
    """Zero-mean, unit-norm float32 vector of a 32x24 grey version of `image`."""
    grey = image[..., :3].mean(axis=-1) if image.shape[-1] >= 3 else image[..., 0]
    small = cv2.resize(grey.astype(np.float32), THUMBNAIL_SIZE, interpolation=cv2.INTER_AREA)
    small = small.ravel() - small.mean()
    norm = np.linalg.norm(small)
    return small / norm if norm > 0 else small


def score_image(predictor, path, image):
    """`ImageScore` of one image (its `rarity` and `score` are set by `score_images`)."""
    plain, mirrored = predictor.view_probabilities(image)
    mean = (plain + mirrored) / 2.0
    num_classes = mean.shape[-1]
    entropy = -(mean * np.log(np.clip(mean, 1e-12, 1.0))).sum(axis=-1).mean()
    classes = plain.argmax(axis=-1)
    disagreement = float((classes != mirrored.argmax(axis=-1)).mean())
    shares = np.bincount(mean.argmax(axis=-1).ravel(), minlength=num_classes) / classes.size
    return ImageScore(
        path=Path(path),
        entropy=float(entropy / math.log(max(num_classes, 2))),
        flip_disagreement=disagreement,
        class_shares=shares.astype(np.float64),
        thumbnail=thumbnail(image),
    )


def score_images(predictor, paths, read=None, progress=None):
    """Scores every image of a pool (module doc).

    Args:
        predictor: `semseg.predict.inference.Predictor`.
        paths: image file paths.
        read: function `path -> uint8 image`; `semseg.predict.inference.read_image` by default.
        progress: optional `tqdm.tqdm`-like wrapper.

    Returns:
        list of `ImageScore`, in the order of `paths`.
    """
    from semseg.predict.inference import read_image

    read = read or (lambda path: read_image(path, predictor.num_channels))
    iterator = progress(paths, desc="scoring", unit="image") if progress else paths
    scores = [score_image(predictor, path, read(path)) for path in iterator]
    if not scores:
        raise InputError("no image to score")
    num_classes = len(scores[0].class_shares)
    pool_shares = np.mean([score.class_shares for score in scores], axis=0)
    surprise = -np.log(np.clip(pool_shares, 1e-6, 1.0)) / math.log(max(num_classes, 2))
    for score in scores:
        score.rarity = float(min(1.0, (score.class_shares * surprise).sum()))
        score.score = sum(weight * getattr(score, name) for name, weight in WEIGHTS.items())
    return scores


def pick_diverse(scores, count, max_similarity=0.9):
    """The `count` best-scoring images, skipping near-duplicates of earlier picks.

    Sets `rank` (1 = first pick, 0 = not picked) and `duplicate_of` (the pick an image
    was skipped for) on every score.

    Returns:
        list of the picked `ImageScore`, best first.
    """
    if count < 1:
        raise InputError(f"--count must be 1 or more. Received: {count}")
    picks = []
    for score in sorted(scores, key=lambda item: (-item.score, str(item.path))):
        if len(picks) == count:
            break
        if picks:
            similarities = np.array([pick.thumbnail for pick in picks]) @ score.thumbnail
            closest = int(np.argmax(similarities))
            if similarities[closest] > max_similarity:
                score.duplicate_of = picks[closest].path.name
                continue
        picks.append(score)
        score.rank = len(picks)
    return picks


def write_scores_csv(scores, path):
    """One row per pool image, best score first: rank (0: not picked), name, path,
    score, entropy, flip_disagreement, rarity, duplicate_of."""
    fields = ["rank", "name", "path", "score", "entropy", "flip_disagreement", "rarity"]
    with atomic_path(path) as temp_path, open(temp_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*fields, "duplicate_of"])
        for score in sorted(scores, key=lambda item: (-item.score, str(item.path))):
            writer.writerow(
                [score.rank, score.path.name, str(score.path)]
                + [f"{getattr(score, name):.5f}" for name in fields[3:]]
                + [score.duplicate_of]
            )


def write_contact_sheet(picks, overlays, path, columns=4, tile_width=320):
    """A grid of the picks' overlays, each captioned with its rank, name and score.

    Args:
        picks: the picked `ImageScore`s, in rank order.
        overlays: list of uint8 RGB images, one per pick.
        path: the `.jpg` to write.
    """
    tiles = []
    for pick, image in zip(picks, overlays):
        height = max(1, round(image.shape[0] * tile_width / image.shape[1]))
        tile = cv2.resize(image, (tile_width, height), interpolation=cv2.INTER_AREA)
        caption = f"#{pick.rank} {pick.path.stem[:28]}  {pick.score:.3f}"
        cv2.rectangle(tile, (0, 0), (tile_width, 22), (0, 0, 0), -1)
        cv2.putText(tile, caption, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
        tiles.append(tile)
    tile_height = max(tile.shape[0] for tile in tiles)
    rows = math.ceil(len(tiles) / columns)
    sheet = np.full((rows * tile_height, columns * tile_width, 3), 255, dtype=np.uint8)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        top, left = row * tile_height, column * tile_width
        sheet[top : top + tile.shape[0], left : left + tile_width] = tile
    write_image(path, sheet)


def select_images(
    predictor, paths, count, output_dir, max_similarity=0.9, min_area=16, progress=None
):
    """Scores a pool, picks `count` diverse images and writes the `select_images.py`
    outputs (scores.csv, picks.jpg, picks.txt, pre_annotations.zip) to `output_dir`.

    Returns:
        `(picks, number of images scored)`.
    """
    from semseg.labelling.cvat_masks import CvatMaskArchive
    from semseg.predict.inference import read_image

    scores = score_images(predictor, paths, progress=progress)
    picks = pick_diverse(scores, count, max_similarity)
    # Made once the pool is read: a bad image stops the command with no empty output.
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    overlays = []
    with CvatMaskArchive(output_dir / "pre_annotations.zip", predictor.labels, min_area) as archive:
        for pick in picks:
            image = read_image(pick.path, predictor.num_channels)
            mask = predictor.predict(image)
            archive.add(pick.path.stem, mask)
            overlays.append(predictor.overlay(image, mask))
    write_scores_csv(scores, output_dir / "scores.csv")
    write_contact_sheet(picks, overlays, output_dir / "picks.jpg")
    with atomic_path(output_dir / "picks.txt") as temp_path:
        temp_path.write_text("".join(f"{pick.path.resolve()}\n" for pick in picks))
    return picks, len(scores)
