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

    `align_corners=True` samples the corners of input and output onto each other
    (`interpolate(..., align_corners=True)`, how MMSegmentation's PIDNet head and
    the authors' PIDNet evaluation upsample their logits); it always uses the
    `keras.ops.take` interpolation.

    `method="gather"` uses that interpolation for static sizes too: XLA
    compiles TensorFlow's bilinear resize wrongly on CPU for some size ratios
    (5 -> 9, 6 -> 10; tensorflow/tensorflow#118344), so the XLA runtime of
    `semseg.runtime.runtimes` switches its copy of the model to it.

    Args:
        method: `"auto"` (resize op for static sizes, gather for dynamic ones) or
            `"gather"` (always the gather interpolation).
        align_corners: bool, corner-aligned sampling instead of half-pixel centres.
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

    def __init__(self, method="auto", align_corners=False, **kwargs):
        super().__init__(**kwargs)
        if method not in self.METHODS:
            raise ValueError(f"`method` must be one of {self.METHODS}. Received: method={method!r}")
        if not isinstance(align_corners, bool):
            raise ValueError(
                f"`align_corners` must be a bool. Received: align_corners={align_corners!r}"
            )
        self.method = method
        self.align_corners = align_corners

    def call(self, inputs, reference):
        reference_shape = ops.shape(reference)
        height, width = reference_shape[1], reference_shape[2]
        static = isinstance(height, int) and isinstance(width, int)
        if static and self.method == "auto" and not self.align_corners:
            return ops.image.resize(
                inputs, (height, width), interpolation="bilinear", data_format="channels_last"
            )
        inputs_shape = ops.shape(inputs)
        outputs = _interpolate_axis(
            inputs, 1, inputs_shape[1], height, align_corners=self.align_corners
        )
        return _interpolate_axis(
            outputs, 2, inputs_shape[2], width, align_corners=self.align_corners
        )

    def get_config(self):
        config = super().get_config()
        # Checkpoints of the defaults stay as they were.
        if self.method != "auto":
            config["method"] = self.method
        if self.align_corners:
            config["align_corners"] = True
        return config

    def compute_output_shape(self, inputs_shape, reference_shape):
        return (inputs_shape[0], reference_shape[1], reference_shape[2], inputs_shape[3])


def _interpolate_axis(tensor, axis, input_size, output_size, align_corners=False):
    """Linear interpolation of a 4D tensor along one spatial axis.

    Args:
        tensor: float tensor `(B, H, W, C)`.
        axis: 1 (height) or 2 (width).
        input_size: int or scalar int tensor, `tensor.shape[axis]`.
        output_size: int or scalar int tensor, the new size of `axis`.
        align_corners: sample the first and last input values at the first and last
            outputs (`align_corners=True`) instead of at half-pixel centres.

    Returns:
        Tensor of the dtype of `tensor` whose `axis` has `output_size` elements.
    """
    indices = ops.cast(ops.arange(output_size), "float32")
    if align_corners:
        # (in - 1) / (out - 1), and 0 for a one-pixel output.
        scale = ops.cast(input_size - 1, "float32") / ops.cast(
            ops.maximum(output_size - 1, 1), "float32"
        )
        position = indices * scale
    else:
        scale = ops.cast(input_size, "float32") / ops.cast(output_size, "float32")
        position = (indices + 0.5) * scale - 0.5
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
