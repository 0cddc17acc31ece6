r"""Export a trained run to SavedModel, TFLite, ONNX or OpenVINO, optionally quantized, and
verify it.

Examples:

    python export.py --work_dir runs/camvid_ddrnet --format tflite --quantize int8
    python export.py --work_dir runs/camvid_ddrnet --format onnx
    python export.py --work_dir runs/camvid_ddrnet --format tflite --quantize fp16 \
        --output deploy/camvid_fp16.tflite
    python export.py --work_dir runs/camvid_ddrnet --format saved_model
    # OpenVINO IR (a folder: model.xml, model.bin); bf16 on CPUs with AVX512-BF16 or AMX
    python export.py --work_dir runs/camvid_ddrnet --format openvino --quantize bf16
    # A published Cityscapes model (downloaded and converted once into $SEMSEG_CACHE)
    python export.py --weights pidnet_s_cityscapes --format onnx --output deploy/pidnet_s.onnx

    # The fastest export on this machine: TFLite fp32/fp16/int8, ONNX fp32/int8 and OpenVINO
    # fp32/bf16/int8 are exported, verified and timed at the run's size; the fastest within
    # --max_miou_drop mIoU points of Keras is kept
    python export.py --work_dir runs/camvid_ddrnet --format auto
    # For deployment: ending at the head, the predictor upsamples along class borders only
    python export.py --work_dir runs/camvid_ddrnet --format auto --low_res_logits

Writes W/export/<model>_<precision>.<ext> (or --output) and, beside it,
<file>.json with the classes, palette and input size, so predict_video.py and
predict_realtime.py can run the file with --model alone. After exporting, it
prints the largest logit difference to the Keras model on validation images and
the mIoU change.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from semseg.base.cli import parse_config, run_command  # noqa: E402
from semseg.base.files import check_output_apart, check_output_dir  # noqa: E402
from semseg.config.run import load_run  # noqa: E402
from semseg.export.options import AUTO, ExportConfig  # noqa: E402
from semseg.weights.published_runs import resolve_work_dir  # noqa: E402


def parse_args(argv=None):
    config = parse_config(ExportConfig, __doc__, argv)
    config.work_dir = resolve_work_dir(config.work_dir, weights=config.weights)
    if config.output:
        check_output_dir(os.path.dirname(os.path.abspath(config.output)), "--output")
        checkpoint = load_run(config.work_dir).checkpoint_path(config.checkpoint)
        check_output_apart(config.output, [checkpoint], "--output")
    return config


def main(args):
    from semseg.export.run import export_fastest, export_run

    if args.format == AUTO:
        path, description = export_fastest(args, report=print)
        speed = description["speed"]
        print(f"fastest on {speed['device']} (flags {', '.join(speed['cpu_flags'])}):")
        for row in speed["candidates"]:
            change = "" if row["miou_change"] is None else f", mIoU {row['miou_change']:+.2f}"
            print(
                f"  {row['format']} {row['quantize'] or 'fp32'}: {row['median_ms']:.1f} ms{change}"
            )
    else:
        path, description = export_run(args)
    print(f"exported: {path} ({description['format']}, {description['quantize'] or 'fp32'})")
    print(
        f"max |logit difference| to Keras on {description['verified_on']}: "
        f"{description['max_abs_logit_diff']:.2e}"
    )
    if description["miou_change"] is not None:
        print(
            f"mIoU: Keras {100 * description['miou_keras']:.2f}, exported "
            f"{100 * description['miou_exported']:.2f} ({description['miou_change']:+.2f} points)"
        )


if __name__ == "__main__":
    run_command(main, parse_args)
