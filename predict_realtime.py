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

from semseg.base.cli import add_run_arguments, command_parser, run_command  # noqa: E402
from semseg.base.files import check_not_replacing, check_output_apart  # noqa: E402
from semseg.predict.video import check_output_video, check_source  # noqa: E402
from semseg.weights.published_runs import resolve_work_dir  # noqa: E402


def parse_args(argv=None):
    parser = command_parser(__doc__)
    add_run_arguments(parser, exported_model=True)
    parser.add_argument(
        "--source", default="0", help="camera index, /dev/videoN, rtsp:// or http:// URL, or a file"
    )
    parser.add_argument(
        "--headless", action="store_true", help="no window, no web page; print FPS each second"
    )
    parser.add_argument(
        "--port",
        type=int,
        help="serve the live view on http://127.0.0.1:PORT/ (default without a GUI build of "
        "OpenCV: 8765, or the next free port)",
    )
    parser.add_argument("--max_frames", type=int, help="stop after N segmented frames")
    parser.add_argument("--record", help="also write the overlays to this .mp4")
    parser.add_argument("--alpha", type=float, default=0.5, help="mask weight in the overlay")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --record video"
    )
    parser.add_argument("--retries", type=int, default=3, help="reconnects of a dropped stream")
    parser.add_argument("--threads", type=int, help="CPU threads of TFLite / ONNX Runtime")
    args = parser.parse_args(argv)
    if args.model is not None and args.weights is not None:
        parser.error("give --model (an exported file) or --weights NAME (a published model)")
    if args.model is None:
        args.work_dir = resolve_work_dir(args.work_dir, weights=args.weights)
    check_source(args.source)
    if args.record:
        check_output_video(args.record)
        if "://" not in args.source:
            check_output_apart(args.record, [args.source], "--record")
        check_not_replacing(args.record, "--record", args.overwrite)
    return args


def main(args):
    from semseg.predict.camera import run_realtime
    from semseg.predict.inference import Predictor

    predictor = Predictor.load(args.work_dir, args.checkpoint, args.model, args.threads)
    summary = run_realtime(
        predictor,
        args.source,
        headless=args.headless,
        max_frames=args.max_frames,
        record=args.record,
        alpha=args.alpha,
        retries=args.retries,
        report=lambda line: print(line, flush=True),
        port=args.port,
    )
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
