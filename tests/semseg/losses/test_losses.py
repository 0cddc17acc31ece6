"""Tests of `semseg.losses.losses`: every loss against an independent NumPy computation
(ignored pixels and a class absent from the batch included), Lovasz against a
NumPy port of the reference algorithm, the `--loss` spec, serialisation and
float32 math under reduced-precision logits."""

import dataclasses
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from cvat_fixtures import class_index_pattern, write_cvat_export

import models
from full_semantic.config import FullSemanticConfig
from full_semantic.prepare import build_dataset
from semseg.base.errors import InputError
from semseg.base.labels import IGNORE_INDEX
from semseg.config.run_config import RunConfig, parse_class_weights
from semseg.data import data
from semseg.losses import loss_spec, losses
from semseg.train.setup import resolve_class_weights
from semseg.train.training import train

NUM_CLASSES = 4  # Class 3 never appears in the labels below.


@pytest.fixture(scope="module")
def multiclass_batch():
    generator = np.random.default_rng(0)
    logits = generator.normal(0.0, 2.0, (2, 5, 6, NUM_CLASSES)).astype("float32")
    labels = generator.integers(0, 3, (2, 5, 6)).astype("int32")
    labels[0, 0, :4] = IGNORE_INDEX
    labels[1, 2:4, 1:3] = IGNORE_INDEX
    return labels, logits


@pytest.fixture(scope="module")
def binary_batch():
    generator = np.random.default_rng(1)
    logits = generator.normal(0.0, 2.0, (2, 5, 6, 1)).astype("float32")
    labels = generator.integers(0, 2, (2, 5, 6)).astype("int32")
    labels[0, 1, :3] = IGNORE_INDEX
    labels[1, 4, 2:] = IGNORE_INDEX
    return labels, logits


def evaluate(loss, labels, logits):
    value = loss(labels, logits)
    assert value.dtype == "float32"
    return float(value)


# --- Independent NumPy computations. ---


def numpy_log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def numpy_pixels(labels, logits):
    """Valid pixels only: labels `(M,)` and logits `(M, C)` in float64."""
    labels = labels.reshape(-1)
    logits = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
    valid = labels != IGNORE_INDEX
    return labels[valid], logits[valid]


def numpy_cross_entropy(labels, logits, class_weights=None):
    labels, logits = numpy_pixels(labels, logits)
    nll = -numpy_log_softmax(logits)[np.arange(len(labels)), labels]
    weights = np.ones(len(labels)) if class_weights is None else np.asarray(class_weights)[labels]
    return (weights * nll).sum() / weights.sum()


def numpy_focal(labels, logits, gamma, alpha=None):
    labels, logits = numpy_pixels(labels, logits)
    log_probability = numpy_log_softmax(logits)[np.arange(len(labels)), labels]
    loss = -((1 - np.exp(log_probability)) ** gamma) * log_probability
    if isinstance(alpha, list):
        loss = loss * np.asarray(alpha)[labels]
    elif alpha is not None:
        loss = loss * alpha
    return loss.mean()


def numpy_ohem(labels, logits, thresh, min_kept_per_image, class_weights=None):
    """MMSegmentation's OHEMPixelSampler selection, then the mean CE of the kept pixels."""
    batch_size = labels.shape[0]
    labels, logits = numpy_pixels(labels, logits)
    log_probability = numpy_log_softmax(logits)[np.arange(len(labels)), labels]
    probability = np.exp(log_probability)
    sorted_probability = np.sort(probability)
    batch_kept = min_kept_per_image * batch_size
    min_threshold = sorted_probability[min(batch_kept, len(sorted_probability) - 1)]
    threshold = max(min_threshold, thresh)
    kept = probability < threshold
    weights = kept * (1.0 if class_weights is None else np.asarray(class_weights)[labels])
    return (weights * -log_probability).sum() / weights.sum()


def numpy_lovasz_grad(ground_truth_sorted):
    """`lovasz_grad` of Berman's reference code, line for line."""
    total = ground_truth_sorted.sum()
    intersection = total - np.cumsum(ground_truth_sorted)
    union = total + np.cumsum(1.0 - ground_truth_sorted)
    jaccard = 1.0 - intersection / union
    if len(ground_truth_sorted) > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def numpy_lovasz_softmax_flat(probabilities, labels):
    """`lovasz_softmax_flat(probas, labels, classes="present")` of the reference code."""
    if len(labels) == 0:
        return 0.0
    class_losses = []
    for class_id in range(probabilities.shape[1]):
        foreground = (labels == class_id).astype(np.float64)
        if foreground.sum() == 0:
            continue
        errors = np.abs(foreground - probabilities[:, class_id])
        order = np.argsort(-errors, kind="stable")
        class_losses.append(np.dot(errors[order], numpy_lovasz_grad(foreground[order])))
    return float(np.mean(class_losses)) if class_losses else 0.0


