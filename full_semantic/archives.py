"""Finding a dataset behind `--manual_dir`: a folder, a `.zip` of one, or a folder with one zip.

Every reader of the `full_semantic` builder that accepts zips calls `locate_root`
with the file (or folder) that marks the root of its layout:

    root, zip_path = locate_root(manual_dir, scratch_dir, "classes.json", "a dataset folder")

A zip is extracted into `scratch_dir` (deleted by the builder after the build), only
the members under the files and folders the reader names (`read=`), one at a time;
member names that would land outside it, and zip bombs, are refused before anything is
written.
"""

import posixpath
import re
import shutil
import zipfile

from etils import epath

from semseg.base.errors import InputError

# Folders that zip tools add beside the real content.
IGNORED_TOP_LEVEL = ("__MACOSX",)
# Limits of what a zip may unpack to (zip bombs): more members than any dataset has, a
# member that inflates more than MAX_RATIO times (images and masks barely compress;
# text lists and JSON polygons ~10-30x), or more bytes than the temp disk has free.
MAX_MEMBERS = 2_000_000
MAX_RATIO = 200
RATIO_CHECKED_ABOVE = 2**20  # bytes; small members may compress as they like
FREE_SPACE_MARGIN = 2**28  # bytes left free on the temp disk after extracting


def is_unsafe_member(member_name):
    """Whether a zip member would be written outside the extraction folder.

    Args:
        member_name: str, the member name stored in the zip.

    Returns:
        bool, True for absolute names (`/x`, `C:x`, `\\\\x`) and names whose `..`
        parts climb above the extraction folder.
    """
    name = member_name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return True
    normalized = posixpath.normpath(name)
    return normalized == ".." or normalized.startswith("../")


def extract_zip(zip_path, target_dir, select=None):
    """Extracts a zip, refusing members that would land outside `target_dir`.

    Every member name is checked before anything is written (zip-slip protection).
    Members are streamed to disk one at a time; the limits (`MAX_MEMBERS`,
    `MAX_RATIO`, free space) apply to the members extracted.

    Args:
        zip_path: path-like, the `.zip` file.
        target_dir: path-like, the folder to extract into (created if needed).
        select: optional callable `member_name -> bool` (names with `/`); only the
            members it accepts are extracted. All by default.

    Raises:
        InputError: if the zip is corrupt or a member name is absolute or climbs
            out of `target_dir` with `..`.
    """
    zip_path = epath.Path(zip_path)
    target_dir = epath.Path(target_dir)
    try:
        with zip_path.open("rb") as zip_file, zipfile.ZipFile(zip_file) as archive:
            members = archive.infolist()
            for member in members:
                if is_unsafe_member(member.filename):
                    raise InputError(
                        f"{zip_path}: member {member.filename!r} would be extracted outside "
                        "the target folder (absolute path or '..'); refusing to extract."
                    )
            if select is not None:
                members = [member for member in members if select(_member_name(member))]
            _check_limits(zip_path, members, target_dir)
            target_dir.mkdir(parents=True, exist_ok=True)
            for member in members:
                destination = target_dir / _member_name(member)
                if member.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, destination.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise InputError(f"{zip_path} is not a readable zip file: {error}") from error


def _member_name(member):
    """A member's normalised relative name, with `/` (zips from Windows tools use `\\`)."""
    return posixpath.normpath(member.filename.replace("\\", "/"))


def member_names(zip_path):
    """The normalised names (`/`-separated, no `./`; folders end with `/`) of a zip's
    members, read from its directory alone.

    Raises:
        InputError: if the file is not a readable zip.
    """
    try:
        with epath.Path(zip_path).open("rb") as zip_file, zipfile.ZipFile(zip_file) as archive:
            names = [
                _member_name(member) + ("/" if member.is_dir() else "")
                for member in archive.infolist()
            ]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as error:
        raise InputError(f"{zip_path} is not a readable zip file: {error}") from error
    return [name for name in names if name.strip("./")]


def _root_prefix(zip_path, marker, description):
    """Where the dataset folder is inside a zip, from its directory alone: `""` when
    `marker` is at the root, `"TOP/"` when it is inside the single top-level folder."""
    names = member_names(zip_path)

    def holds_marker(prefix):
        return any(
            name == prefix + marker or name.startswith(prefix + marker + "/") for name in names
        )

    if holds_marker(""):
        return ""
    tops = {name.split("/")[0] for name in names} - set(IGNORED_TOP_LEVEL)
    if len(tops) == 1:
        (top,) = tops
        if any(name.startswith(top + "/") for name in names) and holds_marker(top + "/"):
            return top + "/"
    raise InputError(
        f"{zip_path}: no {marker} at the root of the zip or inside a single top-level "
        f"folder; expected {description}."
    )


