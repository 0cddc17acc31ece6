import numpy as np

from semseg.base.labels import IGNORE_INDEX, colorize, default_palette
from semseg.predict.visualization import comparison_panel, error_map, legend, overlay, to_rgb


def test_colorize_uses_the_palette_and_paints_ignore_black():
    mask = np.array([[0, 1], [IGNORE_INDEX, 1]])
    colors = colorize(mask, [[10, 20, 30], [200, 100, 0]])
    assert colors.dtype == np.uint8 and colors.shape == (2, 2, 3)
    np.testing.assert_array_equal(colors[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(colors[1, 1], [200, 100, 0])
    np.testing.assert_array_equal(colors[1, 0], [0, 0, 0])


def test_default_palette_is_distinct():
    palette = default_palette(40)
    assert len({tuple(color) for color in palette}) == 40


def test_overlay_blends_labelled_pixels_and_keeps_ignored_ones():
    image = np.full((4, 4, 3), 100, dtype=np.uint8)
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[0, 0] = IGNORE_INDEX
    result = overlay(image, mask, [[200, 0, 0]], alpha=0.5)
    np.testing.assert_array_equal(result[0, 0], [100, 100, 100])
    np.testing.assert_array_equal(result[1, 1], [150, 50, 50])


def test_to_rgb_handles_thermal_and_rgbt():
    assert to_rgb(np.zeros((5, 6, 1), np.uint8)).shape == (5, 6, 3)
    assert to_rgb(np.zeros((5, 6, 4), np.uint8)).shape == (5, 6, 3)


def test_comparison_panel_is_four_tiles_wide_with_a_legend():
    image = np.zeros((50, 60, 3), dtype=np.uint8)
    truth = np.zeros((50, 60), dtype=np.uint8)
    prediction = np.ones((50, 60), dtype=np.uint8)
    panel = comparison_panel(image, truth, prediction, ["sky", "road"], [[0, 0, 255], [255, 0, 0]])
    assert panel.shape[1] == 240 and panel.shape[0] > 50
    without_truth = comparison_panel(
        image, None, prediction, ["sky", "road"], [[0, 0, 9], [9, 0, 0]]
    )
    assert without_truth.shape[1] == 120
    strip = legend(["sky", "road"], [[0, 0, 255], [255, 0, 0]], 180)
    assert strip.shape[1] == 180
    # Both swatch colours are drawn in the legend.
    assert np.any(np.all(strip == [0, 0, 255], axis=-1))
    assert np.any(np.all(strip == [255, 0, 0], axis=-1))


def test_error_map_marks_wrong_pixels_red_and_void_grey():
    image = np.full((2, 3, 3), 200, dtype=np.uint8)
    truth = np.array([[0, 1, IGNORE_INDEX], [1, 1, 0]])
    prediction = np.array([[0, 0, 1], [1, 1, 0]])
    tile = error_map(image, truth, prediction)
    np.testing.assert_array_equal(tile[0, 1], [255, 0, 0])
    np.testing.assert_array_equal(tile[0, 2], [128, 128, 128])
    np.testing.assert_array_equal(tile[0, 0], [80, 80, 80])
