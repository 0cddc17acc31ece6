"""Exporting a trained model to SavedModel, TFLite or ONNX, with optional quantization.

Kept whole (~440 lines): every export format shares the graph preparation, the
calibration data and the check against Keras.

Exported models take float32 pixels `(B, H, W, C)` at the run's fixed
`image_size` (batch size free for SavedModel, 1 for TFLite and ONNX) and return logits; a JSON
description `PATH.json` beside each (classes, palette, size, how it was made,
how close it is to Keras) lets `Predictor.from_export` run it without the work dir.

| format      | quantize      | how                                                    |
|-------------|---------------|--------------------------------------------------------|
| saved_model | -, bf16       | `keras.Model.export` of the model with batch norms     |
|             |               | folded into convolutions; bf16 computes in bfloat16    |
|             |               | (fast on CPUs with AVX512-BF16), float32 in and out    |
| tflite      | -, fp16, int8 | `tf.lite.TFLiteConverter`; int8 calibrated on training |
|             |               | images, float32 input and output                       |
| onnx        | -, int8       | tf2onnx on the frozen graph (opset 18); int8 by ONNX   |
|             |               | Runtime's static QDQ quantization                      |

Example:

    path = export_model(model, "runs/camvid/export/ddrnet23_slim_int8.tflite", "tflite",
                        image_size=(360, 480), quantize="int8",
                        calibration_images=images)  # iterable of float32 (H, W, 3)
"""

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from semseg.base.errors import InputError
from semseg.base.files import atomic_path
from semseg.base.logits import first_output

logger = logging.getLogger(__name__)

FORMATS = {"saved_model": "", "tflite": ".tflite", "onnx": ".onnx"}
QUANTIZATIONS = {
    "saved_model": (None, "bf16"),
    "tflite": (None, "fp16", "int8"),
    "onnx": (None, "int8"),
}
ONNX_OPSET = 18


def check_format(format_name, quantize):
    """Raises `InputError` for an unknown format or a quantization it does not offer."""
    if format_name not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}. Received: {format_name!r}")
    if quantize not in QUANTIZATIONS[format_name]:
        offered = [value for value in QUANTIZATIONS[format_name] if value] or ["none"]
        raise InputError(
            f"--quantize {quantize} is not available for {format_name} (offered: "
            f"{', '.join(offered)}); fp16 and int8 TFLite run best on CPUs and phones"
        )


def default_file_name(model_name, format_name, quantize):
    """e.g. `ddrnet23_slim_int8.tflite`, `ddrnet23_slim_fp32.onnx`, `ddrnet23_slim_saved_model`."""
    if format_name == "saved_model":
        return f"{model_name}_{quantize}_saved_model" if quantize else f"{model_name}_saved_model"
    return f"{model_name}_{quantize or 'fp32'}{FORMATS[format_name]}"


def _concrete_function(model, image_size, num_channels, batch_size=None):
    forward = tf.function(lambda images: model(images, training=False))
    spec = tf.TensorSpec([batch_size, *image_size, num_channels], tf.float32, name="images")
    return forward.get_concrete_function(spec)


