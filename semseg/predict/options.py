"""The predictors' settings, checked before TensorFlow loads: `PredictConfig`
(`predict.py`), `PredictVideoConfig` (`predict_video.py`) and `PredictRealtimeConfig`
(`predict_realtime.py`)."""

import dataclasses

from semseg.base.cli import at_least, option, within
from semseg.base.options import (
    MinAreaOptions,
    ModelOrRunOptions,
    OverlayOptions,
    RunOptions,
    ThreadsOptions,
)


@dataclasses.dataclass
class PredictConfig(MinAreaOptions, OverlayOptions, RunOptions):
    """Images to segment and where the masks, overlays and pre-annotations go."""

    input: tuple[str, ...] = option(required=True, help="image files or folders")
    output: str | None = option(
        help="output folder (default: WORK_DIR/predictions; with --weights NAME: predictions/NAME)"
    )
    cvat: str | None = option(
        help='also write the masks as CVAT "Segmentation mask 1.1" pre-annotations',
        metavar="OUT.zip",
    )
    overwrite: bool = option(False, "replace an existing --cvat zip")


@dataclasses.dataclass
class PredictVideoConfig(ThreadsOptions, OverlayOptions, ModelOrRunOptions):
    """A video file to segment into an overlay video."""

    input: str = option(required=True, help="video file")
    output: str | None = option(help="output .mp4 (default: INPUT_segmented.mp4 next to the input)")
    show_fps: bool = option(False, "draw the FPS on the frames")
    overwrite: bool = option(False, "replace an existing --output video")


@dataclasses.dataclass
class PredictRealtimeConfig(ThreadsOptions, OverlayOptions, ModelOrRunOptions):
    """A live source to segment and show, serve or record."""

    source: str = option("0", "camera index, /dev/videoN, rtsp:// or http:// URL, or a file")
    headless: bool = option(False, "no window, no web page; print FPS each second")
    port: int | None = option(
        help="serve the live view on http://127.0.0.1:PORT/ (default without a GUI build of "
        "OpenCV: 8765, or the next free port; 0: any free port)",
        check=within(0, 65535),
    )
    max_frames: int | None = option(help="stop after N segmented frames", check=at_least(1))
    record: str | None = option(help="also write the overlays to this .mp4")
    overwrite: bool = option(False, "replace an existing --record video")
    retries: int = option(3, "reconnects of a dropped stream", check=at_least(0))