def numpy_lovasz_softmax(labels, logits, per_image):
    def flat(image_labels, image_logits):
        valid_labels, valid_logits = numpy_pixels(image_labels, image_logits)
        return numpy_lovasz_softmax_flat(np.exp(numpy_log_softmax(valid_logits)), valid_labels)

    if per_image:
        return np.mean([flat(labels[index], logits[index]) for index in range(len(labels))])
    return flat(labels, logits)


def numpy_lovasz_hinge(labels, logits, per_image):
    def flat(image_labels, image_logits):
        image_labels = image_labels.reshape(-1)
        image_logits = image_logits.reshape(-1).astype(np.float64)
        valid = image_labels != IGNORE_INDEX
        image_labels, image_logits = image_labels[valid], image_logits[valid]
        if len(image_labels) == 0:
            return 0.0
        signs = 2.0 * image_labels - 1.0
        errors = 1.0 - image_logits * signs
        order = np.argsort(-errors, kind="stable")
        grad = numpy_lovasz_grad(image_labels[order].astype(np.float64))
        return float(np.dot(np.maximum(errors[order], 0.0), grad))

    if per_image:
        return np.mean([flat(labels[index], logits[index]) for index in range(len(labels))])
    return flat(labels, logits)


def numpy_dice(labels, logits, smooth=1.0):
    labels = labels.reshape(-1)
    valid = labels != IGNORE_INDEX
    logits = logits.reshape(-1, logits.shape[-1]).astype(np.float64)[valid]
    labels = labels[valid]
    if logits.shape[-1] == 1:
        probabilities = 1.0 / (1.0 + np.exp(-logits[:, 0:1]))
        truth = (labels == 1).astype(np.float64)[:, None]
    else:
        probabilities = np.exp(numpy_log_softmax(logits))
        truth = np.eye(logits.shape[-1])[labels]
    intersection = (probabilities * truth).sum(axis=0)
    denominator = probabilities.sum(axis=0) + truth.sum(axis=0)
    return np.mean(1.0 - (2 * intersection + smooth) / (denominator + smooth))


def numpy_binary(labels, logits):
    labels = labels.reshape(-1)
    valid = labels != IGNORE_INDEX
    return labels[valid].astype(np.float64), logits.reshape(-1).astype(np.float64)[valid]


def numpy_bce(labels, logits):
    targets, logits = numpy_binary(labels, logits)
    probability = 1.0 / (1.0 + np.exp(-logits))
    return np.mean(-(targets * np.log(probability) + (1 - targets) * np.log(1 - probability)))


def numpy_binary_focal(labels, logits, gamma, alpha):
    targets, logits = numpy_binary(labels, logits)
    probability = 1.0 / (1.0 + np.exp(-logits))
    probability_true = np.where(targets == 1, probability, 1 - probability)
    alpha_true = np.where(targets == 1, alpha, 1 - alpha)
    return np.mean(-alpha_true * (1 - probability_true) ** gamma * np.log(probability_true))


# --- Multi-class losses. ---


def test_batch_has_an_absent_class_and_ignored_pixels(multiclass_batch):
    labels, _ = multiclass_batch
    assert not (labels == NUM_CLASSES - 1).any()
    assert (labels == IGNORE_INDEX).sum() == 8


@pytest.mark.parametrize("class_weights", [None, [0.5, 2.0, 1.0, 3.0]])
def test_cross_entropy_matches_numpy(multiclass_batch, class_weights):
    labels, logits = multiclass_batch
    loss = losses.build_loss("ce", class_weights=class_weights)
    expected = numpy_cross_entropy(labels, logits, class_weights)
    assert evaluate(loss, labels, logits) == pytest.approx(expected, rel=1e-5)


