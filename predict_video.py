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

from semseg.base.cli import parse_config, run_command  # noqa: E402
from semseg.base.files import check_new_output  # noqa: E402
from semseg.predict.options import PredictVideoConfig  # noqa: E402
from semseg.predict.video import check_output_video, check_source  # noqa: E402
from semseg.weights.published_runs import resolve_work_dir  # noqa: E402


def parse_args(argv=None):
    config = parse_config(PredictVideoConfig, __doc__, argv)
    if config.output is None:
        stem, _ = os.path.splitext(config.input)
        config.output = f"{stem}_segmented.mp4"
    if config.model is None:
        config.work_dir = resolve_work_dir(config.work_dir, weights=config.weights)
    check_source(config.input)
    check_output_video(config.output)
    check_new_output(config.output, "--output", [config.input], config.overwrite)
    return config


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