def export_model(
    model,
    path,
    format_name,
    image_size,
    num_channels=3,
    quantize=None,
    calibration_images=None,
):
    """Writes `model` (first output only) in `format_name` to `path`, atomically.

    Args:
        model: Keras model taking float32 pixels `(B, H, W, C)`.
        path: destination file (a folder for SavedModel); replaced if present.
        format_name: `"saved_model"`, `"tflite"` or `"onnx"`.
        image_size: `(height, width)` the exported model runs at.
        num_channels: C.
        quantize: `None`, `"bf16"` (SavedModel), `"fp16"` (TFLite) or `"int8"` (TFLite, ONNX).
        calibration_images: for int8, an iterable of float32 `(H, W, C)` images at
            `image_size` from the training data (100 or so).

    Returns:
        `Path` of the exported model.
    """
    check_format(format_name, quantize)
    if quantize == "int8" and calibration_images is None:
        raise InputError("int8 quantization needs calibration images from the training split")
    model = first_output(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if format_name == "saved_model":
        from semseg.runtime.precision import cast_model
        from semseg.runtime.runtimes import fold_batch_norms

        if quantize == "bf16":
            model = cast_model(model, "bf16")
        return _export_saved_model(fold_batch_norms(model), path, image_size, num_channels)
    with atomic_path(path) as temp_path:
        if format_name == "tflite":
            temp_path.write_bytes(
                _tflite_bytes(model, image_size, num_channels, quantize, calibration_images)
            )
        else:
            _write_onnx(model, temp_path, image_size, num_channels, quantize, calibration_images)
    return path


def _export_saved_model(model, path, image_size, num_channels):
    temp_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        spec = tf.TensorSpec([None, *image_size, num_channels], tf.float32, name="images")
        model.export(
            str(temp_dir / "model"), format="tf_saved_model", input_signature=[spec], verbose=False
        )
        if path.exists():
            shutil.rmtree(path)
        os.replace(temp_dir / "model", path)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    return path


def _tflite_bytes(model, image_size, num_channels, quantize, calibration_images):
    # Converting `from_concrete_functions` gives NaN outputs with Keras 3 models
    # (TF 2.21); going through a SavedModel keeps the weights.
    with tempfile.TemporaryDirectory() as scratch:
        saved_model = Path(scratch) / "saved_model"
        spec = tf.TensorSpec([1, *image_size, num_channels], tf.float32, name="images")
        model.export(
            str(saved_model), format="tf_saved_model", input_signature=[spec], verbose=False
        )
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
        return _convert(converter, quantize, calibration_images)


def _convert(converter, quantize, calibration_images):
    if quantize == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        images = [np.asarray(image, dtype=np.float32)[None] for image in calibration_images]

        def representative_dataset():
            for image in images:
                yield [image]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def _write_onnx(model, path, image_size, num_channels, quantize, calibration_images):
    import onnx
    import tf2onnx

    frozen = convert_variables_to_constants_v2(
        _concrete_function(model, image_size, num_channels, batch_size=1)
    )
    proto, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(),
        input_names=[tensor.name for tensor in frozen.inputs],
        output_names=[tensor.name for tensor in frozen.outputs],
        opset=ONNX_OPSET,
    )
    resize_to_exact_sizes(proto, frozen.graph)
    if quantize != "int8":
        onnx.save(proto, str(path))
        return
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    input_name = proto.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.images = iter(calibration_images)

        def get_next(self):
            image = next(self.images, None)
            if image is None:
                return None
            return {input_name: np.asarray(image, dtype=np.float32)[None]}

    with tempfile.TemporaryDirectory() as scratch:
        float_path = Path(scratch) / "float.onnx"
        onnx.save(proto, str(float_path))
        # 7-bit weights (reduce_range): without VNNI, ONNX Runtime's uint8 x int8
        # convolutions sum pairs of products in int16 (VPMADDUBSW), which saturates with
        # full-range per-channel weights. On the AVX2 machine that cost a CamVid
        # DDRNet-lite 4.98 mIoU points (62.18 -> 57.20); with 7-bit weights, 0.36, and no
        # time. A model exported anywhere may run on such a CPU, so always.
        quantize_static(
            str(float_path),
            str(path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )


def resize_to_exact_sizes(proto, tf_graph):
    """Rewrites `Resize(scales)` nodes of a tf2onnx graph to exact output `sizes`.

    tf2onnx turns TensorFlow's resize to a constant size into float `scales`,
    and ONNX then takes `floor(input * scale)`: 3 -> 20 becomes 19 (scale
    6.6666665). tf2onnx names the transpose after each `Resize` like the
    TensorFlow resize op it replaces, so the exact output shape is read from the
    TensorFlow graph (traced at batch 1, so fully static) and written as 4-D
    `sizes`. (Sizes on the spatial `axes` only, which would keep the batch free,
    break ONNX Runtime's layout optimizer on int8 graphs.)

    Args:
        proto: `onnx.ModelProto`, modified in place.
        tf_graph: the `tf.Graph` it was converted from.

    Returns:
        Number of rewritten nodes.
    """
    from onnx import numpy_helper

    consumers = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    initializers = {initializer.name: initializer for initializer in proto.graph.initializer}
    rewritten = 0
    for node in proto.graph.node:
        if node.op_type != "Resize" or len(node.input) != 3 or node.input[2] not in initializers:
            continue
        shape = None
        for consumer in consumers.get(node.output[0], []):
            try:
                shape = tf_graph.get_operation_by_name(consumer.name).outputs[0].shape
            except KeyError:
                continue
        if shape is None or not shape.is_fully_defined():
            raise RuntimeError(f"ONNX export: no static TensorFlow shape for {node.name}")
        batch, height, width, channels = shape.as_list()
        sizes = np.array([batch, channels, height, width], dtype=np.int64)
        sizes_name, no_scales_name = f"{node.name}_sizes", f"{node.name}_no_scales"
        proto.graph.initializer.append(numpy_helper.from_array(sizes, sizes_name))
        # An empty tensor rather than an omitted input: quantization tools drop
        # empty input names and would shift `sizes` into the `scales` slot.
        no_scales = numpy_helper.from_array(np.zeros(0, np.float32), no_scales_name)
        proto.graph.initializer.append(no_scales)
        unused = node.input[2]
        del node.input[2:]
        node.input.extend([no_scales_name, sizes_name])
        if not any(unused in other.input for other in proto.graph.node):
            proto.graph.initializer.remove(initializers[unused])
        rewritten += 1
    return rewritten


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


def export_run(
    work_dir,
    format_name,
    quantize=None,
    checkpoint="best",
    output=None,
    calibration_steps=100,
    verify_examples=20,
    threads=None,
):
    """Everything `export.py` does: export a run's checkpoint, verify it, describe it.

    The model is exported and verified under a temporary name, so a model that
    fails to load or to verify never lands at its destination.

    Returns:
        `(path, description)`: the exported model and the dict written to `PATH.json`.
    """
    import datetime

    from semseg.base.files import write_json
    from semseg.config.run import load_run
    from semseg.data import data
    from semseg.predict.inference import Predictor
    from semseg.runtime.runtimes import load_runtime

    check_format(format_name, quantize)
    run = load_run(work_dir)
    if quantize == "int8" and not int8_pays_off():
        logger.warning(
            "this CPU has no VNNI (int8 dot products): int8 models usually run slower than "
            "fp32 on it; export.py --format auto measures which export is fastest here"
        )
    # The reference is the Keras model exactly as trained (no folded batch norms).
    reference = load_runtime(run.checkpoint_path(checkpoint), run.num_channels, optimize=False)
    keras_predictor = Predictor(reference, run.labels, run.config.image_size, run.num_channels)
    if keras_predictor.model is None:
        raise InputError(f"--checkpoint {checkpoint}: export starts from a Keras checkpoint")
    try:
        builder, _ = data.load_builder(run.config.dataset, run.config.data_dir)
    except InputError as error:
        # E.g. a run of convert_weights.py, whose dataset the user has not built: the
        # export is verified on generated images; int8 needs training images to calibrate.
        if quantize == "int8":
            raise
        logger.warning("%s; verifying the export on generated images", error)
        builder = None
    name = default_file_name(run.config.model, format_name, quantize)
    path = Path(output) if output else run.config.work_path / "export" / name
    images = None
    if quantize == "int8":
        images = calibration_images(
            builder, run.config.train_split, keras_predictor.image_size, calibration_steps
        )
    temp_path = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        export_model(
            keras_predictor.model,
            temp_path,
            format_name,
            keras_predictor.image_size,
            run.num_channels,
            quantize,
            images,
        )
        exported = Predictor(
            load_runtime(temp_path, run.num_channels, threads),
            run.labels,
            run.config.image_size,
            run.num_channels,
        )
        description = run.labels.to_dict()
        description.update(
            image_size=list(keras_predictor.image_size),
            num_channels=run.num_channels,
            model=run.config.model,
            format=format_name,
            quantize=quantize,
            source=str(run.checkpoint_path(checkpoint)),
            created=datetime.datetime.now().isoformat(timespec="seconds"),
            calibration_images=len(images) if images else 0,
        )
        description.update(
            compare_with_keras(
                keras_predictor, exported, builder, run.config.val_split, verify_examples
            )
        )
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(temp_path, path)
    finally:
        if temp_path.is_dir():
            shutil.rmtree(temp_path, ignore_errors=True)
        else:
            temp_path.unlink(missing_ok=True)
    write_json(f"{path}.json", description)
    return path, description


# What `export.py --format auto` tries: every CPU format and precision of the runtimes
# `predict*.py --model` run (SavedModel is left out: always slower than these here).
AUTO_CANDIDATES = (
    ("tflite", None),
    ("tflite", "fp16"),
    ("tflite", "int8"),
    ("onnx", None),
    ("onnx", "int8"),
)


# The CPU flags that decide which precision is fast (recorded with every timing).
SPEED_FLAGS = {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}


def int8_pays_off():
    """Whether this CPU has the int8 dot-product instructions (VNNI) that make int8
    inference faster than fp32. Without them (AVX2 only) TFLite's and ONNX Runtime's int8
    kernels emulate the dot products and run slower than fp32 (bench/RESULTS.md: "Why int8
    does not pay off")."""
    from semseg.base.cpu import cpu_flags

    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def export_fastest(
    work_dir,
    checkpoint="best",
    output=None,
    calibration_steps=100,
    verify_examples=20,
    threads=None,
    candidates=AUTO_CANDIDATES,
    runs=20,
    report=logger.info,
):
    """`export.py --format auto`: exports each candidate, times it on this machine at the
    run's input size (batch 1, medians of `runs` calls) and keeps the fastest.

    Candidates are exported and verified by `export_run` into a temporary folder; the
    fastest moves to `output` (default: `W/export/<its default name>`) with its `.json`,
    which also records every candidate's time and the CPU (`"speed"`). The others go.

    Returns:
        `(path, description)` of the kept export, as `export_run`.

    Raises:
        InputError: when no candidate could be exported (e.g. int8 only, without the
            training data to calibrate on).
    """
    from semseg.config.run import load_run
    from semseg.runtime.latency import device_description, measure_latency
    from semseg.runtime.runtimes import load_runtime

    run = load_run(work_dir)
    export_dir = run.config.work_path / "export"
    export_dir.mkdir(parents=True, exist_ok=True)
    timings = []
    with tempfile.TemporaryDirectory(prefix=".auto-", dir=export_dir) as scratch:
        exported = {}
        for format_name, quantize in candidates:
            check_format(format_name, quantize)
            name = default_file_name(run.config.model, format_name, quantize)
            try:
                path, description = export_run(
                    work_dir, format_name, quantize, checkpoint, Path(scratch) / name,
                    calibration_steps, verify_examples, threads,
                )  # fmt: skip
            except InputError as error:
                report(f"{format_name} {quantize or 'fp32'}: left out ({error})")
                continue
            runtime = load_runtime(path, run.num_channels, threads)
            timing = measure_latency(
                runtime, tuple(run.config.image_size), run.num_channels, runs=runs
            )
            exported[(format_name, quantize)] = (path, description)
            timings.append(
                {
                    "format": format_name,
                    "quantize": quantize,
                    "median_ms": round(float(timing["p50"]), 3),
                    "p95_ms": round(float(timing["p95"]), 3),
                }
            )
            report(f"{format_name} {quantize or 'fp32'}: {timing['p50']:.1f} ms (median)")
        if not timings:
            raise InputError(f"{work_dir}: none of the candidate exports could be made")
        best = min(timings, key=lambda row: row["median_ms"])
        key = (best["format"], best["quantize"])
        path, description = exported[key]
        target = Path(output) if output else export_dir / path.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(path, target)
        os.replace(f"{path}.json", f"{target}.json")
    from semseg.base.cpu import cpu_flags
    from semseg.base.files import write_json

    notable = sorted(cpu_flags() & SPEED_FLAGS)
    description["speed"] = {
        "candidates": sorted(timings, key=lambda row: row["median_ms"]),
        "image_size": list(run.config.image_size),
        "runs": runs,
        "cpu_flags": notable,
        **device_description(),
    }
    write_json(f"{target}.json", description)
    return target, description
