"""Runtimes: one interface over a Keras model and its exported forms.

A runtime is called with float32 pixels `(B, H, W, C)` (values 0..255, the
model normalises them) and returns float32 logits `(B, H, W, K)`. Exported
models run at the fixed size they were exported at (`fixed_size`); Keras and
SavedModel runtimes take any size.

| runtime             | file                  | engine                                  |
|---------------------|-----------------------|-----------------------------------------|
| `KerasRuntime`      | `.keras` checkpoint   | TensorFlow, `tf.function`               |
| `SavedModelRuntime` | SavedModel folder     | TensorFlow                              |
| `TFLiteRuntime`     | `.tflite`             | LiteRT interpreter with XNNPACK         |
| `OnnxRuntime`       | `.onnx`               | ONNX Runtime, CPU execution provider    |

Example:

    runtime = load_runtime("runs/camvid/export/ddrnet23_slim_int8.tflite", threads=2)
    logits = runtime(images)  # (1, 360, 480, 11)
"""

import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from semseg.errors import InputError


class KerasRuntime:
    """A Keras model in a compiled `tf.function` (first output only)."""

    name = "keras"
    fixed_size = None

    def __init__(self, model, num_channels):
        if len(model.outputs) > 1:
            model = keras.Model(model.inputs, model.outputs[0], name=model.name)
        self.model = model
        self._forward = tf.function(
            lambda images: tf.cast(model(images, training=False), tf.float32),
            input_signature=[tf.TensorSpec([None, None, None, num_channels], tf.float32)],
        )

    def __call__(self, images):
        return self._forward(images)


class SavedModelRuntime:
    """A SavedModel written by `semseg.export` (its `serve` endpoint)."""

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
        outputs = []
        for image in images:
            self.interpreter.set_tensor(self._input["index"], image[None])
            self.interpreter.invoke()
            outputs.append(self.interpreter.get_tensor(self._output["index"])[0].copy())
        return np.stack(outputs).astype(np.float32)


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
        return self.session.run(None, {self._input_name: images})[0].astype(np.float32)


def load_runtime(path, num_channels=3, threads=None):
    """Opens a model file by its kind: `.keras`, SavedModel folder, `.tflite` or `.onnx`.

    Raises:
        InputError: naming the path when it is missing or not a model of a known kind.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such model file or folder")
    try:
        if path.is_dir():
            if not (path / "saved_model.pb").is_file():
                raise InputError(f"{path}: a folder but not a SavedModel (no saved_model.pb)")
            return SavedModelRuntime(path)
        if path.suffix == ".keras":
            import models  # noqa: F401  (registers the layers checkpoints refer to)

            model = keras.saving.load_model(path, compile=False)
            return KerasRuntime(model, num_channels)
        if path.suffix == ".tflite":
            return TFLiteRuntime(path, threads)
        if path.suffix == ".onnx":
            return OnnxRuntime(path, threads)
    except InputError:
        raise
    except Exception as error:  # each engine raises its own types for a corrupt file
        raise InputError(f"{path}: cannot load the model ({type(error).__name__}: {error})")
    raise InputError(
        f"{path}: unknown model kind; expected a .keras, .tflite or .onnx file or a SavedModel"
    )
