"""Runtimes: one interface over a Keras model and its exported forms.

A runtime is called with float32 pixels `(B, H, W, C)` (values 0..255, the
model normalises them) and returns float32 logits `(B, H, W, K)`. Exported
models run at the fixed size they were exported at (`fixed_size`); Keras and
SavedModel runtimes take any size.

| runtime             | file                  | engine                                  |
|---------------------|-----------------------|-----------------------------------------|
| `KerasRuntime`      | `.keras` checkpoint   | TensorFlow (oneDNN), `tf.function`      |
| `XlaRuntime`        | `.keras` checkpoint   | TensorFlow, XLA-compiled `tf.function`  |
| `SavedModelRuntime` | SavedModel folder     | TensorFlow                              |
| `TFLiteRuntime`     | `.tflite`             | LiteRT interpreter with XNNPACK         |
| `OnnxRuntime`       | `.onnx`               | ONNX Runtime, CPU execution provider    |
| `OpenVinoRuntime`   | OpenVINO IR folder    | OpenVINO, CPU plugin                    |

The Keras runtimes run an inference copy of the model: batch normalisations
that follow a convolution are folded into its weights (`fold_batch_norms`), the
copy can compute in bf16 (`precision="bf16"`), and one graph is traced per input
size, so every resize inside the model has a static size (on CPU the fastest
path; see `bench/RESULTS.md` for measured runtimes).

Example:

    runtime = load_runtime("runs/camvid/export/ddrnet23_slim_int8.tflite", threads=2)
    logits = runtime(images)  # (1, 360, 480, 11)
"""

import logging
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from semseg.base.errors import InputError
from semseg.base.logits import first_output

logger = logging.getLogger(__name__)


class KerasRuntime:
    """A Keras model (first output only) run as an optimised `tf.function`.

    Args:
        model: a `keras.Model` taking float32 pixels `(B, H, W, C)`.
        num_channels: C.
        precision: `"fp32"` or `"bf16"` (`"fp16"` on GPUs), see `semseg.runtime.precision`.
        optimize: fold batch norms into convolutions (`fold_batch_norms`); the
            logits equal the original's to float32 rounding. False runs the model
            exactly as built (the reference exports are verified against).

    Attributes:
        model: the model as given (first output only), for parameter counts and export.
        inference_model: the (folded, cast) copy that runs.
    """

    name = "keras"
    fixed_size = None
    jit_compile = False

    def __init__(self, model, num_channels, precision="fp32", optimize=True):
        from semseg.runtime.precision import cast_model

        inference_model = model
        if precision != "fp32":
            inference_model = cast_model(model, precision)
        model, inference_model = first_output(model), first_output(inference_model)
        if optimize or self.jit_compile:
            inference_model = inference_copy(
                inference_model, fold=optimize, gather_resizes=self.jit_compile
            )
        self.model = model
        self.inference_model = inference_model
        self.num_channels = int(num_channels)
        self.precision = precision
        self._function = tf.function(
            lambda images: tf.cast(inference_model(images, training=False), tf.float32),
            jit_compile=self.jit_compile,
        )
        self._traces = {}

    def __call__(self, images):
        images = tf.convert_to_tensor(images, tf.float32)
        size = tuple(images.shape[1:3])
        forward = self._traces.get(size)
        if forward is None:
            # Static height and width, free batch: one trace per input size.
            spec = tf.TensorSpec([None, *size, self.num_channels], tf.float32)
            forward = self._traces[size] = self._function.get_concrete_function(spec)
        return forward(images)


class XlaRuntime(KerasRuntime):
    """`KerasRuntime` with the graph compiled by XLA (`jit_compile=True`).

    One compilation per input shape (batch size included), seconds each. The
    model's `ResizeToMatch` layers use their gather interpolation here: XLA's
    CPU bilinear resize is wrong for some size ratios (tensorflow/tensorflow#118344).
    """

    name = "xla"
    jit_compile = True