def test_cross_entropy_equals_keras_with_ignore_class(multiclass_batch):
    labels, logits = multiclass_batch
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)
    expected = float(keras_loss(labels, logits))
    assert evaluate(losses.CrossEntropy(), labels, logits) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("gamma", "alpha"), [(2.0, None), (0.5, 0.25), (1.0, [1.0, 0.5, 2.0, 4.0]), (0.0, None)]
)
def test_focal_matches_numpy(multiclass_batch, gamma, alpha):
    labels, logits = multiclass_batch
    loss = losses.FocalLoss(gamma=gamma, alpha=alpha)
    expected = numpy_focal(labels, logits, gamma, alpha)
    assert evaluate(loss, labels, logits) == pytest.approx(expected, rel=1e-5)


def test_focal_with_gamma_zero_is_cross_entropy(multiclass_batch):
    labels, logits = multiclass_batch
    focal = evaluate(losses.FocalLoss(gamma=0.0), labels, logits)
    assert focal == pytest.approx(evaluate(losses.CrossEntropy(), labels, logits), rel=1e-6)


@pytest.mark.parametrize(
    ("thresh", "min_kept", "class_weights"),
    [(0.7, 5, None), (0.7, 0, None), (0.05, 10, None), (0.3, 3, [1.0, 2.0, 0.5, 1.0])],
)
def test_ohem_matches_numpy(multiclass_batch, thresh, min_kept, class_weights):
    labels, logits = multiclass_batch
    loss = losses.OhemCrossEntropy(thresh=thresh, min_kept=min_kept, class_weights=class_weights)
    expected = numpy_ohem(labels, logits, thresh, min_kept, class_weights)
    assert evaluate(loss, labels, logits) == pytest.approx(expected, rel=1e-5)


def test_ohem_keeps_at_least_min_kept_hard_pixels(multiclass_batch):
    labels, logits = multiclass_batch
    # A threshold no pixel is below: the min_kept * batch least confident pixels decide.
    tiny = evaluate(losses.OhemCrossEntropy(thresh=1e-9, min_kept=4), labels, logits)
    assert tiny == pytest.approx(numpy_ohem(labels, logits, 1e-9, 4), rel=1e-5)
    # Keeping (almost) every valid pixel is the plain cross-entropy of those pixels.
    everything = evaluate(losses.OhemCrossEntropy(thresh=1.0, min_kept=10**6), labels, logits)
    assert everything == pytest.approx(numpy_cross_entropy(labels, logits), rel=1e-5)
    assert tiny > everything  # The hardest pixels have the highest loss.


def test_ohem_default_min_kept_scales_with_the_image_size():
    # 19% of each image by default: 64x64 images keep >= 781 pixels each.
    expected = round(64 * 64 * losses.OHEM_MIN_KEPT_FRACTION)
    generator = np.random.default_rng(3)
    logits = generator.normal(0.0, 3.0, (2, 64, 64, 3)).astype("float32")
    labels = generator.integers(0, 3, (2, 64, 64)).astype("int32")
    value = evaluate(losses.OhemCrossEntropy(thresh=1e-9), labels, logits)
    assert expected == 781
    assert value == pytest.approx(numpy_ohem(labels, logits, 1e-9, expected), rel=1e-5)


@pytest.mark.parametrize("per_image", [False, True])
def test_lovasz_softmax_matches_the_reference_algorithm(multiclass_batch, per_image):
    labels, logits = multiclass_batch
    loss = losses.LovaszSoftmax(per_image=per_image)
    expected = numpy_lovasz_softmax(labels, logits, per_image)
    assert evaluate(loss, labels, logits) == pytest.approx(expected, rel=1e-5)


def test_lovasz_softmax_is_zero_for_a_perfect_prediction():
    labels = np.array([[[0, 1], [2, IGNORE_INDEX]]], dtype="int32")
    logits = 100.0 * np.eye(3, dtype="float32")[np.where(labels == IGNORE_INDEX, 0, labels)]
    assert evaluate(losses.LovaszSoftmax(), labels, logits) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("smooth", [1.0, 0.1])
def test_dice_matches_numpy(multiclass_batch, smooth):
    labels, logits = multiclass_batch
    expected = numpy_dice(labels, logits, smooth)
    assert evaluate(losses.DiceLoss(smooth=smooth), labels, logits) == pytest.approx(
        expected, rel=1e-5
    )


def test_every_loss_ignores_the_ignored_pixels(multiclass_batch, binary_batch):
    """Changing the logits of ignored pixels changes no loss."""
    for (labels, logits), names in (
        (multiclass_batch, ("ce", "focal", "ohem", "lovasz", "dice")),
        (binary_batch, ("bce", "binary_focal", "lovasz_hinge", "dice")),
    ):
        changed = logits.copy()
        changed[labels == IGNORE_INDEX] = 50.0
        for name in names:
            loss = losses.build_loss(name, binary=logits.shape[-1] == 1)
            assert evaluate(loss, labels, changed) == pytest.approx(
                evaluate(loss, labels, logits), rel=1e-6
            ), name


