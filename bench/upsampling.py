r"""The last step of every prediction: class ids from a model's low-resolution logits,
bilinearly upsampled to the frame's size. `semseg.base.logits.upsampled_class_ids`
(upsampling only the cells on class borders) against TensorFlow's full resize + argmax.

Examples:

    python bench/upsampling.py              # a random-weights DDRNet-lite on the dash-cam clip
    # A trained run, exported without its final upsampling
    python export.py --work_dir runs/camvid --format openvino --quantize int8 --low_res_logits
    python bench/upsampling.py --model runs/camvid/export/ddrnet_lite_lowres_int8_openvino

Runs the model on `--frames` frames of `--video` (resized to its input size), keeps the
logits, and times both ways to class ids at each size of `--scales` times the model's
input (medians). Prints one JSON line per size {"size", "mixed_cells" (the share of
cells whose four corners disagree), "cells_ms", "tensorflow_ms", "speedup",
"pixels_differing"}, then the machine (CPU, flags, load average).
"""

import dataclasses
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.options import InferenceSizeOptions  # noqa: E402
from semseg.base.cli import at_least, option, parse_config, run_command  # noqa: E402
from semseg.base.errors import InputError  # noqa: E402

VIDEO = ROOT.parent / "shared" / "data" / "video" / "solidWhiteRight.mp4"


@dataclasses.dataclass
class UpsamplingConfig(InferenceSizeOptions):
    model: str | None = option(
        help="an export made with --low_res_logits (default: a random-weights DDRNet-lite "
        "at --image_size, without its final upsampling)"
    )
    video: str = option(str(VIDEO), "frames to segment")
    frames: int = option(10, check=at_least(1))
    scales: tuple[float, ...] = option(
        (1.0, 2.0, 2.667),
        "output sizes, in multiples of the model's input (2.667: 960x1280 from 360x480, "
        "no whole multiple of the logits)",
    )
    runs: int = option(10, "timed calls per frame and way", check=at_least(1))


def parse_args(argv=None):
    return parse_config(UpsamplingConfig, __doc__, argv)


def low_res_model(args):
    """`(call, image_size)`: a callable from float32 `(1, H, W, 3)` to low-res logits."""
    if args.model:
        from semseg.predict.inference import Predictor

        predictor = Predictor.from_export(args.model)
        return predictor.runtime, predictor.image_size
    import keras

    import models
    from semseg.export.export import low_res_logits_model

    keras.utils.set_random_seed(0)
    model = models.build_model("ddrnet_lite", 19, input_shape=(*args.image_size, 3))
    head = low_res_logits_model(model)
    return (lambda images: head(images, training=False).numpy()), tuple(args.image_size)


def read_frames(path, count, size):
    import cv2

    from semseg.predict.video import open_capture

    capture = open_capture(path)
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(frame[..., ::-1], (size[1], size[0])).astype("float32"))
    if not frames:
        raise InputError(f"--video {path}: no frame could be read")
    return frames


def median_ms(call, runs):
    from semseg.runtime.latency import time_function

    return float(statistics.median(time_function(call, runs, warmup=0)))


def main(args):
    import numpy as np
    import tensorflow as tf

    from bench.report import describe_machine
    from semseg.base import logits as logits_contract

    call, image_size = low_res_model(args)
    all_logits = [
        np.asarray(call(frame[None])) for frame in read_frames(args.video, args.frames, image_size)
    ]
    results = []
    for scale in args.scales:
        size = (round(scale * image_size[0]), round(scale * image_size[1]))

        def tensorflow_ids(logits):
            resized = tf.image.resize(logits, size, method="bilinear")
            return logits_contract.class_ids(resized).numpy()

        cells, tensorflow, mixed, differing = [], [], [], 0
        for logits in all_logits:
            expected = tensorflow_ids(logits)
            got = logits_contract.upsampled_class_ids(logits, size)
            differing += int(np.sum(got != expected))
            mixed.append(np.mean(logits_contract.cells_of(logits[0])[2]))
            cells.append(
                median_ms(lambda: logits_contract.upsampled_class_ids(logits, size), args.runs)
            )
            tensorflow.append(median_ms(lambda: tensorflow_ids(logits), args.runs))
        result = {
            "size": list(size),
            "logits": list(all_logits[0].shape[1:]),
            "mixed_cells": round(float(np.median(mixed)), 3),
            "cells_ms": round(statistics.median(cells), 2),
            "tensorflow_ms": round(statistics.median(tensorflow), 2),
            "speedup": round(statistics.median(tensorflow) / statistics.median(cells), 2),
            "pixels_differing": differing,
        }
        print(json.dumps(result), flush=True)
        results.append(result)
    print(json.dumps({"machine": describe_machine(), "model": args.model or "ddrnet_lite, random"}))
    return results


if __name__ == "__main__":
    run_command(main, parse_args, log_level=None)
