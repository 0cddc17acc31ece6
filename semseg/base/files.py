"""Writing files so that a crash never leaves a half-written one behind.

Everything the toolkit writes (config, checkpoints, reports, images, videos)
goes to a temporary name in the destination folder first and is renamed into
place only once complete; `os.replace` makes the rename atomic.
"""

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import cv2

from semseg.base.errors import InputError

logger = logging.getLogger(__name__)


def temporary_sibling(path):
    """A unique hidden temporary name beside `path` that keeps its suffix (writers such as
    Keras and OpenCV choose the format by extension)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def remove_stale_temporaries(folder):
    """Removes the temporary files a killed writer left under `folder` (recursively).

    Only names of the `temporary_sibling` form (`.NAME.XXXXXXXX.tmp...`, and the
    backup's `.XXXXXXXX.tmp.weights.h5`) go; call it when no other process writes
    there (a work dir at the start of its run).

    Returns:
        The number of files removed.
    """
    removed = 0
    for path in Path(folder).rglob(".*"):
        if path.is_file() and re.search(r"\.[0-9a-f]{8}\.tmp(\.|$)", path.name):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


# A folder younger than this is never taken for abandoned: its owner may not have
# locked it yet.
# The image files every reader and command takes (lower-case suffixes).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
ABANDONED_AFTER_S = 10


def _lock(folder, wait):
    """An open descriptor of `folder` holding an exclusive `flock`, or None when another
    process holds it (`wait=False`) or the file system cannot lock it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        os.close(descriptor)
        return None
    return descriptor


@contextlib.contextmanager
def locked(folder, busy_message):
    """Holds an exclusive lock on an existing `folder` while the block runs.

    The kernel releases it when the process ends, however it ends, so a later process
    can tell a live owner from a killed one. Where the file system cannot lock (some
    network file systems), the block runs unlocked.

    Raises:
        InputError: `busy_message` when another process holds the lock.
    """
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        descriptor = None
    if descriptor is not None:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise InputError(busy_message) from None
        except OSError:
            os.close(descriptor)
            descriptor = None
    try:
        yield
    finally:
        if descriptor is not None:
            os.close(descriptor)


@contextlib.contextmanager
def owned_temp_dir(parent=None, prefix="semseg_"):
    """A new folder `parent/PREFIX...` that this process locks while the block runs and
    removes after it (if it is still there), like `tempfile.TemporaryDirectory`.

    Unlike a plain temporary folder, one left by a killed process is found and removed
    by `remove_abandoned(parent, PREFIX + "*")` in the next run.

    Args:
        parent: path-like, where to create it; the system temp dir by default.
        prefix: str, the start of its name.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    descriptor = _lock(folder, wait=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if descriptor is not None:
            os.close(descriptor)


def remove_abandoned(parent, pattern):
    """Removes the folders matching `pattern` in `parent` whose owner process is gone.

    A folder counts as abandoned when no process holds its lock (`owned_temp_dir`,
    `owned_dir`) and it is older than `ABANDONED_AFTER_S`.

    Returns:
        The list of removed folders.
    """
    removed = []
    parent = Path(parent)
    if not parent.is_dir():
        return removed
    for folder in sorted(parent.glob(pattern)):
        if folder.is_symlink() or not folder.is_dir():
            continue
        try:
            if time.time() - folder.stat().st_mtime < ABANDONED_AFTER_S:
                continue
        except OSError:
            continue
        descriptor = _lock(folder, wait=False)
        if descriptor is None:
            continue  # its owner is alive (or the folder cannot be locked)
        try:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(descriptor)
        if not folder.exists():
            removed.append(folder)
    return removed


def log_removed(removed, left_by):
    """Says which folders `remove_abandoned` removed (INFO), e.g. `left_by="killed
    builds"`."""
    if removed:
        logger.info(
            "removed %d folder(s) left by %s: %s",
            len(removed),
            left_by,
            ", ".join(str(path) for path in removed[:3]),
        )


@contextlib.contextmanager
def owned_dir(folder):
    """Creates `folder` (which must not exist) and locks it while the block runs; the
    caller moves or removes it. See `remove_abandoned`."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    descriptor = _lock(folder, wait=True)
    try:
        yield folder
    finally:
        if descriptor is not None:
            os.close(descriptor)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it to `path` if the block succeeds.

    On error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = temporary_sibling(path)
    try:
        yield temp_path
        os.replace(temp_path, path)
    finally:
        temp_path.unlink(missing_ok=True)


def write_text(path, text):
    with atomic_path(path) as temp_path:
        temp_path.write_text(text)


def write_json(path, values):
    write_text(path, json.dumps(values, indent=2) + "\n")


def write_image(path, image):
    """Writes an RGB (or single-channel) uint8 image; the format follows the extension."""
    path = Path(path)
    if image.ndim == 3 and image.shape[-1] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode an image of shape {image.shape}")
    with atomic_path(path) as temp_path:
        temp_path.write_bytes(encoded.tobytes())


def check_output_dir(path, flag):
    """Checks before any work that `path` is, or can become, a folder this process writes.

    Args:
        path: path-like, the output folder (created later by the command).
        flag: str, the flag it came from, for messages (e.g. `"--output"`).

    Raises:
        InputError: naming the flag and the path when it is a file, under a file, or
            in a folder this process may not write to.
    """
    path = Path(path)
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == path else f"is under the file {existing}"
        raise InputError(f"{flag} {path}: {what}; give a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {path}: {existing} is not writable by this user")


def check_output_file(path, flag, suffix=None):
    """Checks before any work that `path` can be written as a file (`suffix` its extension).

    Raises:
        InputError: naming the flag and the path when the extension is wrong, the path
            is a folder, its folder does not exist, or it is not writable.
    """
    path = Path(path)
    if suffix and path.suffix.lower() != suffix:
        raise InputError(f"{flag} {path}: give a {suffix} file name")
    if path.is_dir():
        raise InputError(f"{flag} {path}: is a folder; give a file name")
    if not path.parent.is_dir():
        raise InputError(f"{flag} {path}: no such folder {path.parent}")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {path}: {path.parent} is not writable by this user")
    # Permissions do not tell everything (/proc, a read-only mount): try a file there.
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as error:
        raise InputError(
            f"{flag} {path}: cannot write in {path.parent} ({error.strerror or error})"
        ) from None


def check_output_apart(output, inputs, flag):
    """Refuses an output that is one of the inputs or lies inside an input folder.

    Such an output would be written over an input (`predict_video.py --output` equal to
    `--input`) or read back as input by the next run (`select_images.py --output`
    inside its pool).

    Args:
        output: path-like, the file or folder the command writes.
        inputs: path-likes the command reads (files or folders).
        flag: str, the output's flag, for the message.

    Raises:
        InputError: naming the flag, the output and the input.
    """
    target = Path(output).resolve()
    for item in inputs:
        source = Path(item).resolve()
        if target == source:
            raise InputError(f"{flag} {output}: is the input {item}; give another path")
        if source in target.parents and source.is_dir():
            raise InputError(
                f"{flag} {output}: is inside the input folder {item}, so it would be read as "
                "input next time; give a path outside it"
            )


def check_not_replacing(path, flag, overwrite):
    """Refuses to replace an existing file, or to fill a non-empty folder, unless asked.

    What a user named as an output may hold earlier work (a labelled CVAT export, the
    previous round's picks): it is replaced only with `--overwrite`.

    Args:
        path: path-like, the output file or folder.
        flag: str, its flag, for the message.
        overwrite: bool, the command's `--overwrite`.

    Raises:
        InputError: naming the flag and the path.
    """
    path = Path(path)
    if overwrite:
        return
    if path.is_file():
        raise InputError(f"{flag} {path}: already exists; pass --overwrite to replace it")
    if path.is_dir() and any(path.iterdir()):
        raise InputError(
            f"{flag} {path}: is a folder that is not empty; pass --overwrite to replace what "
            "this command writes there, or give a new folder"
        )


def check_new_output(path, flag, inputs, overwrite):
    """`check_output_apart` and `check_not_replacing`: an output that is none of the
    command's `inputs` and, unless `overwrite`, holds no earlier work."""
    check_output_apart(path, inputs, flag)
    check_not_replacing(path, flag, overwrite)


def image_files(inputs, flag):
    """The image files named by `inputs`: what "a folder of images" means to every command.

    A folder gives the files in it and in its sub-folders whose extension is one of
    `IMAGE_EXTENSIONS` (hidden files and folders left out), sorted by path; a file is
    taken as given (the decoder refuses it, naming it, if it is not an image). Commands
    refuse an output inside an input folder (`check_output_apart`), so what they write
    is never read back.

    Args:
        inputs: path-likes, files or folders.
        flag: the flag they came from, for messages (e.g. `"--input"`).

    Returns:
        list of `Path`, in the order of `inputs`.

    Raises:
        InputError: for an input that does not exist, or when none holds an image.
    """
    paths = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            paths += sorted(
                path
                for path in item.rglob("*")
                if path.suffix.lower() in IMAGE_EXTENSIONS
                and path.is_file()
                and not any(part.startswith(".") for part in path.relative_to(item).parts)
            )
        elif item.is_file():
            paths.append(item)
        else:
            raise InputError(f"{flag} {item}: no such file or folder")
    if not paths:
        raise InputError(
            f"{flag} {', '.join(str(item) for item in inputs)}: no images "
            f"({', '.join(IMAGE_EXTENSIONS)}) there"
        )
    return paths
