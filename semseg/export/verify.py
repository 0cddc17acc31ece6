"""Every export is checked against Keras before it is kept: the largest logit difference
and the mIoU change on validation images (`compare_with_keras`), and the calibration
images of int8 quantization (`calibration_images`).
"""

import numpy as np
import tensorflow as tf


def calibration_images(builder, split, image_size, count, seed=0):
    """`count` shuffled images of `split`, resized to `image_size`, as float32 arrays."""
    from semseg.data import data

    examples = data.read_split(builder, split, shuffle_files=True, seed=seed)
    examples = (
        examples.shuffle(512, seed=seed)
        .take(count)
        .map(
            lambda image, mask: data.resize_pair(image, mask, image_size)[0],
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    )
    return [image for image in examples.as_numpy_iterator()]


def compare_with_keras(keras_predictor, exported_predictor, builder, split, count):
    """How far an exported model is from its Keras original on real images.

    Returns:
        dict: `max_abs_logit_diff` over `count` images of `split` at the model's
        size, `miou_keras` and `miou_exported` on the same images at their own
        resolution, and `miou_change` (exported - Keras, in points of percent).
    """
    from semseg.evaluate.evaluation import evaluate, tfds_examples

    if builder is None:
        return _compare_on_generated_images(keras_predictor, exported_predictor, count)
    images = calibration_images(builder, split, keras_predictor.image_size, count, seed=1)
    difference = _max_logit_difference(keras_predictor, exported_predictor, images)
    scores = {}
    for name, predictor in (("keras", keras_predictor), ("exported", exported_predictor)):
        examples, total = tfds_examples(builder, split, max_examples=count)
        scores[name] = evaluate(predictor, examples, total).metrics["mIoU"]
    return {
        "max_abs_logit_diff": difference,
        "miou_keras": scores["keras"],
        "miou_exported": scores["exported"],
        "miou_change": 100.0 * (scores["exported"] - scores["keras"]),
        "verified_on": f"{count} images of {split}",
    }


def _max_logit_difference(keras_predictor, exported_predictor, images):
    difference = 0.0
    for image in images:
        keras_logits = keras_predictor._logits(image[None]).numpy()
        exported_logits = exported_predictor._logits(image[None]).numpy()
        if not np.all(np.isfinite(exported_logits)):
            raise RuntimeError("the exported model returns NaN or infinite logits")
        difference = max(difference, float(np.max(np.abs(keras_logits - exported_logits))))
    return difference


def _compare_on_generated_images(keras_predictor, exported_predictor, count):
    """`compare_with_keras` without a built dataset (a run of `convert_weights.py`):
    the logits on smooth random images; no mIoU (there are no labels)."""
    rng = np.random.default_rng(1)
    height, width = keras_predictor.image_size
    channels = keras_predictor.num_channels
    images = []
    for _ in range(count):
        coarse = rng.uniform(0, 255, (height // 8 + 1, width // 8 + 1, channels))
        images.append(np.kron(coarse, np.ones((8, 8, 1)))[:height, :width].astype("float32"))
    return {
        "max_abs_logit_diff": _max_logit_difference(keras_predictor, exported_predictor, images),
        "miou_keras": None,
        "miou_exported": None,
        "miou_change": None,
        "verified_on": f"{count} generated images (the run's dataset is not built)",
    }
