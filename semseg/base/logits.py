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
import numpy as np
import tensorflow as tf

# Above this share of mixed cells (see `upsampled_class_ids`), or with more kinds of cell
# than this (sizes of no simple ratio, e.g. 80 -> 1707 columns), TensorFlow's full resize
# and argmax is the cheaper path (bench/RESULTS.md: "Upsampling and argmax").
MIXED_CELLS_LIMIT = 0.5
CELL_KINDS_LIMIT = 32


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


def upsampled_class_ids(logits, size):
    """uint8 class ids `(B, H, W)` of logits `(B, h, w, C)` resized bilinearly to `size`
    (half-pixel centres, no antialiasing): `class_ids(tf.image.resize(logits, size))`,
    computed only where the resize can change the class.

    Every output pixel is a weighted mean of the four logit vectors around it (its
    cell). Where those four share their argmax, so does any weighted mean of them: the
    whole cell takes that class without being resized. Only the mixed cells, along class
    borders (15% of the CamVid run's cells on the dash-cam clip), are resized and
    compared, class by class: one small matrix product per class for all the cells whose
    pixels sit at the same offsets. With at most `MIXED_CELLS_LIMIT` of the cells mixed
    and `CELL_KINDS_LIMIT` kinds of cell this is 2-8 times faster than TensorFlow's full
    resize (bench/RESULTS.md); otherwise TensorFlow does the work. The two differ only
    where float rounding breaks a near-tie.

    Args:
        logits: float `(B, h, w, C)`, a NumPy array or a tensor.
        size: `(H, W)` of the class ids, any size.

    Returns:
        NumPy uint8 `(B, H, W)`.
    """
    logits = np.asarray(logits, dtype=np.float32)
    height, width = (int(value) for value in size)
    rows, columns = logits.shape[1:3]
    if (rows, columns) == (height, width):
        return class_ids(logits).numpy()
    if height % rows == 0 and width % columns == 0:  # the common case, a faster layout
        ids = [_whole_cell_class_ids(item, height // rows, width // columns) for item in logits]
    else:
        row_cells, column_cells = _AxisCells(rows, height), _AxisCells(columns, width)
        if len(row_cells.fractions) * len(column_cells.fractions) > CELL_KINDS_LIMIT:
            ids = [None]  # TensorFlow
        else:
            ids = [_cell_class_ids(item, row_cells, column_cells) for item in logits]
    if all(item is not None for item in ids):
        return np.stack(ids) if ids else np.zeros((0, height, width), np.uint8)
    return class_ids(tf.image.resize(logits, (height, width), method="bilinear")).numpy()


class _AxisCells:
    """How `size` output pixels along one axis sample `length` logits: output pixel `y`
    samples `(y + 0.5) * length / size - 0.5`, between padded logits `cell[y]` and
    `cell[y] + 1` (padded: the edges repeated, so the sampling clamps at the borders),
    `fraction[y]` of the way. The pixels of a cell are consecutive; cells whose pixels
    sit at the same fractions share a `pattern`."""

    def __init__(self, length, size):
        source = (np.arange(size) + 0.5) * (length / size) - 0.5
        lower = np.floor(source)
        self.cell = lower.astype(np.int64) + 1  # 0 .. length
        self.fraction = (source - lower).astype(np.float32)
        cells = np.arange(length + 1)
        self.start = np.searchsorted(self.cell, cells, side="left")
        self.count = np.searchsorted(self.cell, cells, side="right") - self.start
        first = self.fraction[np.minimum(self.start, size - 1)]
        keys = self.count + np.round(first, 6) * (self.count > 0)
        unique_keys, self.pattern = np.unique(keys, return_inverse=True)
        # One cell of each pattern: its output pixels' fractions.
        examples = np.array([np.flatnonzero(keys == key)[0] for key in unique_keys])
        self.fractions = [
            self.fraction[self.start[cell] : self.start[cell] + self.count[cell]]
            for cell in examples
        ]


def _cell_class_ids(logits, row_cells, column_cells):
    """`upsampled_class_ids` of one `(h, w, C)` image, or None when more than
    `MIXED_CELLS_LIMIT` of its cells are mixed."""
    padded, corner_ids, mixed = cells_of(logits)
    if mixed.sum() > MIXED_CELLS_LIMIT * mixed.size:
        return None
    mixed_rows, mixed_columns = np.nonzero(mixed)
    row_patterns = row_cells.pattern[mixed_rows]
    column_patterns = column_cells.pattern[mixed_columns]
    groups = row_patterns * (column_cells.pattern.max() + 1) + column_patterns
    ids = np.take(np.take(corner_ids, row_cells.cell, axis=0), column_cells.cell, axis=1)
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        rows, columns = mixed_rows[members], mixed_columns[members]
        row_fractions = row_cells.fractions[row_patterns[members[0]]]
        column_fractions = column_cells.fractions[column_patterns[members[0]]]
        if not len(row_fractions) or not len(column_fractions):
            continue  # a cell no output pixel samples (downscaling)
        weights = _cell_weights(row_fractions, column_fractions)
        group_ids = _weighted_class_ids(padded, rows, columns, weights)
        output_rows = row_cells.start[rows][:, None, None] + np.arange(len(row_fractions))[:, None]
        output_columns = column_cells.start[columns][:, None, None] + np.arange(
            len(column_fractions)
        )
        ids[output_rows, output_columns] = group_ids.T.reshape(
            -1, len(row_fractions), len(column_fractions)
        )
    return ids


def _whole_cell_class_ids(logits, scale_y, scale_x):
    """`_cell_class_ids` for whole scale factors: every cell `scale_y x scale_x` pixels,
    laid out by repeating the cells' classes and cropping."""
    padded, corner_ids, mixed = cells_of(logits)
    mixed_rows, mixed_columns = np.nonzero(mixed)
    if len(mixed_rows) > MIXED_CELLS_LIMIT * mixed.size:
        return None
    ids = np.repeat(np.repeat(corner_ids, scale_y, axis=0), scale_x, axis=1)
    if len(mixed_rows):
        weights = _cell_weights(_whole_fractions(scale_y), _whole_fractions(scale_x))
        mixed_ids = _weighted_class_ids(padded, mixed_rows, mixed_columns, weights)
        view = ids.reshape(mixed.shape[0], scale_y, mixed.shape[1], scale_x)
        view[mixed_rows, :, mixed_columns, :] = mixed_ids.T.reshape(-1, scale_y, scale_x)
    # Output pixel y samples y + 0.5 - s / 2 of cell units: cell rows start s - s // 2
    # before the first output row.
    top, left = scale_y - scale_y // 2, scale_x - scale_x // 2
    return ids[top : top + scale_y * logits.shape[0], left : left + scale_x * logits.shape[1]]


def _whole_fractions(scale):
    """The fractions at which a cell's `scale` output pixels sample it (`_AxisCells`)."""
    return ((np.arange(scale) + scale // 2 + 0.5 - scale / 2) / scale).astype(np.float32)


def _weighted_class_ids(padded, rows, columns, weights):
    """uint8 `(P, N)`: the class of each of the `P` weighted means (`weights`, `(P, 4)`) of
    the four corners of each cell `(rows[n], columns[n])` of the padded logits."""
    values = np.stack(
        [padded[rows + row, columns + column] for row, column in ((0, 0), (0, 1), (1, 0), (1, 1))]
    )  # (4, N, C)
    values = np.ascontiguousarray(values.transpose(2, 0, 1))  # (C, 4, N)
    if values.shape[0] == 1:
        return (weights @ values[0] >= 0.0).astype(np.uint8)
    best = weights @ values[0]
    ids = np.zeros(best.shape, np.uint8)
    for class_id in range(1, values.shape[0]):
        value = weights @ values[class_id]
        ids[value > best] = class_id
        np.maximum(best, value, out=best)
    return ids


def cells_of(logits):
    """The cells of `(h, w, C)` logits: `(padded, ids, mixed)`, the logits with their edge
    rows and columns repeated (half-pixel sampling clamps at the borders), `(h + 2, w + 2,
    C)`; uint8 `(h + 1, w + 1)` the class of each cell's top-left corner; bool `(h + 1,
    w + 1)`, whether its four corners' classes differ. Cell `(i, j)` lies between padded
    pixels `(i, j)` and `(i + 1, j + 1)`."""
    padded = np.pad(logits, ((1, 1), (1, 1), (0, 0)), mode="edge")
    ids = class_ids(padded).numpy()
    corners = ids[:-1, :-1], ids[:-1, 1:], ids[1:, :-1], ids[1:, 1:]
    mixed = (corners[0] != corners[1]) | (corners[0] != corners[2]) | (corners[0] != corners[3])
    return padded, corners[0], mixed


def _cell_weights(row_fractions, column_fractions):
    """float32 `(rows * columns, 4)`: the bilinear weights of a cell's four corners
    (top-left, top-right, bottom-left, bottom-right) for each of its output pixels."""
    row_weights = np.stack([1.0 - row_fractions, row_fractions], axis=1)
    column_weights = np.stack([1.0 - column_fractions, column_fractions], axis=1)
    weights = np.einsum("ya,xb->yxab", row_weights, column_weights)
    return weights.reshape(-1, 4).astype(np.float32)