def test_losses_are_zero_without_valid_pixels(multiclass_batch, binary_batch):
    for (labels, logits), names in (
        (multiclass_batch, ("ce", "focal", "ohem", "lovasz")),
        (binary_batch, ("bce", "binary_focal", "lovasz_hinge")),
    ):
        ignored = np.full_like(labels, IGNORE_INDEX)
        for name in names:
            loss = losses.build_loss(name, binary=logits.shape[-1] == 1)
            assert evaluate(loss, ignored, logits) == 0.0, name


# --- Binary losses. ---


def test_binary_cross_entropy_matches_numpy(binary_batch):
    labels, logits = binary_batch
    expected = numpy_bce(labels, logits)
    assert evaluate(losses.BinaryCrossEntropy(), labels, logits) == pytest.approx(
        expected, rel=1e-5
    )


@pytest.mark.parametrize(("gamma", "alpha"), [(2.0, 0.25), (0.0, 0.5), (1.5, 0.9)])
def test_binary_focal_matches_numpy(binary_batch, gamma, alpha):
    labels, logits = binary_batch
    expected = numpy_binary_focal(labels, logits, gamma, alpha)
    loss = losses.BinaryFocalLoss(gamma=gamma, alpha=alpha)
    assert evaluate(loss, labels, logits) == pytest.approx(expected, rel=1e-5)


def test_binary_focal_without_focusing_is_half_the_cross_entropy(binary_batch):
    labels, logits = binary_batch
    focal = evaluate(losses.BinaryFocalLoss(gamma=0.0, alpha=0.5), labels, logits)
    assert focal == pytest.approx(0.5 * numpy_bce(labels, logits), rel=1e-5)


@pytest.mark.parametrize("per_image", [True, False])
def test_lovasz_hinge_matches_the_reference_algorithm(binary_batch, per_image):
    labels, logits = binary_batch
    expected = numpy_lovasz_hinge(labels, logits, per_image)
    loss = losses.LovaszHinge(per_image=per_image)
    assert evaluate(loss, labels, logits) == pytest.approx(expected, rel=1e-5)


def test_binary_dice_matches_numpy(binary_batch):
    labels, logits = binary_batch
    assert evaluate(losses.DiceLoss(), labels, logits) == pytest.approx(
        numpy_dice(labels, logits), rel=1e-5
    )


def test_losses_reject_logits_of_the_wrong_form(multiclass_batch, binary_batch):
    with pytest.raises(ValueError, match="one logit channel"):
        losses.BinaryCrossEntropy()(multiclass_batch[0], multiclass_batch[1])
    with pytest.raises(ValueError, match="binary loss"):
        losses.CrossEntropy()(binary_batch[0], binary_batch[1])


# --- The spec, serialisation, precision. ---


def test_spec_sums_terms_with_their_weights(multiclass_batch):
    labels, logits = multiclass_batch
    loss = losses.build_loss("ce:1.0,lovasz:0.5,focal(gamma=1.5,alpha=0.5):0.25")
    expected = (
        numpy_cross_entropy(labels, logits)
        + 0.5 * numpy_lovasz_softmax(labels, logits, per_image=False)
        + 0.25 * numpy_focal(labels, logits, 1.5, 0.5)
    )
    assert isinstance(loss, losses.WeightedSum)
    assert evaluate(loss, labels, logits) == pytest.approx(expected, rel=1e-5)


def test_spec_options_reach_the_losses():
    terms = loss_spec.parse_loss_spec(" ohem(thresh=0.9, min_kept=5000) : 2 , lovasz(per_image=1)")
    assert terms == [
        loss_spec.LossTerm("ohem", 2.0, (("min_kept", 5000), ("thresh", 0.9))),
        loss_spec.LossTerm("lovasz", 1.0, (("per_image", True),)),
    ]
    loss = losses.build_loss("ohem(thresh=0.9,min_kept=5000)", class_weights=[1.0, 2.0])
    assert isinstance(loss, losses.OhemCrossEntropy)
    assert (loss.thresh, loss.min_kept, loss.class_weights) == (0.9, 5000, [1.0, 2.0])


