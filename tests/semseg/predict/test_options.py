"""The predictors' flags (`semseg.predict.options`), checked before TensorFlow loads."""

import pytest

from semseg.base.errors import InputError
from semseg.predict.options import PredictConfig, PredictRealtimeConfig, PredictVideoConfig


def test_port_zero_asks_for_any_free_port():
    assert PredictRealtimeConfig(port=0).port == 0
    with pytest.raises(InputError, match="--port must be in 0..65535. Received: 70000"):
        PredictRealtimeConfig(port=70000)


def test_an_exported_model_and_a_published_one_do_not_go_together():
    with pytest.raises(InputError, match="give --model .* or --weights NAME"):
        PredictVideoConfig(input="a.mp4", model="m.tflite", weights="pidnet_s_cityscapes")
    assert PredictVideoConfig(input="a.mp4", model="m.tflite").threads is None


def test_overlay_weight_and_speck_size_are_checked():
    with pytest.raises(InputError, match="--alpha must be in 0..1. Received: 1.5"):
        PredictConfig(input=("a.jpg",), alpha=1.5)
    with pytest.raises(InputError, match="--min_area must be at least 0. Received: -1"):
        PredictConfig(input=("a.jpg",), min_area=-1)
