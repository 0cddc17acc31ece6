"""predict_video.py and predict_realtime.py: frames, sizes, rates, errors, reconnects."""

import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from commands import ROOT, python, run
from real_data import shared_data

from semseg.base.errors import InputError
from semseg.predict.camera import LatestFrameReader, has_gui
from semseg.predict.video import VideoWriter, open_capture


def read_video(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    rate = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return frames, rate


def test_predict_video_keeps_every_frame_size_and_rate(demo_run, tmp_path):
    video = shared_data("video", "solidWhiteRight.mp4")
    output = tmp_path / "segmented.mp4"
    result = python(
        "predict_video.py",
        "--work_dir",
        demo_run,
        "--input",
        video,
        "--output",
        output,
        "--show_fps",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    frames, rate = read_video(output)
    assert len(frames) == 221 and rate == 25.0
    assert frames[0].shape == (540, 960, 3)
    assert "end-to-end" in result.stdout and "model alone" in result.stdout
    source, _ = read_video(video)
    # An overlay, not the input copied through.
    assert np.mean(np.abs(frames[100].astype(int) - source[100].astype(int))) > 5
    assert [item.name for item in tmp_path.iterdir()] == ["segmented.mp4"]


def test_predict_video_errors_are_one_line_and_leave_nothing(demo_run, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    video = shared_data("video", "solidWhiteRight.mp4").read_bytes()
    truncated = tmp_path / "truncated.mp4"  # a copy cut off at 60%: 132 of 221 frames decode
    truncated.write_bytes(video[: len(video) * 6 // 10])
    for arguments, message in (
        (
            ["--input", truncated, "--output", tmp_path / "o.mp4"],
            "of the 221 frames its header declares",
        ),
        (["--input", tmp_path / "missing.mp4", "--output", tmp_path / "o.mp4"], "no such video"),
        (["--input", broken, "--output", tmp_path / "o.mp4"], "not a readable video"),
        (
            [
                "--input",
                shared_data("video", "solidWhiteRight.mp4"),
                "--output",
                tmp_path / "no_dir" / "o.mp4",
            ],
            "no such folder",
        ),
    ):
        result = run(sys.executable, "predict_video.py", "--work_dir", demo_run, *arguments)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert message in result.stderr.strip().splitlines()[-1]
    assert sorted(item.name for item in tmp_path.iterdir()) == ["broken.mp4", "truncated.mp4"]


def test_realtime_headless_on_a_file_prints_fps_and_records(demo_run, tmp_path):
    record = tmp_path / "live.mp4"
    result = python(
        "predict_realtime.py",
        "--work_dir",
        demo_run,
        "--source",
        shared_data("video", "solidWhiteRight.mp4"),
        "--headless",
        "--max_frames",
        "30",
        "--record",
        record,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "FPS" in result.stdout and "stopped: --max_frames 30 reached" in result.stdout
    frames, _ = read_video(record)
    assert len(frames) == 30 and frames[0].shape == (540, 960, 3)


def test_realtime_without_camera_or_display_is_a_one_line_error(demo_run):
    for arguments, message in (
        (["--source", "7", "--headless"], "camera 7: cannot open it"),
        (["--source", "/dev/video9", "--headless"], "camera /dev/video9: cannot open it"),
        (["--source", "0"], "camera 0: cannot open it"),
    ):
        result = run(sys.executable, "predict_realtime.py", "--work_dir", demo_run, *arguments)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert message in result.stderr.strip().splitlines()[-1]


CHROMIUM = "chromium"


@pytest.mark.large
def test_without_a_gui_the_live_view_is_a_web_page_that_chromium_shows(demo_run):
    """The default install (opencv-python-headless): predict_realtime.py serves the
    overlays on 127.0.0.1, and headless Chromium sees frames arrive and change."""
    assert not has_gui(), "this test is about OpenCV builds without a GUI"
    process = subprocess.Popen(
        [sys.executable, "predict_realtime.py", "--work_dir", str(demo_run), "--port", "0"]
        + ["--source", str(shared_data("video", "solidWhiteRight.mp4"))],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline()
        assert first.startswith("live view: http://127.0.0.1:"), first + process.stderr.read()
        url = first.split()[2]
        page = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"]
            + ["--virtual-time-budget=20000", url],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        output, errors = process.communicate(timeout=300)
    finally:
        process.kill()
    counts = {
        name: int(re.search(rf'<span id="{name}">(\d+)</span>', page).group(1))
        for name in ("received", "distinct")
    }
    assert counts["received"] >= 3 and counts["distinct"] >= 3, page[-2000:]
    assert "stopped: end of the source" in output, errors[-2000:]


class FailingCapture:
    """A stream that delivers `frames` frames, then fails every read."""

    def __init__(self, frames=0):
        self.frames = frames

    def read(self):
        if self.frames:
            self.frames -= 1
            return True, np.zeros((4, 6, 3), np.uint8)
        return False, None

    def get(self, _):
        return 0.0

    def release(self):
        pass


def test_dropped_stream_is_reopened_then_given_up():
    opened = []

    def reopen():
        opened.append(1)
        return FailingCapture(frames=1 if len(opened) == 1 else 0)

    reader = LatestFrameReader(
        "rtsp://camera/stream",
        FailingCapture(frames=2),
        retries=2,
        retry_delay=0.0,
        reopen=reopen,
    )
    index, frame = reader.next_frame(0)
    assert index >= 1 and frame.shape == (4, 6, 3)
    while reader.next_frame(index)[0] is not None:
        index += 1
    reader.stop()
    assert reader.captured == 3  # 2 frames, a reconnect, 1 more frame
    assert reader.reconnects == 3  # the last 2 attempts found nothing
    assert "2 reconnects failed" in reader.failed


def test_video_writer_and_capture_errors(tmp_path):
    with pytest.raises(InputError, match="must be an .mp4"):
        VideoWriter(tmp_path / "out.avi", 25, (8, 8))
    writer = VideoWriter(tmp_path / "out.mp4", 10, (32, 24))
    for value in range(5):
        writer.submit(np.full((24, 32, 3), 40 * value, np.uint8))
    writer.close()
    frames, rate = read_video(tmp_path / "out.mp4")
    assert len(frames) == 5 and rate == 10.0
    cancelled = VideoWriter(tmp_path / "cancelled.mp4", 10, (32, 24))
    cancelled.submit(np.zeros((24, 32, 3), np.uint8))
    cancelled.close(keep=False)
    assert sorted(item.name for item in tmp_path.iterdir()) == ["out.mp4"]
    with pytest.raises(InputError, match="no such video file"):
        open_capture(tmp_path / "none.mp4")
