"""Live cameras and streams (`predict_realtime.py`): the newest frame is always the one
segmented (older ones are dropped, so latency stays low), shown in a window or the live
view page, or recorded, and a dropped stream is reconnected a few times before the run
stops with a summary. Files, their reader and writer threads and the drawing are
`semseg.predict.video`'s.

Example:

    predictor = Predictor.from_work_dir("runs/camvid")
    config = PredictRealtimeConfig(source="0", headless=True, max_frames=300)
    stats = run_realtime(predictor, config)
"""

import logging
import threading
import time

import cv2
import numpy as np

from semseg.predict.live_view import DEFAULT_PORT, LiveView
from semseg.predict.video import (
    VideoWriter,
    draw_frame,
    frame_legend,
    is_live,
    open_capture,
    parse_source,
    warm_up,
)

logger = logging.getLogger(__name__)


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


def has_gui():
    """Whether this OpenCV build can open windows (opencv-python-headless cannot)."""
    return _gui_backend() not in ("", "NONE")


def _gui_backend():
    for line in cv2.getBuildInformation().splitlines():
        name, _, value = line.strip().partition(":")
        if name == "GUI":
            return value.strip().upper()
    return ""


def run_realtime(predictor, config, report=print, window="semseg (q quits)"):
    """Segments a camera, stream or file live until `q`, the end, or `--max_frames`.

    Args:
        predictor: `semseg.predict.inference.Predictor`.
        config: `semseg.predict.options.PredictRealtimeConfig`: `source` (camera index
            `0`, `/dev/videoN`, `rtsp://...` URL or a video file); `headless` (no window:
            `report` gets one line of FPS and latency per second); `max_frames` (stop
            after this many segmented frames); `record` (an `.mp4` path receiving the
            overlays); `alpha` (weight of the mask colours); `retries` (reconnects of a
            dropped stream before giving up); `port` (with a window wanted and an OpenCV
            without GUI: the port of the local web view, `semseg.predict.live_view`,
            default 8765; a port also forces the web view on a GUI build).
        report: function receiving the URL of the web view and, without a window,
            one line of FPS and latency per second.
        window: the OpenCV window's title.

    Returns:
        dict: `frames` (segmented), `captured`, `dropped` (captured but never
        segmented: the camera was faster than the model), `seconds`, `fps`,
        `latency_ms` {mean, p50, p95}, `reconnects`, `stopped` (why it ended).
    """
    capture = open_capture(config.source)
    view = None
    if not config.headless:
        if config.port is None and has_gui():
            cv2.namedWindow(window, cv2.WINDOW_NORMAL)
        else:
            view = LiveView(
                DEFAULT_PORT if config.port is None else config.port, title=config.source
            )
            report(f"live view: {view.url} (Ctrl+C stops)")
    show_window = not config.headless and view is None
    frame_rate = capture.get(cv2.CAP_PROP_FPS) or 30.0
    warm_up(
        predictor,
        int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) or 480,
        int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) or 640,
    )
    reader = LatestFrameReader(config.source, capture, config.retries)
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
                config.alpha,
                legend_image,
                (f"{fps:.1f} FPS", f"latency {latencies[-1]:.0f} ms"),
            )
            if config.record is not None:
                if writer is None:
                    height, width = frame.shape[:2]
                    writer = VideoWriter(config.record, frame_rate, (width, height))
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
            if config.max_frames and count >= config.max_frames:
                stopped = f"--max_frames {config.max_frames} reached"
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
