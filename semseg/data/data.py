"""Input pipeline: TFDS `full_semantic` datasets to batches for training and evaluation.

Every step runs inside the tf.data graph with `num_parallel_calls=AUTOTUNE`.
Images stay float32 pixel values in 0..255 (models normalise internally);
masks are int32 class ids with `IGNORE_INDEX` for pixels to skip, and are only
ever resized with nearest-neighbour interpolation.

Example:

    builder, labels = load_builder("full_semantic/camvid", data_dir="~/tensorflow_datasets")
    train, steps = train_dataset(builder, "train", image_size=(360, 480), batch_size=8)
    images, masks = next(iter(train))  # (8, 360, 480, 3) float32, (8, 360, 480) int32
"""

import tensorflow as tf
import tensorflow_datasets as tfds

from semseg.base.errors import InputError
from semseg.base.labels import IGNORE_INDEX, LabelSpec
from semseg.config.workspace import dataset_path

AUTOTUNE = tf.data.AUTOTUNE
# Decoded examples are kept in memory when the encoded dataset is smaller than this.
CACHE_LIMIT_BYTES = 256 * 2**20
# Photometric distortion ranges, as MMSegmentation's PhotoMetricDistortion.
BRIGHTNESS_DELTA = 32.0
CONTRAST_RANGE = (0.5, 1.5)
SATURATION_RANGE = (0.5, 1.5)
HUE_DELTA = 18.0 / 360.0


def load_builder(dataset, data_dir=None):
    """Opens a built dataset and reads its class names and palette from its metadata.

    Returns:
        `(builder, labels)`: a read-only `tfds.core.DatasetBuilder` and a `LabelSpec`.
    """
    path = dataset_path(dataset, data_dir)
    builder = tfds.builder_from_directory(path)
    metadata = builder.info.metadata or {}
    if "class_names" not in metadata:
        raise InputError(
            f"{path}: the dataset metadata has no class_names; was it built by full_semantic?"
        )
    return builder, LabelSpec(metadata["class_names"], metadata.get("palette"))


def build_record(builder):
    """Which build of a dataset this is, as a run's `config.json` records it.

    Returns:
        dict: `name` (TFDS full name, e.g. `"full_semantic/camvid/1.0.0"`), `version_dir`
        (the folder of the build), `source_fingerprint` (of the files it was built
        from, `full_semantic.fingerprint`; `None` for a build that predates it),
        `split_leakage` (`full_semantic.split_leakage.LeakReport` of val against train)
        and `split_groups` (`group_by` and the sequences of each side, or `None`).
    """
    metadata = builder.info.metadata or {}
    return {
        "name": builder.info.full_name,
        "version_dir": str(builder.data_dir),
        "source_fingerprint": metadata.get("source_fingerprint"),
        # How much val leaks from train (`full_semantic.split_leakage`), and the groups
        # of a build split by sequence; `None` when not measured.
        "split_leakage": metadata.get("split_leakage"),
        "split_groups": metadata.get("split_groups"),
    }


def num_channels(builder):
    """Number of image channels of a dataset."""
    return int(builder.info.features["image"].shape[-1])


def num_examples(builder, split):
    """Number of examples in `split`, with a clear error for a missing split.

    `split` is a split name or TFDS split arithmetic, e.g. `"train+val"` (the standard
    protocol of training on both) or `"train[:50%]"`.
    """
    try:
        return builder.info.splits[split].num_examples
    except (KeyError, ValueError, AssertionError) as error:
        raise InputError(
            f"{builder.data_dir}: no split {split!r}; the dataset has "
            f"{', '.join(sorted(builder.info.splits))} (joined as e.g. train+val)"
        ) from error


def read_split(builder, split, shuffle_files=False, seed=None, mask_dtype=tf.int32):
    """Reads `split` as `(image uint8 (H, W, C), mask (H, W))` pairs, masks of `mask_dtype`.

    `tf.uint8` keeps decoded masks 4x smaller (e.g. in a cache); ids fit, 255
    being `IGNORE_INDEX`.
    """
    num_examples(builder, split)
    read_config = tfds.ReadConfig(shuffle_seed=seed)
    examples = builder.as_dataset(split=split, shuffle_files=shuffle_files, read_config=read_config)
    return examples.map(
        lambda example: (example["image"], tf.cast(example["mask"][..., 0], mask_dtype)),
        num_parallel_calls=AUTOTUNE,
    )


