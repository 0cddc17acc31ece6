"""The `Predictor`: one trained model turned into masks for frames of any size.

Every tool that segments images (evaluation, folder prediction, video, webcam)
goes through this class, so pre- and post-processing exist once.

Example:

    predictor = Predictor.from_work_dir("runs/camvid")
    mask = predictor.predict(frame)           # (H, W) uint8 class ids
    picture = predictor.overlay(frame, mask)  # (H, W, 3) uint8
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import keras
import numpy as np
import tensorflow as tf

from full_semantic import raster
from semseg.base import logits as logits_contract
from semseg.base.errors import InputError
from semseg.base.files import image_files, write_image
from semseg.base.labels import LabelSpec, colorize
from semseg.config.run import load_run
from semseg.predict.visualization import overlay
from semseg.runtime.runtimes import KerasRuntime, load_runtime


class Predictor:
    """Segments uint8 images with a model at its training resolution.

    Images are resized to `image_size`, run through the model, and the logits
    resized back (bilinear) to the image's own size before the argmax (or, for
    a one-logit binary model, the 0.5 threshold of the sigmoid).

    A Keras model runs through `semseg.runtime.runtimes.KerasRuntime`: batch norms folded
    into the convolutions and one static-size graph per input size, the fastest
    TensorFlow path with the same logits (to float32 rounding).

    Args:
        model: a Keras model taking float32 `(B, H, W, C)` pixel values 0..255 and
            returning logits `(B, H, W, K)` (with several outputs the first is
            used), or a runtime from `semseg.runtime.runtimes` (an exported model).
        labels: `LabelSpec` of the classes.
        image_size: `(height, width)` the model runs at; an exported model's own
            fixed size takes precedence.
        num_channels: channels of the images the model takes.
    """

    def __init__(self, model, labels, image_size, num_channels=3):
        self.num_channels = int(num_channels)
        if isinstance(model, keras.Model):
            model = KerasRuntime(model, self.num_channels)
        self.runtime = model
        # The Keras model when there is one (for parameter and FLOP counts).
        self.model = model.model if isinstance(model, KerasRuntime) else None
        self.labels = labels
        self.image_size = tuple(int(size) for size in (model.fixed_size or image_size))

    @classmethod
    def from_work_dir(cls, work_dir, checkpoint="best", threads=None):
        """Loads a run's `best` or `last` checkpoint, or a model file or folder.

        Args:
            work_dir: work dir written by `train.py` (class names, sizes).
            checkpoint: `"best"`, `"last"`, a `.keras` file, or an exported model
                (`.tflite`, `.onnx`, SavedModel folder).
            threads: CPU threads for TFLite, ONNX Runtime and OpenVINO (default: all cores).
        """
        run = load_run(work_dir)
        path = run.checkpoint_path(checkpoint)
        runtime = load_runtime(path, run.num_channels, threads)
        return cls(runtime, run.labels, run.config.image_size, run.num_channels)

    @classmethod
    def load(cls, work_dir=None, checkpoint="best", model=None, threads=None):
        """A run's checkpoint (`work_dir`, `checkpoint`) or a shipped model (`model`)."""
        if (work_dir is None) == (model is None):
            raise InputError("give either --work_dir (a trained run) or --model (an exported file)")
        if model is not None:
            return cls.from_export(model, threads)
        return cls.from_work_dir(work_dir, checkpoint, threads)

    @classmethod
    def from_export(cls, path, threads=None):
        """Loads an exported model with the `PATH.json` description `export.py` wrote
        beside it, so a model file can be shipped without its work dir."""
        description_path = Path(f"{path}.json")
        if not description_path.is_file():
            raise InputError(
                f"{description_path}: not found; export.py writes it beside every exported model"
            )
        try:
            description = json.loads(description_path.read_text())
            labels = LabelSpec.from_dict(description)
            image_size = description["image_size"]
            num_channels = description["num_channels"]
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(f"{description_path}: not a model description ({error})") from error
        runtime = load_runtime(path, num_channels, threads)
        return cls(runtime, labels, image_size, num_channels)

    def _segment_batch(self, images, upsample="logits"):
        if upsample not in ("logits", "labels"):
            raise ValueError(f"upsample must be logits or labels. Received: {upsample!r}")
        original_size = images.shape[1:3]
        logits = self.runtime(resize_images(images, self.image_size))
        if upsample == "logits":
            return logits_contract.upsampled_class_ids(logits, original_size)
        # Class ids at the model's size (a head's logits, `export.py --low_res_logits`,
        # upsampled to it first), then nearest-neighbour to the image's.
        ids = logits_contract.upsampled_class_ids(logits, self.image_size)
        return np.stack([resize_ids(item, original_size) for item in ids])

    def _check(self, images):
        if images.ndim != 4 or images.shape[-1] != self.num_channels:
            raise InputError(
                f"expected images (B, H, W, {self.num_channels}) for this model. "
                f"Received: shape {images.shape}"
            )

    def predict_batch(self, images, upsample="logits"):
        """Segments a batch of equally sized images.

        Args:
            images: uint8 `(B, H, W, C)`.
            upsample: `"logits"` resizes the logits to the image size before the
                argmax (most accurate: the evaluation default; computed only along class
                borders, `semseg.base.logits.upsampled_class_ids`); `"labels"` takes the
                argmax at the model's size and upsamples the class ids with nearest
                neighbour (blockier borders, cheaper still on large frames).

        Returns:
            uint8 `(B, H, W)` class ids.
        """
        images = np.asarray(images, dtype=np.uint8)
        self._check(images)
        return self._segment_batch(images, upsample)

    def predict(self, image, upsample="logits"):
        """Segments one uint8 `(H, W, C)` image into `(H, W)` uint8 class ids."""
        image = np.asarray(image, dtype=np.uint8)
        if image.ndim == 2:
            image = image[..., None]
        return self.predict_batch(image[None], upsample)[0]

    def colorize(self, mask):
        """Class ids `(H, W)` to the dataset's colours `(H, W, 3)`."""
        return colorize(mask, self.labels.palette)

    def overlay(self, image, mask, alpha=0.5):
        """The image with the mask's colours blended over it, `(H, W, 3)` uint8."""
        return overlay(image, mask, self.labels.palette, alpha)

    # === Test-time augmentation and sliding windows ===

    def _logits(self, images):
        """Model logits `(B, h, w, K)` float32 for float32 pixels `(B, h, w, C)`."""
        fixed_size = self.runtime.fixed_size
        if fixed_size is not None and tuple(images.shape[1:3]) != tuple(fixed_size):
            raise InputError(
                f"this exported model runs at {fixed_size[0]}x{fixed_size[1]} only; use the "
                "Keras checkpoint for other --scales or --mode slide windows of another size"
            )
        logits = tf.convert_to_tensor(self.runtime(images), tf.float32)
        if tuple(logits.shape[1:3]) != tuple(images.shape[1:3]):
            # An export that returns its head's logits (`export.py --low_res_logits`).
            logits = tf.image.resize(logits, images.shape[1:3], method="bilinear")
        return logits

    def _slide_logits(self, image, crop, stride):
        """Logits of a float32 `(H, W, C)` image from overlapping `crop` windows.

        Windows start every `stride` pixels and the last one is aligned with the
        image border, so every pixel is covered; overlapping logits are averaged.
        An image smaller than the window is zero-padded, and the padding cut off.
        """
        height, width = image.shape[:2]
        crop_height, crop_width = crop
        stride_height, stride_width = stride
        rows = max(-(-(height - crop_height) // stride_height), 0) + 1
        columns = max(-(-(width - crop_width) // stride_width), 0) + 1
        total = None
        count = np.zeros((height, width, 1), dtype=np.float32)
        for row in range(rows):
            for column in range(columns):
                top = max(min(row * stride_height, height - crop_height), 0)
                left = max(min(column * stride_width, width - crop_width), 0)
                window = image[top : top + crop_height, left : left + crop_width]
                window_height, window_width = window.shape[:2]
                padded = np.zeros((crop_height, crop_width, image.shape[2]), np.float32)
                padded[:window_height, :window_width] = window
                logits = self._logits(padded[None]).numpy()[0, :window_height, :window_width]
                if total is None:
                    total = np.zeros((height, width, logits.shape[-1]), dtype=np.float32)
                total[top : top + window_height, left : left + window_width] += logits
                count[top : top + window_height, left : left + window_width] += 1.0
        return total / count

    def probabilities(self, image, flip=False, scales=(1.0,), mode="whole", crop=None, stride=None):
        """Class probabilities `(H, W, K)` of one image, averaged over augmented views.

        Args:
            image: uint8 `(H, W, C)`.
            flip: also segment the horizontally flipped image (flipped back).
            scales: factors applied to the model's `image_size` (mode `whole`) or
                to the image's own size (mode `slide`), e.g. `(0.75, 1.0, 1.25)`.
            mode: `"whole"` resizes the image to `image_size * scale`;
                `"slide"` runs `crop`-sized windows over the image at its own
                resolution (times the scale), for images larger than the training size.
            crop: `(height, width)` of the windows in slide mode (default `image_size`).
            stride: `(height, width)` step between windows (default two thirds of `crop`).

        Returns:
            float32 `(H, W, K)`; with a one-logit (binary) model, K = 2.
        """
        if mode not in ("whole", "slide"):
            raise InputError(f"--mode must be whole or slide. Received: {mode!r}")
        crop = tuple(crop or self.image_size)
        stride = tuple(stride or (max(crop[0] * 2 // 3, 1), max(crop[1] * 2 // 3, 1)))
        if min(crop) < 1 or min(stride) < 1 or any(scale <= 0 for scale in scales):
            raise InputError(
                f"--crop, --stride and --scales must be positive. Received: crop={crop}, "
                f"stride={stride}, scales={list(scales)}"
            )
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[..., None]
        height, width = image.shape[:2]
        views = [False, True] if flip else [False]
        total = None
        for scale in scales:
            for flipped in views:
                view = tf.cast(image[:, ::-1] if flipped else image, tf.float32)
                if mode == "whole":
                    size = [max(round(side * scale), 1) for side in self.image_size]
                    logits = self._logits(tf.image.resize(view, size)[None])[0]
                else:
                    size = [max(round(height * scale), 1), max(round(width * scale), 1)]
                    scaled = tf.image.resize(view, size).numpy()
                    logits = self._slide_logits(scaled, crop, stride)
                logits = tf.image.resize(logits, (height, width))
                probabilities = logits_contract.probabilities(logits).numpy()
                if flipped:
                    probabilities = probabilities[:, ::-1]
                total = probabilities if total is None else total + probabilities
        return total / (len(scales) * len(views))

    def view_probabilities(self, image):
        """Class probabilities at the model's input size `(h, w, K)` float32 of an image
        and of its mirror image (mirrored back), in one batch: `(plain, mirrored)`."""
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[..., None]
        views = tf.image.resize(
            tf.cast(np.stack([image, image[:, ::-1]]), tf.float32), self.image_size
        )
        probabilities = logits_contract.probabilities(self._logits(views)).numpy()
        return probabilities[0], probabilities[1][:, ::-1]

    def predict_augmented(self, image, **options):
        """Class ids `(H, W)` uint8 from `probabilities(image, **options)`."""
        return np.argmax(self.probabilities(image, **options), axis=-1).astype(np.uint8)


def resize_images(images, size):
    """float32 `(B, *size, C)`: uint8 or float images `(B, H, W, C)` resized bilinearly
    (half-pixel centres, no antialiasing: `tf.image.resize`'s sampling, to float32
    rounding) by OpenCV, several times faster than TensorFlow on one frame."""
    height, width = size
    resized = np.empty((len(images), height, width, images.shape[-1]), np.float32)
    for index, image in enumerate(images):
        image = cv2.resize(
            image.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR
        )
        resized[index] = image.reshape(height, width, -1)
    return resized


def resize_ids(ids, size):
    """uint8 class ids `(h, w)` resized to `size` by nearest neighbour (half-pixel
    centres)."""
    return cv2.resize(ids, (size[1], size[0]), interpolation=cv2.INTER_NEAREST_EXACT)


def read_image(path, num_channels=3):
    """An image file as uint8 `(H, W, num_channels)`: `full_semantic.raster.read_image`, the
    one decoder of the toolkit, so prediction sees the pixels training saw."""
    return raster.read_image(path, num_channels)


def list_images(inputs):
    """The image files of `--input` (`semseg.base.files.image_files`), each once, refusing two
    files whose masks would have one name."""
    paths = image_files(inputs, "--input")
    # One file named twice is one image; two files with one name would overwrite each
    # other's mask (masks keep the image's name, which CVAT matches on re-import).
    unique = list(dict.fromkeys(path.resolve() for path in paths))
    paths = [next(path for path in paths if path.resolve() == resolved) for resolved in unique]
    by_name = {}
    for path in paths:
        by_name.setdefault(path.stem, []).append(path)
    clashes = {name: group for name, group in by_name.items() if len(group) > 1}
    if clashes:
        name, group = next(iter(clashes.items()))
        more = f" (and {len(clashes) - 1} more names)" if len(clashes) > 1 else ""
        raise InputError(
            f"{', '.join(str(path) for path in group)}: {len(group)} images would all be "
            f"written as masks/{name}.png{more}; rename them or segment each folder into its "
            "own --output"
        )
    return paths


def predict_images(predictor, paths, output_dir, alpha=0.5, progress=None, cvat=None):
    """Writes a colour mask and an overlay for each image file.

    Output: `output_dir/masks/NAME.png` (the dataset's colours) and
    `output_dir/overlays/NAME.jpg`.

    Args:
        predictor: `Predictor`.
        paths: image file paths.
        output_dir: destination folder.
        alpha: weight of the mask colours in the overlays.
        progress: optional wrapper for the path iterator, e.g. `tqdm.tqdm`.
        cvat: optional open `semseg.labelling.cvat_masks.CvatMaskArchive` that gets every mask
            too (pre-annotations for CVAT).

    Returns:
        Number of images written.
    """
    output_dir = Path(output_dir)
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    # Staged in a hidden folder and moved into masks/ and overlays/ at the end, so a
    # failure part-way leaves the output as it was (a folder made for it removed).
    staging = Path(tempfile.mkdtemp(dir=output_dir, prefix=".predict.partial-"))
    finished = False
    try:
        iterator = progress(paths) if progress else paths
        for path in iterator:
            image = read_image(path, predictor.num_channels)
            mask = predictor.predict(image)
            write_image(staging / "masks" / f"{path.stem}.png", predictor.colorize(mask))
            write_image(
                staging / "overlays" / f"{path.stem}.jpg", predictor.overlay(image, mask, alpha)
            )
            if cvat is not None:
                cvat.add(path.stem, mask)
        for folder in ("masks", "overlays"):
            (output_dir / folder).mkdir(exist_ok=True)
            staged = staging / folder
            for item in sorted(staged.iterdir()) if staged.is_dir() else ():
                os.replace(item, output_dir / folder / item.name)
        finished = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not finished and not any(output_dir.iterdir()):
            output_dir.rmdir()
    return len(paths)
