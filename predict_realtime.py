r"""Segment a live camera, stream or video file in real time.

Examples:

    python predict_realtime.py --work_dir runs/camvid_ddrnet --source 0
    python predict_realtime.py --work_dir runs/camvid_ddrnet --source /dev/video2 --record run.mp4
    python predict_realtime.py --work_dir runs/camvid_ddrnet --source rtsp://192.168.1.20/stream
    python predict_realtime.py --weights pidnet_s_cityscapes --source 0
    # The live view in a browser, on another port
    python predict_realtime.py --work_dir runs/camvid_ddrnet --source 0 --port 9000
    # No display (servers, containers): one line of FPS and latency per second
    python predict_realtime.py --model deploy/ddrnet23_slim_int8.tflite --source 0 --headless
    python predict_realtime.py --work_dir runs/camvid_ddrnet --source drive.mp4 --headless \
        --max_frames 50

The camera is read in its own thread and the newest frame is always the one
segmented. Press q in the window to quit. Without a GUI build of OpenCV (the default
install has opencv-python-headless) the overlays go to a local web page instead:
open the printed http://127.0.0.1:8765/ in a browser; Ctrl+C stops. A dropped stream
is reopened a few times (--retries), then the tool stops with a summary.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from semseg.base.cli import parse_config, run_command  # noqa: E402
from semseg.base.files import check_new_output  # noqa: E402
from semseg.predict.options import PredictRealtimeConfig  # noqa: E402
from semseg.predict.video import check_output_video, check_source  # noqa: E402
from semseg.weights.published_runs import resolve_work_dir  # noqa: E402


def parse_args(argv=None):
    config = parse_config(PredictRealtimeConfig, __doc__, argv)
    if config.model is None:
        config.work_dir = resolve_work_dir(config.work_dir, weights=config.weights)
    check_source(config.source)
    if config.record:
        check_output_video(config.record)
        streamed = "://" in config.source
        inputs = [] if streamed else [config.source]
        check_new_output(config.record, "--record", inputs, config.overwrite)
    return config


def main(args):
    from semseg.predict.camera import run_realtime
    from semseg.predict.inference import Predictor

    predictor = Predictor.load(args.work_dir, args.checkpoint, args.model, args.threads)
    summary = run_realtime(predictor, args, report=lambda line: print(line, flush=True))
    latency = summary["latency_ms"]
    print(
        f"stopped: {summary['stopped']}. {summary['frames']} frames segmented in "
        f"{summary['seconds']:.1f} s ({summary['fps']:.1f} FPS), latency mean "
        f"{latency['mean']:.0f} / p50 {latency['p50']:.0f} / p95 {latency['p95']:.0f} ms, "
        f"{summary['dropped']} camera frames skipped, {summary['reconnects']} reconnects"
    )
    if summary["frames"] == 0:
        sys.exit(f"error: {args.source}: no frame was segmented ({summary['stopped']})")


if __name__ == "__main__":
    run_command(main, parse_args)
