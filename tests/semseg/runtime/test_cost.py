"""Parameter and FLOP counts that eval.py reports."""

import keras
import pytest

import models
from semseg.runtime.cost import count_flops, count_params


def test_ddrnet23_slim_flops_match_the_official_figure():
    model = models.build_model("ddrnet23_slim", 19)
    flops = count_flops(model, (480, 640))
    # The official PyTorch model: 10.65 GFLOPs (5.32 GMACs) at 1x3x480x640.
    assert flops == pytest.approx(10.65e9, rel=0.02)
    params = count_params(model)
    assert params["trainable"] == 5_695_987
    assert params["total"] > params["trainable"]  # batch-norm moving statistics


def test_flops_of_a_single_convolution_are_two_per_multiply_add():
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    model = keras.Model(inputs, outputs)
    # 10 x 12 outputs x 8 filters x (3 x 3 x 3) multiply-adds, two FLOPs each.
    assert count_flops(model, (10, 12)) == 2 * 10 * 12 * 8 * 27