FOLDABLE_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def fold_batch_norms(model):
    """A copy of `model` for inference with batch norms folded into convolutions.

    Each `BatchNormalization` whose only input is a convolution (`Conv2D` or
    `DepthwiseConv2D`, channels last, no activation) used by nothing else is
    removed (except before an `Add` with several consumers, see
    `_feeds_shared_add`), and the convolution gets the folded kernel `kernel *
    gamma / sqrt(var + eps)` and bias `(bias - mean) * gamma / sqrt(var + eps) +
    beta`. Inference outputs equal the original's up to float32 rounding; one
    multiply-add pass over each such activation is saved. Other layers are copied
    with their weights (nested functional models recursively); `model` is not
    modified.

    Args:
        model: a functional `keras.Model` (any model of the zoo).

    Returns:
        A functional `keras.Model` with the same inputs and outputs, for
        inference only (the folded layers no longer train like the original);
        `model` itself when nothing folds or it is not functional.
    """
    return inference_copy(model, fold=True)


def inference_copy(model, fold=True, gather_resizes=False):
    """A copy of `model` rewritten for inference (`model` is not modified).

    Args:
        model: a functional `keras.Model`.
        fold: fold batch norms into convolutions (see `fold_batch_norms`).
        gather_resizes: switch `models.layers.ResizeToMatch` layers to their
            gather interpolation (`method="gather"`), which XLA compiles correctly.

    Returns:
        A functional `keras.Model`, or `model` itself when nothing changes or it
        is not functional.
    """
    from models.layers import ResizeToMatch

    pairs = _foldable_pairs(model) if fold else {}
    resizes = gather_resizes and any(
        isinstance(layer, ResizeToMatch) for layer in model._flatten_layers()
    )
    if not pairs and not resizes:
        return model
    skipped = {id(batch_norm) for _, batch_norm in pairs.values()}
    originals = {}

    def clone_function(layer):
        if id(layer) in skipped:
            return layer  # never called: `call_function` passes its input through
        config = layer.get_config()
        if id(layer) in pairs:
            config["use_bias"] = True
            config["bias_initializer"] = "zeros"
        if gather_resizes and isinstance(layer, ResizeToMatch):
            config["method"] = "gather"
        clone = layer.__class__.from_config(config)
        originals[id(clone)] = layer
        return clone

    def call_function(layer, *args, **kwargs):
        if id(layer) in skipped:
            return args[0]
        outputs = layer(*args, **kwargs)
        original = originals.get(id(layer))
        if isinstance(original, keras.layers.Layer) and not isinstance(original, keras.Model):
            if id(original) in pairs:
                layer.set_weights(_folded_weights(*pairs[id(original)]))
            elif original.weights:
                layer.set_weights(original.get_weights())
        return outputs

    try:
        copy = keras.models.clone_model(
            model, clone_function=clone_function, call_function=call_function, recursive=True
        )
    except ValueError as error:  # a subclassed, non-functional model
        logger.info("no inference copy of %s: %s", model.name, error)
        return model
    logger.debug("folded %d batch norms of %s", len(pairs), model.name)
    return copy


def _foldable_pairs(model):
    """`{id(convolution): (convolution, batch_norm)}` over `model` and its nested models."""
    pairs = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            pairs.update(_foldable_pairs(layer))
            continue
        if not isinstance(layer, keras.layers.BatchNormalization) or len(layer._inbound_nodes) != 1:
            continue
        node = layer._inbound_nodes[0]
        if len(node.input_tensors) != 1 or layer.axis not in (
            -1,
            len(node.input_tensors[0].shape) - 1,
        ):
            continue
        source = node.input_tensors[0]._keras_history.operation
        if (
            isinstance(source, FOLDABLE_CONVOLUTIONS)
            and len(source._inbound_nodes) == 1
            and len(source._outbound_nodes) == 1
            and source.data_format == "channels_last"
            and source.activation in (None, keras.activations.linear)
            and not _feeds_shared_add(layer)
        ):
            pairs[id(source)] = (source, layer)
    return pairs


