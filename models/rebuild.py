"""Rebuilding a `keras.applications` network from its functional config: the
preprocessing layers removed, another input shape, and strides beyond an output stride
turned into dilation (`rebuild_config`; why and how: `models.encoders`).
"""

import copy

STRIDED_LAYERS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")
POOLING_LAYERS = ("MaxPooling2D", "AveragePooling2D")
PREPROCESSING_LAYERS = ("Rescaling", "Normalization")


def _history_entries(layer_config):
    """`keras_history` entries `[layer_name, node_index, tensor_index]` of a layer's inputs."""
    entries = []

    def visit(value):
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                entries.append(value["config"]["keras_history"])
            else:
                for item in value.values():
                    visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)

    visit(layer_config["inbound_nodes"])
    return entries


def _inbound_names(layer_config):
    """Names of the layers whose outputs feed `layer_config` (a functional layer config)."""
    return [entry[0] for entry in _history_entries(layer_config)]


def _replace_inbound(value, replacements):
    """Points `keras_history` entries naming a removed layer to that layer's input."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = value["config"]["keras_history"]
            while history[0] in replacements:
                history = list(replacements[history[0]])
            value["config"]["keras_history"] = history
        else:
            for item in value.values():
                _replace_inbound(item, replacements)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _replace_inbound(item, replacements)


def rebuild_config(config, input_shape, output_stride):
    """The functional config of a network, edited for `input_shape` and `output_stride`.

    Removes the preprocessing layers, sets the input shape, removes every
    `build_config` (layers are built on their real inputs when the model is
    reconstructed) and converts strides beyond `output_stride` into dilation.
    """
    config = copy.deepcopy(config)
    layers = []
    replacements = {}
    for layer in config["layers"]:
        if layer["class_name"] in PREPROCESSING_LAYERS:
            (source,) = _history_entries(layer)
            replacements[layer["name"]] = tuple(source)
            continue
        layer.pop("build_config", None)
        layers.append(layer)
    for layer in layers:
        _replace_inbound(layer["inbound_nodes"], replacements)
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_shape"] = [None, *input_shape]
    config["layers"] = layers
    _dilate(layers, output_stride)
    return config


def _dilate(layers, output_stride):
    """Converts the strides that go beyond `output_stride` into dilation, in place.

    `layers` are functional layer configs in topological order. The nominal
    stride of every layer's input is propagated through the graph; a layer
    whose nominal input stride exceeds `output_stride` gets the dilation rate
    `input_stride / output_stride`, and a stride-2 layer whose output would
    exceed it gets stride 1.
    """
    by_name = {layer["name"]: layer for layer in layers}
    output_strides = {}
    for layer in layers:
        layer_config = layer["config"]
        input_stride = max([output_strides[name] for name in _inbound_names(layer)], default=1)
        strides = layer_config.get("strides")
        step = (
            int(strides[0])
            if strides is not None and layer["class_name"] in (STRIDED_LAYERS + POOLING_LAYERS)
            else 1
        )
        output_strides[layer["name"]] = input_stride * step
        if layer["class_name"] not in STRIDED_LAYERS + POOLING_LAYERS:
            continue
        kernel = layer_config.get("kernel_size") or layer_config.get("pool_size")
        kernel = int(kernel[0])
        rate = max(input_stride // output_stride, 1)
        remove_stride = step > 1 and input_stride * step > output_stride
        if layer["class_name"] in POOLING_LAYERS:
            if remove_stride or rate > 1:
                raise ValueError(
                    f"Cannot dilate pooling layer {layer['name']!r} to output stride "
                    f"{output_stride}. Received: output_stride={output_stride}"
                )
            continue
        if remove_stride:
            layer_config["strides"] = [1, 1]
        if kernel > 1 and rate > 1:
            layer_config["dilation_rate"] = [rate, rate]
        if layer_config.get("padding") == "valid" and kernel > 1 and (remove_stride or rate > 1):
            (source,) = _inbound_names(layer)
            padding_layer = by_name[source]
            if padding_layer["class_name"] != "ZeroPadding2D":
                raise ValueError(
                    f"Cannot dilate layer {layer['name']!r}: a 'valid' convolution without "
                    "an explicit ZeroPadding2D before it"
                )
            pad = rate * (kernel - 1) // 2
            padding_layer["config"]["padding"] = [[pad, pad], [pad, pad]]
