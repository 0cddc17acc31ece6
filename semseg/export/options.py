"""`export.py`'s settings (`ExportConfig`) and the formats and precisions it offers,
checked before TensorFlow loads."""

import dataclasses

from semseg.base.cli import at_least, option
from semseg.base.errors import InputError
from semseg.base.options import RunOptions, ThreadsOptions

# Format: its file's suffix ("" for a folder).
FORMATS = {"saved_model": "", "tflite": ".tflite", "onnx": ".onnx", "openvino": ""}
QUANTIZATIONS = {
    "saved_model": (None, "bf16"),
    "tflite": (None, "fp16", "int8"),
    "onnx": (None, "int8"),
    # bf16: float32 weights, computed in bfloat16 (CPUs with AVX512-BF16 or AMX).
    "openvino": (None, "bf16", "int8"),
}


def check_format(format_name, quantize):
    """Raises `InputError` for an unknown format or a quantization it does not offer."""
    if format_name not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}. Received: {format_name!r}")
    if quantize not in QUANTIZATIONS[format_name]:
        offered = [value for value in QUANTIZATIONS[format_name] if value] or ["none"]
        raise InputError(
            f"--quantize {quantize} is not available for {format_name} (offered: "
            f"{', '.join(offered)}); fp16 and int8 TFLite run best on CPUs and phones"
        )


# `--format auto` exports, verifies and times candidates of several formats and precisions.
AUTO = "auto"


@dataclasses.dataclass
class ExportConfig(ThreadsOptions, RunOptions):
    """The export to make and how to check it."""

    format: str = option(
        required=True,
        choices=(*FORMATS, AUTO),
        help="auto: the fastest of TFLite fp32/fp16/int8, ONNX fp32/int8 and OpenVINO "
        "fp32/bf16/int8 on this machine (each is exported, verified and timed; the table goes "
        "into FILE.json)",
    )
    quantize: str | None = option(
        help="reduced precision",
        choices=sorted({value for values in QUANTIZATIONS.values() for value in values if value}),
    )
    calibration_steps: int = option(
        100, "training images used to calibrate int8 quantization", check=at_least(1)
    )
    output: str | None = option(
        help="destination (default: WORK_DIR/export/...); with --format auto, the name to "
        "which the fastest format's extension is added"
    )
    verify_examples: int = option(
        20, "validation images to compare the export with Keras on", check=at_least(0)
    )
    max_miou_drop: float = option(
        0.5,
        "with --format auto: leave out a candidate whose mIoU on those validation images is "
        "more than this many points below the Keras model's",
        check=at_least(0),
    )
    low_res_logits: bool = option(
        False,
        "end the model at its head (logits at 1/8 of the input for DDRNet): the predictor "
        "upsamples them once, straight to each image's size, instead of twice; about half "
        "the time per frame end to end (bench/RESULTS.md)",
    )

    def check_together(self):
        super().check_together()
        if self.format == AUTO:
            if self.quantize:
                raise InputError("--format auto chooses the precision too; leave out --quantize")
        else:
            check_format(self.format, self.quantize)
            suffix = FORMATS[self.format]
            if self.output and suffix and not self.output.endswith(suffix):
                raise InputError(
                    f"--output {self.output}: a {self.format} model is a {suffix} file; "
                    f"give a name ending in {suffix}"
                )
