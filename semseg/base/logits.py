"""The logits contract, in one place: what a model's first output means.

A run's model has one output of logits `(B, h, w, C)` first (auxiliary heads after
it are for training only). `C` is the number of classes, or 1 for a binary run
(`config.json` `"binary": true`): one logit, class 1 where `sigmoid >= 0.5`, that is
`logit >= 0`. (A zoo model's `num_classes` argument is this C: the run builds it with 1
for a binary run.) Every stage that turns logits into classes or probabilities (the
prediction-image callback, `Predictor`, the exported-model checks) uses these
functions instead of spelling the rule out.
"""

import keras
import tensorflow as tf


def first_output(model):
    """`model` with its first output only (the logits), or `model` itself if it has one."""
    if len(model.outputs) > 1:
        return keras.Model(model.inputs, model.outputs[0], name=model.name)
    return model


def logits_of(outputs):
    """The logits among a called model's outputs (a dict with `logits`, a list, or a tensor)."""
    if isinstance(outputs, dict):
        return outputs["logits"]
    if isinstance(outputs, (list, tuple)):
        return outputs[0]
    return outputs


def class_ids(logits):
    """uint8 class ids `(..., h, w)` of logits `(..., h, w, C)`: the argmax, or
    `logit >= 0` for one logit."""
    logits = tf.convert_to_tensor(logits)
    if logits.shape[-1] == 1:
        return tf.cast(logits[..., 0] >= 0.0, tf.uint8)
    return tf.cast(tf.argmax(logits, axis=-1), tf.uint8)


def probabilities(logits):
    """float32 class probabilities `(..., h, w, K)`: the softmax, or `[1 - p, p]` with
    `p = sigmoid(logit)` for one logit (K = 2)."""
    logits = tf.cast(logits, tf.float32)
    if logits.shape[-1] == 1:
        foreground = tf.sigmoid(logits)
        return tf.concat([1.0 - foreground, foreground], axis=-1)
    return tf.nn.softmax(logits, axis=-1)
