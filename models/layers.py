"""Custom Keras layers shared by the models of the zoo.

Every layer here is serialisable (registered under the `semseg` package) and
written with `keras.ops` only, so the models stay backend-agnostic Keras 3.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="semseg")
class ResizeToMatch(keras.layers.Layer):
    """Bilinearly resizes a feature map to the spatial size of a reference tensor.

    The target size is read from the reference tensor when the model runs, so a
    model with a dynamic input size `(None, None, C)` upsamples to the exact size
    of any input, including sizes that are not multiples of the output stride.
    Sampling uses half-pixel centres without antialiasing, which is
    `torch.nn.functional.interpolate(mode="bilinear", align_corners=False)` and
    `tf.image.resize(method="bilinear")`.

    When the target size is static (always with the JAX and PyTorch backends, and
    with TensorFlow when the shape is known at trace time), this calls
    `keras.ops.image.resize`. Keras 3.15 rejects a tensor-valued size there
    (regression from keras-team/keras#22079, fixed by keras-team/keras#23315), so
    a dynamic target size falls back to the same interpolation written with
    `keras.ops.take`; the two paths agree to float32 rounding.

    `method="gather"` uses that interpolation for static sizes too: XLA
    compiles TensorFlow's bilinear resize wrongly on CPU for some size ratios
    (5 -> 9, 6 -> 10; tensorflow/tensorflow#118344), so the XLA runtime of
    `semseg.runtimes` switches its copy of the model to it.

    Args:
        method: `"auto"` (resize op for static sizes, gather for dynamic ones) or
            `"gather"` (always the gather interpolation).
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`).

    Call arguments:
        inputs: float tensor `(B, h, w, C)`, the feature map to resize.
        reference: tensor `(B, H, W, C')`; only its spatial size is used.

    Returns:
        Tensor `(B, H, W, C)` with the dtype of the layer's compute dtype.

    Example:
        >>> features = keras.Input((None, None, 64))
        >>> image = keras.Input((None, None, 3))
        >>> ResizeToMatch()(features, image).shape
        (None, None, None, 64)
    """

    METHODS = ("auto", "gather")

    def __init__(self, method="auto", **kwargs):
        super().__init__(**kwargs)
        if method not in self.METHODS:
            raise ValueError(f"`method` must be one of {self.METHODS}. Received: method={method!r}")
        self.method = method

    def call(self, inputs, reference):
        reference_shape = ops.shape(reference)
        height, width = reference_shape[1], reference_shape[2]
        static = isinstance(height, int) and isinstance(width, int)
        if static and self.method == "auto":
            return ops.image.resize(
                inputs, (height, width), interpolation="bilinear", data_format="channels_last"
            )
        inputs_shape = ops.shape(inputs)
        outputs = _interpolate_axis(inputs, axis=1, input_size=inputs_shape[1], output_size=height)
        return _interpolate_axis(outputs, axis=2, input_size=inputs_shape[2], output_size=width)

    def get_config(self):
        config = super().get_config()
        if self.method != "auto":  # checkpoints of the default stay as they were
            config["method"] = self.method
        return config

    def compute_output_shape(self, inputs_shape, reference_shape):
        return (inputs_shape[0], reference_shape[1], reference_shape[2], inputs_shape[3])


def _interpolate_axis(tensor, axis, input_size, output_size):
    """Linear interpolation of a 4D tensor along one spatial axis (half-pixel centres).

    Args:
        tensor: float tensor `(B, H, W, C)`.
        axis: 1 (height) or 2 (width).
        input_size: int or scalar int tensor, `tensor.shape[axis]`.
        output_size: int or scalar int tensor, the new size of `axis`.

    Returns:
        Tensor of the dtype of `tensor` whose `axis` has `output_size` elements.
    """
    scale = ops.cast(input_size, "float32") / ops.cast(output_size, "float32")
    position = (ops.cast(ops.arange(output_size), "float32") + 0.5) * scale - 0.5
    position = ops.maximum(position, 0.0)
    lower_position = ops.floor(position)
    fraction = ops.cast(position - lower_position, tensor.dtype)
    lower_index = ops.cast(lower_position, "int32")
    upper_index = ops.minimum(lower_index + 1, ops.cast(input_size, "int32") - 1)
    lower = ops.take(tensor, lower_index, axis=axis)
    upper = ops.take(tensor, upper_index, axis=axis)
    fraction_shape = (1, -1, 1, 1) if axis == 1 else (1, 1, -1, 1)
    return lower + (upper - lower) * ops.reshape(fraction, fraction_shape)


@keras.saving.register_keras_serializable(package="semseg")
class PixelAttentionFusion(keras.layers.Layer):
    """PIDNet's pixel-attention-guided fusion (`PagFM`) of two feature maps.

    Paper: Xu, Xiong and Bhattacharyya, "PIDNet: A Real-time Semantic Segmentation
    Network Inspired by PID Controllers", CVPR 2023, https://arxiv.org/abs/2206.02066
    (section 3.2). Per pixel, `sigma = sigmoid(sum_c(x_key * y_query))` weighs the
    detail features `x` against the (upsampled) context features `y`:
    `(1 - sigma) * x + sigma * y`.

    Call arguments:
        inputs: list `[x, x_key, y_query, y]` of tensors `(B, H, W, C)` (`x`, `y`)
            and `(B, H, W, C')` (`x_key`, `y_query`), all at the size of `x`.

    Returns:
        Tensor `(B, H, W, C)`.
    """

    def call(self, inputs):
        x, x_key, y_query, y = inputs
        similarity = ops.sigmoid(ops.sum(x_key * y_query, axis=-1, keepdims=True))
        return (1.0 - similarity) * x + similarity * y

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="semseg")
class StopGradient(keras.layers.Layer):
    """The identity without gradient (`keras.ops.stop_gradient`), e.g. for a training
    output whose loss must not train the head it reads."""

    def call(self, inputs):
        return ops.stop_gradient(inputs)


@keras.saving.register_keras_serializable(package="semseg")
class GroupedConv2D(keras.layers.Layer):
    """A stride-1 "same" grouped convolution without bias, as one kernel of `groups` blocks.

    The kernel has the layout of `keras.layers.Conv2D(groups=...)`, `(k, k, C / groups,
    filters)`, but each group runs as its own convolution and the outputs are
    concatenated: Keras' grouped `Conv2D` compiles through an XLA function on
    TensorFlow CPUs, which tf2onnx cannot export.

    Args:
        filters: int, output channels (a multiple of `groups`).
        kernel_size: int, square kernel size.
        groups: int, number of groups (the input channels are a multiple of it).
        kernel_initializer: initializer of the kernel.

    Call arguments:
        inputs: `(B, H, W, C)`.

    Returns:
        `(B, H, W, filters)`.
    """

    def __init__(self, filters, kernel_size, groups, kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.groups = groups
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % self.groups or self.filters % self.groups:
            raise ValueError(
                f"channels ({channels}) and filters ({self.filters}) must be multiples of "
                f"groups. Received: groups={self.groups}"
            )
        size = self.kernel_size
        self.kernel = self.add_weight(
            shape=(size, size, channels // self.groups, self.filters),
            initializer=self.kernel_initializer,
            name="kernel",
        )

    def call(self, inputs):
        group_inputs = ops.split(inputs, self.groups, axis=-1)
        group_kernels = ops.split(ops.cast(self.kernel, inputs.dtype), self.groups, axis=-1)
        outputs = [
            ops.conv(group_input, kernel, strides=1, padding="same")
            for group_input, kernel in zip(group_inputs, group_kernels)
        ]
        return ops.concatenate(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "groups": self.groups,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
