r"""Segment a video file into an overlay video of the same size and frame rate.

Examples:

    python predict_video.py --work_dir runs/camvid_ddrnet --input drive.mp4 --output drive_seg.mp4
    python predict_video.py --work_dir runs/camvid_ddrnet --input drive.mp4 --output out.mp4 \
        --alpha 0.4 --show_fps
    # A published Cityscapes model (downloaded and converted once)
    python predict_video.py --weights ddrnet23_slim_cityscapes --input drive.mp4 --output out.mp4
    # A shipped model (export.py writes the .json description beside it)
    python predict_video.py --model deploy/ddrnet23_slim_int8.tflite --input drive.mp4 \
        --output out.mp4 --threads 2

Prints the end-to-end FPS of the tool next to the FPS of the model alone.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from semseg.base.cli import add_run_arguments, command_parser, run_command  # noqa: E402
from semseg.base.files import check_not_replacing, check_output_apart  # noqa: E402
from semseg.predict.video import check_output_video, check_source  # noqa: E402
from semseg.weights.published_runs import resolve_work_dir  # noqa: E402


def parse_args(argv=None):
    parser = command_parser(__doc__)
    add_run_arguments(parser, exported_model=True)
    parser.add_argument("--input", required=True, help="video file")
    parser.add_argument(
        "--output", help="output .mp4 (default: INPUT_segmented.mp4 next to the input)"
    )
    parser.add_argument("--alpha", type=float, default=0.5, help="mask weight in the overlay")
    parser.add_argument("--show_fps", action="store_true", help="draw the FPS on the frames")
    parser.add_argument("--threads", type=int, help="CPU threads of TFLite / ONNX Runtime")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output video"
    )
    args = parser.parse_args(argv)
    if args.output is None:
        stem, _ = os.path.splitext(args.input)
        args.output = f"{stem}_segmented.mp4"
    if args.model is not None and args.weights is not None:
        parser.error("give --model (an exported file) or --weights NAME (a published model)")
    if args.model is None:
        args.work_dir = resolve_work_dir(args.work_dir, weights=args.weights)
    check_source(args.input)
    check_output_video(args.output)
    check_output_apart(args.output, [args.input], "--output")
    check_not_replacing(args.output, "--output", args.overwrite)
    return args


def main(args):
    import tqdm

    from semseg.predict.inference import Predictor
    from semseg.predict.video import segment_video

    predictor = Predictor.load(args.work_dir, args.checkpoint, args.model, args.threads)
    stats = segment_video(
        predictor, args.input, args.output, args.alpha, args.show_fps, progress=tqdm.tqdm
    )
    width, height = stats["size"]
    print(
        f"{stats['frames']} frames of {width}x{height} at {stats['frame_rate']:g} fps written "
        f"to {stats['output']}"
    )
    print(
        f"end-to-end {stats['fps']:.1f} FPS; model alone {stats['model_fps']:.1f} FPS at "
        f"{predictor.image_size[0]}x{predictor.image_size[1]} ({predictor.runtime.name})"
    )


if __name__ == "__main__":
    run_command(main, parse_args)