def _feeds_shared_add(layer):
    """Whether `layer` feeds an `Add` whose output has several consumers.

    TensorFlow's grappler fuses convolution + bias + add + ReLU into one op and
    then drops the add's other consumers ("remapper failed: Mutation::Apply
    error"), which disables every fusion of the graph. Keeping the batch norm
    there avoids the pattern; measured as fast as folding everything.
    """
    consumers = [node.operation for node in layer._outbound_nodes]
    return any(
        isinstance(consumer, keras.layers.Add) and len(consumer._outbound_nodes) > 1
        for consumer in consumers
    )


def _folded_weights(convolution, batch_norm):
    """`[kernel, bias]` of `convolution` followed by `batch_norm` (inference mode)."""
    kernel = keras.ops.convert_to_numpy(convolution.kernel).astype(np.float64)
    channels = kernel.shape[-1] * (
        kernel.shape[-2] if isinstance(convolution, keras.layers.DepthwiseConv2D) else 1
    )
    variance = keras.ops.convert_to_numpy(batch_norm.moving_variance).astype(np.float64)
    mean = keras.ops.convert_to_numpy(batch_norm.moving_mean).astype(np.float64)
    scale = 1.0 / np.sqrt(variance + batch_norm.epsilon)
    if batch_norm.scale:
        scale = scale * keras.ops.convert_to_numpy(batch_norm.gamma)
    offset = keras.ops.convert_to_numpy(batch_norm.beta) if batch_norm.center else 0.0
    bias = np.zeros(channels)
    if convolution.use_bias:
        bias = keras.ops.convert_to_numpy(convolution.bias).astype(np.float64)
    if isinstance(convolution, keras.layers.DepthwiseConv2D):
        kernel = kernel * scale.reshape(kernel.shape[-2], kernel.shape[-1])
    else:
        kernel = kernel * scale
    bias = (bias - mean) * scale + offset
    return [kernel.astype(np.float32), bias.astype(np.float32)]


def configure_tensorflow_threads(threads):
    """Sets TensorFlow's intra-op threads to `threads` (and inter-op threads to 1-2).

    Must run before TensorFlow executes its first op; afterwards TensorFlow
    keeps its thread pools and this raises `RuntimeError`.
    """
    tf.config.threading.set_intra_op_parallelism_threads(int(threads))
    tf.config.threading.set_inter_op_parallelism_threads(min(int(threads), 2))


class SavedModelRuntime:
    """A SavedModel written by `semseg.export.export` (its `serve` endpoint)."""

    name = "saved_model"

    def __init__(self, path):
        self.model = tf.saved_model.load(str(path))
        self._serve = self.model.serve
        height, width = self._serve.input_signature[0].shape[1:3]
        self.fixed_size = (height, width) if height and width else None

    def __call__(self, images):
        return tf.cast(self._serve(tf.convert_to_tensor(images, tf.float32)), tf.float32)


class TFLiteRuntime:
    """A `.tflite` model in the LiteRT interpreter (XNNPACK delegate, `threads` threads).

    Input and output stay float32: int8 models quantize inside the graph.
    """

    name = "tflite"

    def __init__(self, path, threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads or os.cpu_count())
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.fixed_size = tuple(int(side) for side in self._input["shape"][1:3])

    def __call__(self, images):
        images = np.asarray(images, dtype=np.float32)
        outputs = np.empty((len(images), *self._output["shape"][1:]), np.float32)
        for index, image in enumerate(images):
            self.interpreter.set_tensor(self._input["index"], image[None])
            self.interpreter.invoke()
            # A view of the interpreter's buffer, copied once into the result (the
            # logits of a 480x640 frame are 23 MB: every extra copy costs milliseconds).
            outputs[index] = self.interpreter.tensor(self._output["index"])()[0]
        return outputs