def test_binary_mode_maps_names_to_binary_losses(binary_batch):
    labels, logits = binary_batch
    loss = losses.build_loss("ce:1.0,lovasz:0.5", binary=True)
    assert [type(term) for term in loss.losses] == [losses.BinaryCrossEntropy, losses.LovaszHinge]
    expected = numpy_bce(labels, logits) + 0.5 * numpy_lovasz_hinge(labels, logits, True)
    assert evaluate(loss, labels, logits) == pytest.approx(expected, rel=1e-5)
    assert loss_spec.is_binary_spec("bce,dice") and not loss_spec.is_binary_spec("ce,dice")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("xent", "unknown loss 'xent'"),
        ("ce:0", "weight of ce must be a positive number"),
        ("ce:abc", "weight of ce"),
        ("ce,,lovasz", "cannot read the term ''"),
        ("focal(beta=2)", "unknown option 'beta=2' for focal"),
        ("ohem(min_kept=2.5)", "min_kept of ohem must be int"),
        ("lovasz(per_image=maybe)", "per_image of lovasz must be bool"),
        ("ohem(thresh=0.7", "unbalanced parentheses"),
        ("ohem(thresh=1.5)", "thresh"),
        ("focal(gamma=-1)", "gamma"),
    ],
)
def test_bad_specs_name_the_flag(spec, message):
    with pytest.raises(InputError, match="--loss") as error:
        losses.build_loss(spec)
    assert message in str(error.value)


def test_binary_and_multiclass_losses_are_not_mixed_up():
    with pytest.raises(InputError, match="--loss: bce is a binary loss"):
        losses.build_loss("ce,bce")
    with pytest.raises(InputError, match="--loss: ohem has no binary form"):
        losses.build_loss("ohem", binary=True)
    with pytest.raises(InputError, match="--class_weights: no term"):
        losses.build_loss("lovasz", class_weights=[1.0, 2.0])


@pytest.mark.parametrize(
    "spec",
    [
        "ce",
        "focal(gamma=1,alpha=0.3)",
        "ohem(thresh=0.8)",
        "lovasz",
        "dice(smooth=0.5)",
        "ce:1,lovasz:0.5",
    ],
)
def test_losses_are_serialisable(multiclass_batch, spec):
    labels, logits = multiclass_batch
    weighted = spec.startswith(("ce", "ohem"))
    loss = losses.build_loss(spec, class_weights=[1.0, 2.0, 3.0, 4.0] if weighted else None)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    assert evaluate(restored, labels, logits) == evaluate(loss, labels, logits)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_losses_compute_in_float32_for_reduced_precision_logits(multiclass_batch, dtype):
    labels, logits = multiclass_batch
    low = keras.ops.cast(logits, dtype)
    rounded = keras.ops.convert_to_numpy(keras.ops.cast(low, "float32"))
    for spec in ("ce", "focal", "ohem(min_kept=5)", "lovasz", "dice"):
        loss = losses.build_loss(spec)
        value = loss(labels, low)
        assert value.dtype == "float32"
        assert float(value) == pytest.approx(evaluate(loss, labels, rounded), rel=1e-6)


# --- Training wiring: the flags of train.py. ---


@pytest.mark.parametrize(
    ("changes", "flag"),
    [
        ({"loss": "ce:1.0,lovasz:-1"}, "--loss"),
        ({"loss": "ohem(thresh=0.7"}, "--loss"),
        ({"class_weights": "balanced"}, "--class_weights"),
        ({"class_weights": "1,-2,3"}, "--class_weights"),
        ({"class_weights": "0,0"}, "--class_weights"),
        ({"weights": "imagenet21k"}, "--weights"),
        ({"output_stride": 4}, "--output_stride"),
    ],
)
def test_run_config_rejects_bad_loss_settings_naming_the_flag(changes, flag):
    with pytest.raises(InputError, match=flag):
        RunConfig(work_dir="w", dataset="full_semantic/x", **changes)


def test_run_config_accepts_loss_settings():
    config = RunConfig(
        work_dir="w",
        dataset="full_semantic/x",
        loss="ohem(thresh=0.9,min_kept=5000):1.0,lovasz:0.5",
        class_weights="0.5,1,2.5",
        weights="imagenet",
        output_stride=8,
    )
    assert parse_class_weights(config.class_weights) == [0.5, 1.0, 2.5]
    assert parse_class_weights("auto") == "auto" and parse_class_weights(None) is None


