"""Which source is behind `--manual_dir`: what `tfds build` without `--config` builds.

The `auto` config looks at the top of the folder or zip (or of its single
top-level folder) for the entries that mark each layout, and reads it with that
source's reader:

| source       | looked for                                        |
|--------------|---------------------------------------------------|
| `cvat`       | `labelmap.txt` and `SegmentationClass/`           |
| `cityscapes` | `leftImg8bit/` and `gtFine/`                      |
| `utokyo`     | `images/`, `labels/` and `train.txt`              |
| `satellite`  | `images/` and `labels/building/` or `labels/road/` |
| `folder`     | `classes.json`, `images/` and `labels/`           |
| `rgb_gt`     | `rgb/` and `gt/`                                  |
| `cvat_xml`   | `annotations.xml` and `images/`                   |

A folder that matches nothing but holds `full_semantic.zip`, or exactly one
`.zip`, is looked into. Nothing is extracted to detect.

Example:

    source, path = detect_source("~/tensorflow_datasets/downloads/manual")
    # ("rgb_gt", Path(".../manual/full_semantic.zip"))
"""

from etils import epath

from full_semantic import archives
from semseg.base.errors import InputError

# Source -> alternative sets of entries that must all be at the dataset's root
# (a trailing `/` marks a folder).
SIGNATURES = {
    "cvat": [("labelmap.txt", "SegmentationClass/")],
    "cityscapes": [("leftImg8bit/", "gtFine/")],
    "utokyo": [("images/", "labels/", "train.txt")],
    "satellite": [("images/", "labels/building/"), ("images/", "labels/road/")],
    "folder": [("classes.json", "images/", "labels/")],
    "rgb_gt": [("rgb/", "gt/")],
    "cvat_xml": [("annotations.xml", "images/")],
}
# The zip the original project's users put in TFDS's default manual dir.
DEFAULT_ZIP = "full_semantic.zip"


def _expected_text():
    alternatives = []
    for source, signatures in SIGNATURES.items():
        options = " or ".join(" + ".join(entries) for entries in signatures)
        alternatives.append(f"{source} ({options})")
    return "; ".join(alternatives)


def _folder_entries(folder):
    """Names at depth 1 and 2 under `folder`, folders with a trailing `/`."""
    entries = set()
    for child in folder.iterdir():
        if child.is_dir():
            entries.add(f"{child.name}/")
            for grandchild in child.iterdir():
                suffix = "/" if grandchild.is_dir() else ""
                entries.add(f"{child.name}/{grandchild.name}{suffix}")
        else:
            entries.add(child.name)
    return entries


def _zip_entries(zip_path):
    """Names at depth 1 and 2 of a zip, below its single top-level folder if it has one."""
    paths = set()
    for name in archives.member_names(zip_path):
        parts = name.rstrip("/").split("/")
        if parts[0] in archives.IGNORED_TOP_LEVEL:
            continue
        for depth in range(1, len(parts)):
            paths.add("/".join(parts[:depth]) + "/")
        paths.add(name)
    top = {path.split("/")[0] + ("/" if "/" in path else "") for path in paths}
    if len(top) == 1 and next(iter(top)).endswith("/"):
        prefix = next(iter(top))
        paths = {
            path[len(prefix) :] for path in paths if path.startswith(prefix) and path != prefix
        }
    return {path for path in paths if path.rstrip("/").count("/") <= 1}


def _matches(entries):
    return [
        source
        for source, signatures in SIGNATURES.items()
        if any(all(entry in entries for entry in signature) for signature in signatures)
    ]


def _single_folder(folder):
    """The only sub-folder of `folder` when it holds nothing else (a folder of a folder)."""
    children = [child for child in folder.iterdir() if child.name not in archives.IGNORED_TOP_LEVEL]
    if len(children) == 1 and children[0].is_dir():
        return children[0]
    return None


def detect_source(manual_dir):
    """The `full_semantic` source whose layout `manual_dir` has.

    Args:
        manual_dir: path-like, a dataset folder, a `.zip` of one, or a folder
            holding `full_semantic.zip` or exactly one `.zip`.

    Returns:
        `(source, path)`: a key of `SIGNATURES`, and what to give its reader (the
        folder, its single sub-folder, or the zip that was looked into).

    Raises:
        InputError: naming `manual_dir` and what was looked for, when no layout
            or several match.
    """
    manual_dir = epath.Path(manual_dir)
    if not manual_dir.exists():
        raise InputError(f"--manual_dir {manual_dir} does not exist.")
    looked_in = manual_dir
    if manual_dir.is_dir():
        entries = _folder_entries(manual_dir)
        inner = _single_folder(manual_dir)
        if not _matches(entries) and inner is not None:
            entries, looked_in = _folder_entries(inner), inner
        zips = sorted(path for path in manual_dir.iterdir() if path.suffix.lower() == ".zip")
        if not _matches(entries) and zips:
            preferred = [path for path in zips if path.name == DEFAULT_ZIP]
            if preferred or len(zips) == 1:
                looked_in = (preferred or zips)[0]
                entries = _zip_entries(looked_in)
    elif manual_dir.suffix.lower() == ".zip":
        entries = _zip_entries(manual_dir)
    else:
        raise InputError(
            f"--manual_dir {manual_dir} is a file but not a .zip: expected a dataset folder or "
            "a .zip of one."
        )
    found = _matches(entries)
    if len(found) == 1:
        return found[0], looked_in
    if found:
        raise InputError(
            f"{looked_in}: the layout fits several sources ({', '.join(found)}); pick one with "
            f"--config {found[0]} (or another)."
        )
    raise InputError(
        f"{looked_in}: no dataset layout recognised; looked for {_expected_text()} at its "
        "top (or in its single folder or zip); pick one with --config, see full_semantic/README.md."
    )
