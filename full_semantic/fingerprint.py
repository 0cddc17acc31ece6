"""The fingerprints of a build's source: which files it was built from, and whether
they changed since.

`source_fingerprint` is the SHA-256 of the relative name and the contents of every file
under `--manual_dir` (or of the file itself). A zip counts by what it stores of each
member, its name, size and CRC-32, so a 11 GB Cityscapes zip is not read through. It is
the build's lineage: the build keeps it in its metadata, `train.py` copies it into the
run's `config.json`, and `eval.py` warns when the dataset it scores was built from other
contents. A copy, a fresh download or a re-export of the same files has the same
fingerprint.

Reading every file takes time on a big source (1.3 s for the 40,000 files, 1.2 GB, of
`bench/build_scale.py`), so a build also keeps `source_stat`, the hash of the names,
sizes and modification times, which reads no file (0.25 s for those files). Building a
config again compares that first, and reads the contents only when it differs, as git
and make do.

Example:

    source_fingerprint("~/data/cvat_export")   # "sha256:3f2a..." (contents)
    source_stat("~/data/cvat_export")          # "sha256:9c41..." (sizes and times)
"""

import hashlib
import os
import zipfile

from full_semantic.file_lists import local_files

# Larger files are hashed as they are read, smaller ones read whole (faster: one call,
# and threads only slowed 40,000 files of 57 kB down, the GIL taken at every file).
_WHOLE_FILE_BYTES = 64 << 20


def _files(manual_dir):
    """`[(relative name, path), ...]` in path order; None when `manual_dir` is missing."""
    root = os.path.expanduser(os.fspath(manual_dir))
    if not os.path.exists(root):
        return None
    if not os.path.isdir(root):
        return [(".", root)]
    return [("/".join(parts), os.path.join(root, *parts)) for parts in sorted(local_files(root))]


def _zip_members(path):
    """The name, size and CRC-32 of each member of the zip `path`; None if it is no zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            return "".join(
                f" {member.filename}\0{member.file_size}\0{member.CRC}\n"
                for member in archive.infolist()
            )
    except (zipfile.BadZipFile, OSError):
        return None  # the reader names a broken zip


def _content_digest(path):
    """What stands for the contents of `path`: its zip members, or its SHA-256."""
    if path.lower().endswith(".zip"):
        members = _zip_members(path)
        if members is not None:
            return f"zip\0{members}"
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size > _WHOLE_FILE_BYTES:
            return hashlib.file_digest(handle, "sha256").hexdigest()
        return hashlib.sha256(handle.read()).hexdigest()


def _hash_files(manual_dir, describe):
    """`"sha256:HEX"` of each file's relative name and `describe(path)`; None if missing."""
    named = _files(manual_dir)
    if named is None:
        return None
    digest = hashlib.sha256()
    for relative, path in named:
        digest.update(f"{relative}\0{describe(path)}".encode())
    return f"sha256:{digest.hexdigest()}"


def _stat_line(path):
    stat = os.stat(path)
    members = _zip_members(path) if path.lower().endswith(".zip") else None
    return f"{stat.st_size}\0{stat.st_mtime_ns}\n{members or ''}"


def source_fingerprint(manual_dir):
    """`"sha256:HEX"` of the relative names and contents of the files under `manual_dir`
    (a folder or a file, e.g. a `.zip`); `None` when it does not exist."""
    return _hash_files(manual_dir, lambda path: f"{_content_digest(path)}\n")


def source_stat(manual_dir):
    """`"sha256:HEX"` of the names, sizes, modification times and zip members under
    `manual_dir`, reading no file but the zips' member lists; `None` when it does not
    exist."""
    return _hash_files(manual_dir, _stat_line)
