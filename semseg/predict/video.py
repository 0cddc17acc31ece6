"""Video files: reading, segmenting and writing frames in real time, and what live
cameras share with them (opening a source, drawing a frame, the writer thread; the
camera loop itself is `semseg.predict.camera`).

Reading and writing run in their own threads, so inference never waits on the
decoder, the encoder or the camera:

* `segment_video` reads every frame of a file in order, segments it, and a
  writer thread draws the overlay and encodes it (the output has the input's
  size and frame rate).

Example:

    predictor = Predictor.from_work_dir("runs/camvid")
    stats = segment_video(predictor, "drive.mp4", "drive_segmented.mp4", show_fps=True)
    stats["fps"], stats["model_fps"]
"""

import logging
import os
import queue
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from semseg.base.errors import InputError
from semseg.base.files import temporary_sibling
from semseg.predict.visualization import FONT, legend, overlay

logger = logging.getLogger(__name__)

_END = object()


def parse_source(source):
    """`"0"` -> camera index 0; anything else (a device path, URL or file) as is."""
    source = str(source)
    return int(source) if source.isdigit() else source


def is_live(source):
    """Whether a source is a camera or a network stream rather than a file."""
    source = parse_source(source)
    return isinstance(source, int) or "://" in source or source.startswith("/dev/")


def check_output_video(path):
    """Raises `InputError` unless `path` is an `.mp4` in an existing folder."""
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise InputError(f"{path}: the output must be an .mp4 file")
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: no such folder for the output video")


def check_source(source):
    """Opens and closes a video file or camera, so that a command reports a bad
    `--input`/`--source` before loading its model; stream URLs are left to the run."""
    if "://" not in str(source):
        open_capture(source).release()


def open_capture(source):
    """Opens a video file, camera index, `/dev/videoN` device or stream URL.

    Raises:
        InputError: naming the source when it cannot be opened.
    """
    parsed = parse_source(source)
    if not is_live(source) and not Path(parsed).is_file():
        raise InputError(f"{parsed}: no such video file")
    capture = cv2.VideoCapture(parsed)
    if not capture.isOpened():
        capture.release()
        if isinstance(parsed, int) or str(parsed).startswith("/dev/"):
            raise InputError(
                f"camera {parsed}: cannot open it (no such device, no permission, or in use); "
                "list cameras with `v4l2-ctl --list-devices`"
            )
        if "://" in str(parsed):
            raise InputError(f"{parsed}: cannot connect to the stream")
        raise InputError(f"{parsed}: not a readable video (unknown format or corrupt file)")
    return capture


def frame_legend(class_names, palette, width=220):
    """A small white legend of all classes, for the corner of a frame."""
    return legend(class_names, palette, width, row_height=14)


