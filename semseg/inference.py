"""The `Predictor`: one trained model turned into masks for frames of any size.

Every tool that segments images (evaluation, folder prediction, video, webcam)
goes through this class, so pre- and post-processing exist once.

Example:

    predictor = Predictor.from_work_dir("runs/camvid")
    mask = predictor.predict(frame)           # (H, W) uint8 class ids
    picture = predictor.overlay(frame, mask)  # (H, W, 3) uint8
"""

from pathlib import Path

import cv2
import keras
import numpy as np
import tensorflow as tf

import models  # noqa: F401  (registers the custom layers that checkpoints refer to)
from semseg.errors import InputError
from semseg.files import write_image
from semseg.labels import colorize
from semseg.run_config import load_run
from semseg.visualization import overlay

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class Predictor:
    """Segments uint8 images with a Keras model at its training resolution.

    Images are resized to `image_size`, segmented, and the logits resized back
    (bilinear) to the image's own size before the argmax, all in one
    `tf.function`.

    Args:
        model: a Keras model taking float32 `(B, H, W, C)` pixel values 0..255 and
            returning logits `(B, H, W, num_classes)`; with several outputs the
            first is used.
        labels: `LabelSpec` of the classes.
        image_size: `(height, width)` the model runs at.
        num_channels: channels of the images the model takes.
    """

    def __init__(self, model, labels, image_size, num_channels=3):
        if len(model.outputs) > 1:
            model = keras.Model(model.inputs, model.outputs[0], name=model.name)
        self.model = model
        self.labels = labels
        self.image_size = tuple(int(size) for size in image_size)
        self.num_channels = int(num_channels)
        self._segment = tf.function(
            self._segment_batch,
            input_signature=[tf.TensorSpec([None, None, None, self.num_channels], tf.uint8)],
        )

    @classmethod
    def from_work_dir(cls, work_dir, checkpoint="best"):
        """Loads a run's `best` or `last` checkpoint, or a `.keras` file path."""
        run = load_run(work_dir)
        path = run.checkpoint_path(checkpoint)
        try:
            model = keras.saving.load_model(path, compile=False)
        except (ValueError, OSError) as error:
            raise InputError(f"{path}: not a loadable Keras model ({error})") from error
        return cls(model, run.labels, run.config.image_size, run.num_channels)

    def _segment_batch(self, images):
        original_size = tf.shape(images)[1:3]
        inputs = tf.image.resize(tf.cast(images, tf.float32), self.image_size)
        logits = tf.cast(self.model(inputs, training=False), tf.float32)
        logits = tf.image.resize(logits, original_size, method="bilinear")
        return tf.cast(tf.argmax(logits, axis=-1), tf.uint8)

    def _check(self, images):
        if images.ndim != 4 or images.shape[-1] != self.num_channels:
            raise InputError(
                f"expected images (B, H, W, {self.num_channels}) for this model. "
                f"Received: shape {images.shape}"
            )

    def predict_batch(self, images):
        """Segments a batch of equally sized images.

        Args:
            images: uint8 `(B, H, W, C)`.

        Returns:
            uint8 `(B, H, W)` class ids.
        """
        images = np.asarray(images, dtype=np.uint8)
        self._check(images)
        return self._segment(images).numpy()

    def predict(self, image):
        """Segments one uint8 `(H, W, C)` image into `(H, W)` uint8 class ids."""
        image = np.asarray(image, dtype=np.uint8)
        if image.ndim == 2:
            image = image[..., None]
        return self.predict_batch(image[None])[0]

    def colorize(self, mask):
        """Class ids `(H, W)` to the dataset's colours `(H, W, 3)`."""
        return colorize(mask, self.labels.palette)

    def overlay(self, image, mask, alpha=0.5):
        """The image with the mask's colours blended over it, `(H, W, 3)` uint8."""
        return overlay(image, mask, self.labels.palette, alpha)


def read_image(path, num_channels=3):
    """Reads an image file as uint8 RGB (or 1/4-channel) `(H, W, num_channels)`.

    Raises `InputError` naming the file when it cannot be decoded or has the wrong
    number of channels.
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"{path}: not a readable image")
    if image.dtype != np.uint8:
        raise InputError(f"{path}: expected an 8-bit image. Received: {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.shape[-1] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    if image.shape[-1] != num_channels:
        if num_channels == 3 and image.shape[-1] in (1, 4):
            image = image[..., :3] if image.shape[-1] == 4 else np.repeat(image, 3, axis=-1)
        else:
            raise InputError(
                f"{path}: the model takes {num_channels}-channel images. "
                f"Received: {image.shape[-1]} channels"
            )
    return image


def list_images(inputs):
    """Image files named by `inputs` (files or folders, searched non-recursively), sorted."""
    paths = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            paths += sorted(
                path for path in item.iterdir() if path.suffix.lower() in IMAGE_EXTENSIONS
            )
        elif item.is_file():
            paths.append(item)
        else:
            raise InputError(f"{item}: no such file or folder")
    if not paths:
        raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {', '.join(inputs)}")
    return paths


def predict_images(predictor, paths, output_dir, alpha=0.5, progress=None):
    """Writes a colour mask and an overlay for each image file.

    Output: `output_dir/masks/NAME.png` (the dataset's colours, so the masks can
    be re-imported as CVAT "Segmentation mask 1.1" annotations) and
    `output_dir/overlays/NAME.jpg`.

    Args:
        predictor: `Predictor`.
        paths: image file paths.
        output_dir: destination folder.
        alpha: weight of the mask colours in the overlays.
        progress: optional wrapper for the path iterator, e.g. `tqdm.tqdm`.

    Returns:
        Number of images written.
    """
    output_dir = Path(output_dir)
    iterator = progress(paths) if progress else paths
    for path in iterator:
        image = read_image(path, predictor.num_channels)
        mask = predictor.predict(image)
        write_image(output_dir / "masks" / f"{path.stem}.png", predictor.colorize(mask))
        write_image(
            output_dir / "overlays" / f"{path.stem}.jpg", predictor.overlay(image, mask, alpha)
        )
    return len(paths)
