"""The real files in ../shared beside the project root: `data/` (the CamVid CVAT export,
the dash-cam clip) and `reference/` (the authors' and MMSegmentation's checkpoints with
their official outputs). A test that needs one fails, never skips, when it is missing."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CAMVID_DIR = SHARED / "data" / "camvid_cvat"


def shared_file(*parts):
    """The path `../shared/<parts>`; fails the test when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests need ../shared beside the project")
    return path


def shared_data(*parts):
    """A file under ../shared/data."""
    return shared_file("data", *parts)


def reference(*parts):
    """A file under ../shared/reference (see its README.md)."""
    return shared_file("reference", *parts)


def require_camvid():
    """Fails the test unless the CamVid CVAT export (`CAMVID_DIR`) is there."""
    shared_file("data", "camvid_cvat", "labelmap.txt")


def converted_references(base, models, *folder):
    """`{case: work dir}`: `convert_checkpoint` of `reference(*folder, CASE.pth)` into
    `base/CASE` at 128x192 for each `case: model name` of `models`."""
    from semseg.weights.convert import convert_checkpoint

    return {
        case: convert_checkpoint(
            model, reference(*folder, f"{case}.pth"), base / case, image_size=(128, 192)
        )[0]
        for case, model in models.items()
    }