def _check_limits(zip_path, members, target_dir):
    """Refuses a zip that would unpack to more than `MAX_MEMBERS` members, a member
    inflating more than `MAX_RATIO` times, or more bytes than the temp disk has free.

    The sizes come from the zip's directory; `zipfile` stops a member at its declared
    size (and fails its CRC check), so a lying directory cannot unpack more.
    """
    if len(members) > MAX_MEMBERS:
        raise InputError(
            f"{zip_path}: {len(members)} members, more than the {MAX_MEMBERS} a dataset zip "
            "may hold; refusing to extract."
        )
    for member in members:
        if member.file_size > RATIO_CHECKED_ABOVE and (
            member.file_size > MAX_RATIO * max(member.compress_size, 1)
        ):
            raise InputError(
                f"{zip_path}: member {member.filename!r} inflates from "
                f"{member.compress_size} to {member.file_size} bytes (more than {MAX_RATIO}x, "
                "as a zip bomb does); refusing to extract."
            )
    total = sum(member.file_size for member in members)
    existing = target_dir
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if total + FREE_SPACE_MARGIN > free:
        raise InputError(
            f"{zip_path}: unpacks to {total / 2**30:.2f} GiB but {existing} has "
            f"{free / 2**30:.2f} GiB free; free some space, set TMPDIR to a larger disk, or "
            "pass the extracted folder as --manual_dir."
        )


def locate_root(manual_dir, scratch_dir, marker, description, read=None):
    """Finds the dataset folder behind `--manual_dir`, extracting a zip if needed.

    Args:
        manual_dir: path-like, a folder holding `marker`, a `.zip` of such a
            folder (at the root of the zip or inside one top-level folder), or a
            folder holding exactly one such `.zip` and no `marker`.
        scratch_dir: path-like, an empty folder where a zip is extracted; the
            caller deletes it once the examples are written.
        marker: str, the file or folder name at the root of the layout, e.g.
            `"labelmap.txt"`.
        description: str, what the folder is, for messages, e.g.
            `"a CVAT 'Segmentation mask 1.1' export"`.
        read: optional sequence of the files and folders at the top of the layout
            that the reader reads (e.g. `("labelmap.txt", "JPEGImages", ...)`); only
            they are extracted from a zip (not videos, backups or other tasks beside
            them). Everything by default.

    Returns:
        `(root, zip_path)`: the `epath.Path` of the dataset folder, and the zip
        it came from (None for a folder), for error messages.

    Raises:
        InputError: if `manual_dir` is none of the above.
    """
    manual_dir = epath.Path(manual_dir)
    if not manual_dir.exists():
        raise InputError(f"--manual_dir {manual_dir} does not exist.")
    if manual_dir.is_dir():
        if (manual_dir / marker).exists():
            return manual_dir, None
        zips = sorted(path for path in manual_dir.iterdir() if path.suffix.lower() == ".zip")
        if len(zips) != 1:
            found = ", ".join(path.name for path in zips) if zips else "none"
            raise InputError(
                f"{manual_dir / marker} not found: --manual_dir must be {description} folder, "
                f"a .zip of one, or a folder holding exactly one such .zip (zips found: {found})."
            )
        zip_path = zips[0]
    elif manual_dir.suffix.lower() == ".zip":
        zip_path = manual_dir
    else:
        raise InputError(
            f"--manual_dir {manual_dir} is a file but not a .zip: expected {description} "
            "folder or a .zip of one."
        )
    prefix = _root_prefix(zip_path, marker, description)
    wanted = None if read is None else {prefix + entry.strip("/") for entry in (marker, *read)}

    def select(name):
        return wanted is None or any(
            name == entry or name.startswith(entry + "/") for entry in wanted
        )

    extracted_dir = epath.Path(scratch_dir) / "extracted"
    extract_zip(zip_path, extracted_dir, select=select)
    root = extracted_dir / prefix if prefix else extracted_dir
    root.mkdir(parents=True, exist_ok=True)
    return root, zip_path


def describer(root, zip_path=None):
    """A function naming a path under `root` in messages.

    Args:
        root: path-like, the dataset folder.
        zip_path: path-like or None, the zip `root` was extracted from.

    Returns:
        callable `path -> str`: the full path for a folder, or `"RELATIVE (in ZIP)"`
        for a file extracted from a zip (the temporary folder means nothing to users).
    """
    root = epath.Path(root)
    if zip_path is None:
        return str

    def describe(path):
        relative = epath.Path(path).relative_to(root).as_posix()
        return f"{relative} (in {zip_path})"

    return describe
