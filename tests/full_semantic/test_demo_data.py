import cv2
import numpy as np

from full_semantic.demo_data import LABELMAP, scene_variant, write_demo_export


def test_demo_export_has_cvat_layout_exact_colours_and_is_reproducible(tmp_path):
    first = write_demo_export(tmp_path / "a", num_train=6, num_val=3, size=(64, 80), seed=7)
    second = write_demo_export(tmp_path / "b", num_train=6, num_val=3, size=(64, 80), seed=7)
    lists = first / "ImageSets" / "Segmentation"
    assert len((lists / "train.txt").read_text().split()) == 6
    assert len((lists / "val.txt").read_text().split()) == 3
    assert (first / "labelmap.txt").read_text().splitlines()[1] == "background:0,0,0::"
    allowed = {color for _, color in LABELMAP}
    for name in (lists / "train.txt").read_text().split():
        image = cv2.imread(str(first / "JPEGImages" / f"{name}.jpg"))
        mask = cv2.cvtColor(
            cv2.imread(str(first / "SegmentationClass" / f"{name}.png")), cv2.COLOR_BGR2RGB
        )
        assert image.shape == (64, 80, 3) and mask.shape == (64, 80, 3)
        assert {tuple(color) for color in np.unique(mask.reshape(-1, 3), axis=0)} <= allowed
        again = cv2.imread(str(second / "SegmentationClass" / f"{name}.png"))
        np.testing.assert_array_equal(cv2.cvtColor(mask, cv2.COLOR_RGB2BGR), again)
    assert not list(tmp_path.glob(".*")), "temporary folder left behind"


def test_scene_variants_move_the_image_and_its_class_ids_together():
    image = np.zeros((12, 20, 3), np.uint8)
    image[2:6, 1:5] = 200
    class_ids = (image[..., 0] > 0).astype(np.uint8)
    rng = np.random.default_rng(3)

    variants = [scene_variant(rng, image, class_ids) for _ in range(8)]

    for varied, ids in variants:
        assert varied.shape == image.shape and ids.shape == class_ids.shape
        np.testing.assert_array_equal(varied[..., 0] > 0, ids == 1)
        assert ids.sum() == class_ids.sum()
    assert len({ids.tobytes() for _, ids in variants}) > 4  # shifted and mirrored apart
    assert len({int(varied.max()) for varied, _ in variants}) > 4  # re-lit


def test_an_export_of_scene_variants_is_reproducible(tmp_path):
    first = write_demo_export(tmp_path / "a", 6, 2, size=(24, 32), seed=1, distinct_scenes=2)
    second = write_demo_export(tmp_path / "b", 6, 2, size=(24, 32), seed=1, distinct_scenes=2)
    names = sorted(path.name for path in (first / "SegmentationClass").iterdir())
    assert len(names) == 8
    for name in names:
        assert (first / "SegmentationClass" / name).read_bytes() == (
            second / "SegmentationClass" / name
        ).read_bytes()
