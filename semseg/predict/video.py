"""Video files and live cameras: reading, segmenting and writing frames in real time.

Kept whole (~510 lines): file, camera and stream sources share the reader thread, the
writer and the FPS accounting.

Reading and writing run in their own threads, so inference never waits on the
decoder, the encoder or the camera:

* `segment_video` reads every frame of a file in order, segments it, and a
  writer thread draws the overlay and encodes it (the output has the input's
  size and frame rate).
* `run_realtime` always segments the newest camera frame (older ones are
  dropped, so latency stays low), shows or records the overlay, and reconnects
  a dropped stream a few times before it stops with a summary.

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
from semseg.predict.live_view import DEFAULT_PORT, LiveView
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


class LatestFrameReader:
    """Keeps only the newest frame of a camera or stream, read in a background thread.

    A video file given as the source plays at its own frame rate, like a camera.
    When reads fail, the source is reopened up to `retries` times (`retry_delay`
    seconds apart, with `reopen()`) before the reader gives up.

    Attributes:
        captured: frames read from the source.
        reconnects: times the source was reopened.
        failed: set when the source stopped for good (not the end of a file).
    """

    def __init__(self, source, capture, retries=3, retry_delay=1.0, reopen=None):
        self.source = source
        self.retries = retries
        self.retry_delay = retry_delay
        self._reopen = reopen or (lambda: cv2.VideoCapture(parse_source(source)))
        self.captured = 0
        self.reconnects = 0
        self.failed = None
        self._capture = capture
        self._live = is_live(source)
        self._period = 0.0 if self._live else 1.0 / (capture.get(cv2.CAP_PROP_FPS) or 25.0)
        self._condition = threading.Condition()
        self._frame = None
        self._index = 0
        self._finished = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera-reader", daemon=True)
        self._thread.start()

    def _run(self):
        next_time = time.perf_counter()
        failures = 0
        while not self._stop.is_set():
            ok, frame = self._capture.read()
            if not ok:
                if not self._live:
                    break  # end of the file
                failures += 1
                if failures > self.retries:
                    self.failed = (
                        f"{self.source}: the stream stopped and {self.retries} reconnects failed"
                    )
                    break
                logger.warning(
                    "%s: no frame; reconnecting (%d/%d)", self.source, failures, self.retries
                )
                self._capture.release()
                time.sleep(self.retry_delay)
                self._capture = self._reopen()
                self.reconnects += 1
                continue
            failures = 0
            self.captured += 1
            with self._condition:
                self._frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                self._index += 1
                self._condition.notify_all()
            if self._period:
                next_time += self._period
                time.sleep(max(next_time - time.perf_counter(), 0.0))
        with self._condition:
            self._finished = True
            self._condition.notify_all()

    def next_frame(self, last_index):
        """Waits for a frame newer than `last_index`.

        Returns:
            `(index, frame)`, or `(None, None)` once the source has ended.
        """
        with self._condition:
            while self._index <= last_index and not self._finished:
                self._condition.wait(timeout=0.5)
            if self._index <= last_index:
                return None, None
            return self._index, self._frame

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._capture.release()


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


def has_gui():
    """Whether this OpenCV build can open windows (opencv-python-headless cannot)."""
    return _gui_backend() not in ("", "NONE")


def _gui_backend():
    for line in cv2.getBuildInformation().splitlines():
        name, _, value = line.strip().partition(":")
        if name == "GUI":
            return value.strip().upper()
    return ""


def run_realtime(
    predictor,
    source,
    headless=False,
    max_frames=None,
    record=None,
    alpha=0.5,
    retries=3,
    report=print,
    window="semseg (q quits)",
    port=None,
):
    """Segments a camera, stream or file live until `q`, the end, or `max_frames`.

    Args:
        predictor: `semseg.predict.inference.Predictor`.
        source: camera index (`0`), `/dev/videoN`, `rtsp://...` URL or a video file.
        headless: no window; `report` gets one line of FPS and latency per second.
        max_frames: stop after this many segmented frames.
        record: optional `.mp4` path receiving the overlays.
        alpha: weight of the mask colours.
        retries: reconnects of a dropped stream before giving up.
        report: function receiving the URL of the web view and, without a window,
            one line of FPS and latency per second.
        port: with a window wanted and an OpenCV without GUI: the port of the local
            web view (`semseg.predict.live_view`, default 8765); a port also forces the web
            view on a GUI build.

    Returns:
        dict: `frames` (segmented), `captured`, `dropped` (captured but never
        segmented: the camera was faster than the model), `seconds`, `fps`,
        `latency_ms` {mean, p50, p95}, `reconnects`, `stopped` (why it ended).
    """
    capture = open_capture(source)
    view = None
    if not headless:
        if port is None and has_gui():
            cv2.namedWindow(window, cv2.WINDOW_NORMAL)
        else:
            view = LiveView(DEFAULT_PORT if port is None else port, title=source)
            report(f"live view: {view.url} (Ctrl+C stops)")
    show_window = not headless and view is None
    frame_rate = capture.get(cv2.CAP_PROP_FPS) or 30.0
    warm_up(
        predictor,
        int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) or 480,
        int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) or 640,
    )
    reader = LatestFrameReader(source, capture, retries)
    palette = predictor.labels.palette
    legend_image = frame_legend(predictor.labels.class_names, palette)
    writer = None
    latencies, count, last_index, stopped = [], 0, 0, "end of the source"
    start = last_report = time.perf_counter()
    try:
        while True:
            index, frame = reader.next_frame(last_index)
            if frame is None:
                stopped = reader.failed or stopped
                break
            last_index = index
            begin = time.perf_counter()
            mask = predictor.predict(frame, upsample="labels")
            latencies.append(1000.0 * (time.perf_counter() - begin))
            count += 1
            now = time.perf_counter()
            fps = count / (now - start)
            picture = draw_frame(
                frame,
                mask,
                palette,
                alpha,
                legend_image,
                (f"{fps:.1f} FPS", f"latency {latencies[-1]:.0f} ms"),
            )
            if record is not None:
                if writer is None:
                    height, width = frame.shape[:2]
                    writer = VideoWriter(record, frame_rate, (width, height))
                writer.submit(picture)
            if view is not None:
                view.publish(picture)
            if not show_window:
                if now - last_report >= 1.0:
                    report(
                        f"{fps:.1f} FPS, latency p50 {np.median(latencies[-30:]):.0f} ms, "
                        f"{count} frames, {reader.captured - count} dropped"
                    )
                    last_report = now
            else:
                cv2.imshow(window, picture)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    stopped = "q pressed"
                    break
            if max_frames and count >= max_frames:
                stopped = f"--max_frames {max_frames} reached"
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        reader.stop()
        if writer is not None:
            writer.close(keep=count > 0)
        if view is not None:
            view.close()
        if show_window:
            cv2.destroyAllWindows()
    seconds = time.perf_counter() - start
    latency = np.asarray(latencies or [0.0])
    return {
        "frames": count,
        "captured": reader.captured,
        "dropped": max(reader.captured - count, 0),
        "seconds": seconds,
        "fps": count / seconds if seconds else 0.0,
        "latency_ms": {
            "mean": float(latency.mean()),
            "p50": float(np.percentile(latency, 50)),
            "p95": float(np.percentile(latency, 95)),
        },
        "reconnects": reader.reconnects,
        "stopped": stopped,
    }
