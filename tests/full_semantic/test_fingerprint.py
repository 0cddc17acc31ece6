"""`full_semantic.fingerprint`: contents decide the fingerprint, sizes and times the stat."""

import os
import shutil
import zipfile

from full_semantic.fingerprint import source_fingerprint, source_stat


def write_source(root):
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(b"\x89PNG image a" * 1000)
    (root / "images" / "b.png").write_bytes(b"\x89PNG image b" * 1000)
    (root / "labelmap.txt").write_text("background:0,0,0::\nroad:128,64,128::\n")
    return root


def set_time(path, seconds):
    os.utime(path, ns=(seconds * 10**9, seconds * 10**9))


def test_a_copy_with_other_times_has_the_same_fingerprint_and_another_stat(tmp_path):
    source = write_source(tmp_path / "source")
    for path in source.rglob("*"):
        set_time(path, 1_000_000)
    copy = tmp_path / "copy"
    shutil.copytree(source, copy, copy_function=shutil.copyfile)  # new times

    assert source_fingerprint(copy) == source_fingerprint(source)
    assert source_fingerprint(source).startswith("sha256:")
    assert source_stat(copy) != source_stat(source)


def test_a_changed_byte_changes_the_fingerprint_even_with_size_and_time_kept(tmp_path):
    source = write_source(tmp_path / "source")
    image = source / "images" / "b.png"
    set_time(image, 1_000_000)
    before = source_fingerprint(source), source_stat(source)

    image.write_bytes(image.read_bytes().replace(b"image b", b"image c", 1))
    set_time(image, 1_000_000)

    assert source_fingerprint(source) != before[0]
    assert source_stat(source) == before[1]  # what the stat alone cannot see


def test_a_renamed_or_added_file_changes_both(tmp_path):
    source = write_source(tmp_path / "source")
    before = source_fingerprint(source), source_stat(source)
    (source / "images" / "b.png").rename(source / "images" / "c.png")
    renamed = source_fingerprint(source), source_stat(source)
    (source / "notes.txt").write_text("")
    added = source_fingerprint(source), source_stat(source)

    assert len({before[0], renamed[0], added[0]}) == 3
    assert len({before[1], renamed[1], added[1]}) == 3


def zip_folder(folder, zip_path, seconds):
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.rglob("*")):
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix())
            archive.writestr(info, path.read_bytes() if path.is_file() else b"")
    set_time(zip_path, seconds)
    return zip_path


def test_a_zip_counts_by_its_members_not_its_own_time(tmp_path):
    source = write_source(tmp_path / "source")
    first = zip_folder(source, tmp_path / "first.zip", 1_000_000)
    again = zip_folder(source, tmp_path / "again.zip", 2_000_000)
    assert source_fingerprint(first) == source_fingerprint(again)
    assert source_stat(first) != source_stat(again)

    (source / "labelmap.txt").write_text("background:0,0,0::\ncar:64,0,128::\n")
    changed = zip_folder(source, tmp_path / "changed.zip", 1_000_000)
    assert source_fingerprint(changed) != source_fingerprint(first)


def test_a_missing_source_has_no_fingerprint(tmp_path):
    assert source_fingerprint(tmp_path / "missing") is None
    assert source_stat(tmp_path / "missing") is None