@pytest.fixture(scope="module")
def three_class_data(tmp_path_factory):
    """A built 3-class dataset whose masks follow `class_index_pattern` (12x8 images)."""
    base = tmp_path_factory.mktemp("weights")
    export = write_cvat_export(base / "export")
    config = FullSemanticConfig(name="three", source="cvat")
    build_dataset(config, export, base / "tfds")
    return base / "tfds"


def test_auto_class_weights_are_inverse_frequencies_of_the_train_split(three_class_data, caplog):
    builder, labels = data.load_builder("full_semantic/three", three_class_data)
    config = RunConfig(work_dir="w", dataset="full_semantic/three", class_weights="auto")

    weights = resolve_class_weights(config, builder, labels)

    # Three training images of class_index_pattern: w_c = N / (K * n_c).
    counts = np.bincount(class_index_pattern((12, 8), 3).reshape(-1), minlength=3) * 3
    expected = counts.sum() / (3 * counts)
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    median = resolve_class_weights(
        dataclasses.replace(config, class_weights="median"), builder, labels
    )
    assert len(median) == 3 and all(weight > 0 for weight in median)
    # Every class of this fixture has the same per-image frequency, so the median
    # methods give equal weights; the log names the method that made them.
    with caplog.at_level("INFO", logger="semseg.train.setup"):
        milder = resolve_class_weights(
            dataclasses.replace(config, class_weights="sqrt_median"), builder, labels
        )
    np.testing.assert_allclose(milder, median)
    assert "class weights (sqrt_median, split train)" in caplog.text


def test_listed_class_weights_need_one_number_per_class(three_class_data):
    builder, labels = data.load_builder("full_semantic/three", three_class_data)
    config = RunConfig(work_dir="w", dataset="full_semantic/three", class_weights="1,2,3")
    assert resolve_class_weights(config, builder, labels) == [1.0, 2.0, 3.0]
    config = RunConfig(work_dir="w", dataset="full_semantic/three", class_weights="1,2")
    with pytest.raises(InputError, match=r"--class_weights: expected 3 numbers.*background"):
        resolve_class_weights(config, builder, labels)


def tiny_model(num_classes, input_shape=(None, None, 3), aux_head=False):
    """A two-convolution stand-in for a zoo model (same input/output contract), so that
    the training wiring is tested without minutes of graph tracing."""
    images = keras.Input(input_shape, name="images")
    features = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(
        keras.layers.Rescaling(1 / 255)(images)
    )
    logits = keras.layers.Conv2D(num_classes, 1, name="logits")(features)
    outputs = [logits, keras.layers.Conv2D(num_classes, 1, name="aux_logits")(features)]
    return keras.Model(images, outputs if aux_head else logits, name="tiny")


@pytest.mark.parametrize(
    "loss",
    [
        "ohem(min_kept=20):1.0,lovasz:0.5",
        "focal(gamma=2,alpha=0.5),dice:0.5,lovasz(per_image=true):0.5",
    ],
)
def test_training_with_loss_sums_class_weights_and_aux_head(
    three_class_data, tmp_path, monkeypatch, loss
):
    monkeypatch.setitem(models.MODELS, "tiny", tiny_model)
    config = RunConfig(
        work_dir=str(tmp_path / "run"),
        dataset="full_semantic/three",
        data_dir=str(three_class_data),
        model="tiny",
        loss=loss,
        class_weights="auto" if loss.startswith("ohem") else None,
        aux_weight=0.4,
        image_size=(32, 32),
        batch_size=2,
        epochs=2,
        steps_per_epoch=2,
        optimizer="adam",
        learning_rate=0.01,
    )

    history = train(config)

    assert np.isfinite(history.history["loss"]).all()
    assert set(history.history) >= {"logits_loss", "aux_logits_loss", "val_logits_mean_iou"}
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["loss"] == loss and saved["aux_weight"] == 0.4
    assert saved["class_weights"] == config.class_weights


def test_class_weights_without_a_weighted_loss_are_refused(three_class_data, tmp_path):
    config = RunConfig(
        work_dir=str(tmp_path / "run"),
        dataset="full_semantic/three",
        data_dir=str(three_class_data),
        loss="lovasz",
        class_weights="auto",
    )
    with pytest.raises(InputError, match="--class_weights: no term of --loss 'lovasz'"):
        train(config)
    assert not (tmp_path / "run").exists()


def test_the_spec_grammar_knows_every_loss_and_imports_no_tensorflow():
    assert set(loss_spec.LOSS_OPTIONS) == set(losses.LOSSES)
    # train.py checks --loss before TensorFlow loads (it takes seconds).
    code = "import sys, semseg.config.run_config; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