def _maybe_cache(dataset, builder):
    if builder.info.dataset_size and builder.info.dataset_size < CACHE_LIMIT_BYTES:
        return dataset.cache()
    return dataset


def resize_pair(image, mask, size):
    """Resizes an image bilinearly and its mask with nearest neighbour to `size` (H, W)."""
    image = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear")
    mask = tf.image.resize(mask[..., None], size, method="nearest")[..., 0]
    return image, mask


def augment_pair(
    image, mask, seed, image_size, scale_range=(0.5, 2.0), photometric=True, crop_size=None
):
    """Random scale, crop, horizontal flip and photometric distortion of one example.

    The image is first scaled to cover `image_size` (the inference size), then by a
    random factor in `scale_range`, padded (image 0, mask `IGNORE_INDEX`) where smaller
    than the crop and randomly cropped to `crop_size`. Image and mask get the same
    geometry.

    Args:
        image: uint8 or float32 `(H, W, C)` pixel values in 0..255.
        mask: int32 `(H, W)` class ids.
        seed: int `(2,)` tensor for the stateless random ops: the same seed gives
            the same augmentation.
        image_size: `(height, width)` the random scale is relative to.
        scale_range: `(min, max)` random scale factor.
        photometric: whether to jitter brightness and contrast (and saturation and
            hue for 3-channel images).
        crop_size: `(height, width)` of the output (default: `image_size`).

    Returns:
        `(image float32 (height, width, C), mask int32 (height, width))` of `crop_size`.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=8)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    cover = tf.maximum(image_size[0] / shape[0], image_size[1] / shape[1])
    height, width = crop_size or image_size
    scale = cover * tf.random.stateless_uniform([], seeds[0], *scale_range)
    scaled_size = tf.cast(tf.math.round(shape * scale), tf.int32)
    image, mask = resize_pair(image, mask, scaled_size)

    pad_height = tf.maximum(height - scaled_size[0], 0)
    pad_width = tf.maximum(width - scaled_size[1], 0)
    paddings = [[0, pad_height], [0, pad_width]]
    image = tf.pad(image, paddings + [[0, 0]], constant_values=0.0)
    mask = tf.pad(mask, paddings, constant_values=IGNORE_INDEX)

    padded_size = tf.shape(mask)
    top = tf.random.stateless_uniform([], seeds[1], 0, padded_size[0] - height + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seeds[2], 0, padded_size[1] - width + 1, dtype=tf.int32)
    image = image[top : top + height, left : left + width]
    mask = mask[top : top + height, left : left + width]

    if tf.random.stateless_uniform([], seeds[3]) < 0.5:
        image = tf.reverse(image, axis=[1])
        mask = tf.reverse(mask, axis=[1])

    if photometric:
        image = photometric_distortion(image, seeds[4:])
    image.set_shape([height, width, image.shape[-1]])
    mask.set_shape([height, width])
    return image, mask


def photometric_distortion(image, seeds):
    """Random brightness, contrast, saturation and hue; float32 0..255 in and out.

    Args:
        image: float32 `(H, W, C)`; saturation and hue change only when C == 3.
        seeds: int `(4, 2)` tensor of stateless seeds.
    """
    image = image + tf.random.stateless_uniform([], seeds[0], -BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)
    mean = tf.reduce_mean(image, axis=[0, 1], keepdims=True)
    contrast = tf.random.stateless_uniform([], seeds[1], *CONTRAST_RANGE)
    image = (image - mean) * contrast + mean
    image = tf.clip_by_value(image, 0.0, 255.0)
    if image.shape[-1] == 3:
        image = tf.image.stateless_random_saturation(image / 255.0, *SATURATION_RANGE, seeds[2])
        image = tf.image.stateless_random_hue(image, HUE_DELTA, seeds[3])
        image = tf.clip_by_value(image, 0.0, 1.0) * 255.0
    return image


def steps_in_split(builder, split, batch_size):
    """Full batches in one pass over a split (at least 1): what an epoch of it is."""
    return max(num_examples(builder, split) // batch_size, 1)


def train_dataset(
    builder,
    split,
    image_size,
    batch_size,
    augment=True,
    scale_range=(0.5, 2.0),
    seed=0,
    crop_size=None,
):
    """Endless shuffled, augmented training batches.

    Args:
        builder: a `full_semantic` dataset builder (see `load_builder`).
        split: split name, e.g. `"train"`.
        image_size: `(height, width)` of the images without augmentation, and the size the
            random scale is relative to with it.
        batch_size: examples per batch; the last partial batch of a pass is dropped.
        augment: random scale/crop/flip/photometric when true; a plain resize otherwise.
        scale_range: `(min, max)` random scale factor.
        seed: seeds file order, shuffling and augmentation.
        crop_size: `(height, width)` of the augmented crops (default: `image_size`).

    Returns:
        `(dataset, steps_per_epoch)`: batches of `(images float32 (B, H, W, C),
        masks int32 (B, H, W))` and the number of batches in one pass over the split.
    """
    count = num_examples(builder, split)
    # Decoded masks are cached as uint8 (4x less memory than int32), widened when augmented.
    examples = read_split(builder, split, shuffle_files=True, seed=seed, mask_dtype=tf.uint8)
    examples = _maybe_cache(examples, builder)
    examples = examples.shuffle(min(count, 2048), seed=seed, reshuffle_each_iteration=True)
    examples = examples.repeat()
    if augment:
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        examples = tf.data.Dataset.zip(examples, seeds).map(
            lambda pair, example_seed: augment_pair(
                pair[0],
                tf.cast(pair[1], tf.int32),
                example_seed,
                image_size,
                scale_range,
                crop_size=crop_size,
            ),
            num_parallel_calls=AUTOTUNE,
        )
    else:
        examples = examples.map(
            lambda image, mask: resize_pair(image, tf.cast(mask, tf.int32), image_size),
            num_parallel_calls=AUTOTUNE,
        )
    batches = examples.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)
    return batches, steps_in_split(builder, split, batch_size)


def eval_dataset(builder, split, image_size, batch_size, max_examples=None):
    """Validation batches resized to `image_size` (masks nearest-neighbour), cached.

    Returns:
        Batches of `(images float32 (B, H, W, C), masks int32 (B, H, W))`, one pass.
    """
    examples = read_split(builder, split)
    if max_examples:
        examples = examples.take(max_examples)
    examples = examples.map(
        lambda image, mask: resize_pair(image, mask, image_size), num_parallel_calls=AUTOTUNE
    )
    return _maybe_cache(examples, builder).batch(batch_size).prefetch(AUTOTUNE)


# Width of PIDNet's boundary bands: the authors dilate the label edges with a 4x4 kernel.
EDGE_SIZE = 4


def boundary_labels(masks, edge_size=EDGE_SIZE):
    """Boundary targets of PIDNet's D head, made from the masks in the tf.data graph.

    A pixel is on an edge when its right or lower neighbour has another value
    (class or ignore), as the authors' `cv2.Canny` on the label map marks one
    pixel per class change; the edges are then dilated by an `edge_size` square
    (`tf.nn.max_pool2d` with "SAME" padding: one pixel up/left and two down/right
    for 4), giving bands of about `edge_size + 1` pixels across every boundary.

    Args:
        masks: int `(B, H, W)` class ids (255 ignored).
        edge_size: int >= 1, the dilation kernel.

    Returns:
        float32 `(B, H, W)`: 1 on boundaries, 0 elsewhere.
    """
    masks = tf.cast(masks, tf.int32)
    right = tf.not_equal(masks[:, :, :-1], masks[:, :, 1:])
    down = tf.not_equal(masks[:, :-1, :], masks[:, 1:, :])
    edges = tf.logical_or(
        tf.pad(right, [[0, 0], [0, 0], [0, 1]]), tf.pad(down, [[0, 0], [0, 1], [0, 0]])
    )
    edges = tf.cast(edges, tf.float32)[..., None]
    return tf.nn.max_pool2d(edges, edge_size, 1, "SAME")[..., 0]
