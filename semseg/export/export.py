"""Exporting a trained model to SavedModel, TFLite, ONNX or OpenVINO, with optional
quantization.

Every format shares the graph preparation here; the check against Keras and the
calibration images are `semseg.export.verify`, a run's export and `--format auto`
`semseg.export.run`.

Exported models take float32 pixels `(B, H, W, C)` at the run's fixed
`image_size` (batch size free for SavedModel, 1 for the others) and return logits; a JSON
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
| openvino    | -, bf16, int8 | IR folder converted from the ONNX export (int8: from   |
|             |               | the QDQ one); bf16 computes in bfloat16, float32 in    |
|             |               | and out                                                |

Example:

    path = export_model(model, "runs/camvid/export/ddrnet23_slim_int8.tflite", "tflite",
                        image_size=(360, 480), quantize="int8",
                        calibration_images=images)  # iterable of float32 (H, W, 3)
"""

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from semseg.base.errors import InputError
from semseg.base.files import atomic_path
from semseg.base.logits import first_output
from semseg.export.options import FORMATS, check_format

logger = logging.getLogger(__name__)

ONNX_OPSET = 18


def default_file_name(model_name, format_name, quantize, low_res_logits=False):
    """e.g. `ddrnet23_slim_int8.tflite`, `ddrnet23_slim_fp32.onnx`, `ddrnet23_slim_saved_model`,
    `ddrnet23_slim_bf16_openvino` (a folder); `ddrnet23_slim_lowres_int8.tflite` with
    `low_res_logits`."""
    if low_res_logits:
        model_name = f"{model_name}_lowres"
    if format_name == "saved_model":
        return f"{model_name}_{quantize}_saved_model" if quantize else f"{model_name}_saved_model"
    if format_name == "openvino":
        return f"{model_name}_{quantize or 'fp32'}_openvino"
    return f"{model_name}_{quantize or 'fp32'}{FORMATS[format_name]}"


def low_res_logits_model(model):
    """`model` without its last layer, the bilinear upsampling of the logits to the input
    size: it returns the head's logits (1/8 of the input for DDRNet and PIDNet, 1/4 for
    DeepLabV3+ and FPN). `Predictor` upsamples them once, straight to each image's own
    size, with the same half-pixel bilinear sampling.

    Raises:
        InputError: when the model's `logits` layer is not such an upsampling (or samples
            with `align_corners=True`, which the predictor's upsampling would not match).
    """
    from models.layers import ResizeToMatch

    model = first_output(model)
    try:
        upsampling = model.get_layer("logits")
    except ValueError:
        upsampling = None
    if not isinstance(upsampling, ResizeToMatch) or upsampling.align_corners:
        raise InputError(
            f"{model.name}: its logits are not a half-pixel bilinear upsampling of the "
            "head's output, so --low_res_logits cannot leave it out; export it without"
        )
    return keras.Model(model.inputs, upsampling.input[0], name=f"{model.name}_lowres")


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
    if format_name == "openvino":
        with atomic_folder(path) as temp_path:
            _write_openvino(
                model, temp_path, image_size, num_channels, quantize, calibration_images
            )
        return path
    with atomic_path(path) as temp_path:
        if format_name == "tflite":
            temp_path.write_bytes(
                _tflite_bytes(model, image_size, num_channels, quantize, calibration_images)
            )
        else:
            _write_onnx(model, temp_path, image_size, num_channels, quantize, calibration_images)
    return path


def _export_saved_model(model, path, image_size, num_channels):
    spec = tf.TensorSpec([None, *image_size, num_channels], tf.float32, name="images")
    with atomic_folder(path) as temp_path:
        model.export(str(temp_path), format="tf_saved_model", input_signature=[spec], verbose=False)
    return path


@contextlib.contextmanager
def atomic_folder(path):
    """Yields a path beside `path` for a folder to write; it replaces `path` when the block
    succeeds and is removed when it fails."""
    temp_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield temp_dir / "model"
        if path.exists():
            shutil.rmtree(path)
        os.replace(temp_dir / "model", path)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _write_openvino(model, folder, image_size, num_channels, quantize, calibration_images):
    """OpenVINO IR (`model.xml`, `model.bin`) converted from the ONNX export (int8: the
    QDQ-quantized one, which OpenVINO runs with int8 kernels); the precision the CPU
    computes in is kept in the IR (`runtimes.OPENVINO_PRECISION`)."""
    import openvino

    from semseg.runtime.runtimes import OPENVINO_PRECISION

    with tempfile.TemporaryDirectory() as scratch:
        onnx_path = Path(scratch) / "model.onnx"
        onnx_quantize = "int8" if quantize == "int8" else None
        _write_onnx(model, onnx_path, image_size, num_channels, onnx_quantize, calibration_images)
        try:
            converted = openvino.convert_model(str(onnx_path))
        except Exception as error:  # OpenVINO raises its own types for an unsupported graph
            raise InputError(
                f"OpenVINO cannot convert {model.name} ({type(error).__name__}: {error}); "
                "export it as onnx or tflite instead"
            ) from error
    hint = "bf16" if quantize == "bf16" else "f32"
    converted.set_rt_info(hint, list(OPENVINO_PRECISION))
    folder.mkdir()
    openvino.save_model(converted, str(folder / "model.xml"), compress_to_fp16=False)


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