def draw_frame(frame, mask, palette, alpha, legend_image=None, lines=()):
    """The overlay of one frame, with a legend in the bottom-left corner and text lines.

    Args:
        frame: uint8 RGB `(H, W, 3)`.
        mask: uint8 `(H, W)` class ids.
        palette: `[r, g, b]` per class.
        alpha: weight of the mask colours.
        legend_image: from `frame_legend`, pasted if it fits in the frame.
        lines: text lines drawn top-left (FPS, latency...).

    Returns:
        uint8 BGR `(H, W, 3)`, ready for OpenCV's writers and windows.
    """
    picture = cv2.cvtColor(overlay(frame, mask, palette, alpha), cv2.COLOR_RGB2BGR)
    if legend_image is not None:
        height, width = legend_image.shape[:2]
        if height < picture.shape[0] // 2 and width < picture.shape[1]:
            corner = picture[-height - 4 : -4, 4 : width + 4]
            corner[:] = cv2.addWeighted(corner, 0.25, legend_image[..., ::-1], 0.75, 0.0)
    for index, line in enumerate(lines):
        origin = (8, 22 + 22 * index)
        cv2.putText(picture, line, origin, FONT, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(picture, line, origin, FONT, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return picture


class VideoWriter:
    """Encodes BGR frames to an `.mp4` (MPEG-4, `mp4v`) in a background thread.

    Frames go to a temporary file beside `path`, renamed into place by
    `close(keep=True)`; `close(keep=False)` (or a failure) leaves nothing behind.

    Args:
        path: destination `.mp4`.
        fps: frame rate of the file.
        size: `(width, height)`.
        draw: optional function turning each submitted item into a BGR frame in
            the writer thread (e.g. drawing the overlay there).
    """

    def __init__(self, path, fps, size, draw=None):
        self.path = Path(path)
        check_output_video(self.path)
        self._temp_path = temporary_sibling(self.path)
        self._writer = cv2.VideoWriter(
            str(self._temp_path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), tuple(size)
        )
        if not self._writer.isOpened():
            self._temp_path.unlink(missing_ok=True)
            raise InputError(f"{self.path}: cannot write a video there (permissions or space?)")
        self._draw = draw
        self._queue = queue.Queue(maxsize=8)
        self._error = None
        self.frames = 0
        self._thread = threading.Thread(target=self._run, name="video-writer", daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._error is not None:
                continue  # keep draining so that submit() never blocks
            try:
                frame = self._draw(item) if self._draw else item
                self._writer.write(frame)
                self.frames += 1
            except Exception as error:  # re-raised by submit() and close()
                self._error = error

    def submit(self, item):
        """Queues one item (a BGR frame, or what `draw` takes); blocks while the queue is full."""
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self, keep=True):
        """Finishes the file and renames it into place (`keep`), or deletes it."""
        self._queue.put(_END)
        self._thread.join()
        self._writer.release()
        if keep and self._error is None:
            os.replace(self._temp_path, self.path)
        else:
            self._temp_path.unlink(missing_ok=True)
        if self._error is not None:
            raise self._error


class OrderedFrameReader:
    """Decodes every frame of a video file in a background thread, in order (RGB)."""

    def __init__(self, capture, buffer=8):
        self._capture = capture
        self._queue = queue.Queue(maxsize=buffer)
        self._thread = threading.Thread(target=self._run, name="frame-reader", daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            ok, frame = self._capture.read()
            if not ok:
                self._queue.put(_END)
                return
            self._queue.put(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))

    def __iter__(self):
        while True:
            frame = self._queue.get()
            if frame is _END:
                return
            yield frame


def warm_up(predictor, height, width):
    """Runs the predictor once on a blank frame of the source's size, so graph tracing
    does not count in the first frame's latency (or drop camera frames)."""
    blank = np.zeros((height, width, predictor.num_channels), dtype=np.uint8)
    predictor.predict(blank, upsample="labels")


def segment_video(predictor, input_path, output_path, alpha=0.5, show_fps=False, progress=None):
    """Writes the segmentation overlay of every frame of a video file.

    Args:
        predictor: `semseg.predict.inference.Predictor`.
        input_path: a video file OpenCV can read.
        output_path: destination `.mp4`, same size and frame rate as the input.
        alpha: weight of the mask colours.
        show_fps: draw the running end-to-end FPS on the frames.
        progress: optional `tqdm.tqdm`-like wrapper for the frame iterator.

    Returns:
        dict: `frames`, `seconds`, `fps` (end to end), `model_fps` (the model alone
        on random input at its size, batch 1), `size` `[width, height]`,
        `frame_rate`, `output`.

    Raises:
        InputError: when no frame decodes, or the file ends well before the frame count
            of its header (truncated); the output is not written then.
    """
    from semseg.runtime.latency import measure_latency  # TensorFlow: only once a video is segmented

    capture = open_capture(input_path)
    frame_rate = capture.get(cv2.CAP_PROP_FPS) or 25.0
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    model_fps = measure_latency(
        predictor.runtime, predictor.image_size, predictor.num_channels, runs=20, warmup=5
    )["fps"]
    warm_up(predictor, height, width)
    palette = predictor.labels.palette
    legend_image = frame_legend(predictor.labels.class_names, palette)

    def draw(item):
        frame, mask, lines = item
        return draw_frame(frame, mask, palette, alpha, legend_image, lines)

    writer = VideoWriter(output_path, frame_rate, (width, height), draw=draw)
    frames = OrderedFrameReader(capture)
    iterator = progress(frames, total=total, unit="frame") if progress else frames
    count, start, keep = 0, time.perf_counter(), False
    try:
        for frame in iterator:
            mask = predictor.predict(frame, upsample="labels")
            count += 1
            lines = ()
            if show_fps:
                lines = (f"{count / (time.perf_counter() - start):.1f} FPS",)
            writer.submit((frame, mask, lines))
        truncated = total is not None and count < total - max(2, total // 100)
        keep = count > 0 and not truncated
    finally:
        writer.close(keep=keep)
        capture.release()
    if count == 0:
        raise InputError(f"{input_path}: no frame could be decoded")
    if truncated:
        raise InputError(
            f"{input_path}: the video ends after {count} of the {total} frames its header "
            "declares (a truncated or damaged file), so nothing was written; keep the "
            f"readable part with `ffmpeg -i {input_path} -c copy fixed.mp4` and segment that."
        )
    seconds = time.perf_counter() - start
    return {
        "frames": count,
        "seconds": seconds,
        "fps": count / seconds,
        "model_fps": model_fps,
        "size": [width, height],
        "frame_rate": frame_rate,
        "output": str(output_path),
    }