class OnnxRuntime:
    """An `.onnx` model in an ONNX Runtime CPU session with `threads` intra-op threads."""

    name = "onnx"

    def __init__(self, path, threads=None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        model_input = self.session.get_inputs()[0]
        self._input_name = model_input.name
        batch, height, width = model_input.shape[:3]
        fixed = isinstance(height, int) and isinstance(width, int)
        self.fixed_size = (height, width) if fixed else None
        self._batch_of_one = batch == 1

    def __call__(self, images):
        images = np.asarray(images, dtype=np.float32)
        if self._batch_of_one and len(images) != 1:
            return np.concatenate([self(image[None]) for image in images])
        logits = self.session.run(None, {self._input_name: images})[0]
        return logits.astype(np.float32, copy=False)


# Where an OpenVINO IR exported here keeps the precision the CPU computes in ("f32" or
# "bf16"): OpenVINO's own default on CPUs with bfloat16 instructions is bf16, which changes
# the outputs of a float32 export.
OPENVINO_PRECISION = ("semseg", "inference_precision")
OPENVINO_FILE = "model.xml"


class OpenVinoRuntime:
    """An OpenVINO IR folder (`model.xml`, `model.bin`) compiled for the CPU with `threads`
    threads, for latency, in the precision the export chose (float32 unless it says
    bf16); with `perf_count`, OpenVINO also times each layer (`request.profiling_info`)."""

    name = "openvino"

    def __init__(self, path, threads=None, perf_count=False):
        import openvino

        core = openvino.Core()
        model = core.read_model(str(Path(path) / OPENVINO_FILE))
        precision = "f32"
        if model.has_rt_info(list(OPENVINO_PRECISION)):
            precision = model.get_rt_info(list(OPENVINO_PRECISION)).astype(str)
        config = {
            "INFERENCE_NUM_THREADS": threads or os.cpu_count(),
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision,
            "PERF_COUNT": perf_count,
        }
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        shape = self.compiled.input(0).get_partial_shape()
        batch, height, width = shape[0], shape[1], shape[2]
        fixed = height.is_static and width.is_static
        self.fixed_size = (height.get_length(), width.get_length()) if fixed else None
        self._batch_of_one = batch.is_static and batch.get_length() == 1

    def __call__(self, images):
        images = np.asarray(images, dtype=np.float32)
        if self._batch_of_one and len(images) != 1:
            return np.concatenate([self(image[None]) for image in images])
        self.request.infer({0: images})
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32)


def load_runtime(path, num_channels=3, threads=None, optimize=True):
    """Opens a model file by its kind: `.keras`, SavedModel folder, `.tflite`, `.onnx` or
    OpenVINO IR folder.

    Args:
        path: the model file or SavedModel folder.
        num_channels: image channels the model takes.
        threads: CPU threads of TFLite, ONNX Runtime and OpenVINO (default: all cores).
        optimize: for a `.keras` checkpoint, fold its batch norms (`KerasRuntime`).

    Raises:
        InputError: naming the path when it is missing or not a model of a known kind.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such model file or folder")
    try:
        if path.is_dir():
            if (path / OPENVINO_FILE).is_file():
                return OpenVinoRuntime(path, threads)
            if not (path / "saved_model.pb").is_file():
                raise InputError(
                    f"{path}: a folder but neither a SavedModel (saved_model.pb) nor an "
                    f"OpenVINO IR ({OPENVINO_FILE})"
                )
            return SavedModelRuntime(path)
        if path.suffix == ".keras":
            import models  # noqa: F401  (registers the layers checkpoints refer to)

            model = keras.saving.load_model(path, compile=False)
            return KerasRuntime(model, num_channels, optimize=optimize)
        if path.suffix == ".tflite":
            return TFLiteRuntime(path, threads)
        if path.suffix == ".onnx":
            return OnnxRuntime(path, threads)
    except InputError:
        raise
    except Exception as error:  # each engine raises its own types for a corrupt file
        raise InputError(f"{path}: cannot load the model ({type(error).__name__}: {error})")
    raise InputError(
        f"{path}: unknown model kind; expected a .keras, .tflite or .onnx file, a SavedModel "
        "or an OpenVINO IR folder"
    )
