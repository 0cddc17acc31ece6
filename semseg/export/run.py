"""`export.py`: a run's model exported, verified against Keras and written with a `.json`
description beside it (`export_run`), or with `--format auto` every candidate exported
and timed on the machine at hand, the fastest verified one kept (`export_fastest`).
"""

import dataclasses
import logging
import os
import shutil
import tempfile
from pathlib import Path

from semseg.base.errors import InputError
from semseg.export.export import default_file_name, export_model, low_res_logits_model
from semseg.export.options import FORMATS, check_format
from semseg.export.verify import calibration_images, compare_with_keras

logger = logging.getLogger(__name__)


def export_run(config):
    """Everything `export.py --format F` does: export a run's checkpoint, verify it,
    describe it.

    The model is exported and verified under a temporary name, so a model that
    fails to load or to verify never lands at its destination. With `low_res_logits`
    the export ends at the head (`export.low_res_logits_model`).

    Args:
        config: `semseg.export.options.ExportConfig` with a format other than auto, its
            `work_dir` resolved (a published `--weights NAME` is its work dir).

    Returns:
        `(path, description)`: the exported model and the dict written to `PATH.json`.
    """
    import datetime

    from semseg.base.files import write_json
    from semseg.config.run import load_run
    from semseg.data import data
    from semseg.predict.inference import Predictor
    from semseg.runtime.runtimes import load_runtime

    format_name, quantize = config.format, config.quantize
    check_format(format_name, quantize)
    run = load_run(config.work_dir)
    if quantize == "int8" and not int8_pays_off():
        logger.warning(
            "this CPU has no VNNI (int8 dot products): int8 models usually run slower than "
            "fp32 on it; export.py --format auto measures which export is fastest here"
        )
    # The reference is the Keras model exactly as trained (no folded batch norms).
    reference = load_runtime(
        run.checkpoint_path(config.checkpoint), run.num_channels, optimize=False
    )
    keras_predictor = Predictor(reference, run.labels, run.config.image_size, run.num_channels)
    if keras_predictor.model is None:
        raise InputError(f"--checkpoint {config.checkpoint}: export starts from a Keras checkpoint")
    try:
        builder, _ = data.load_builder(run.config.dataset, run.config.data_dir)
    except InputError as error:
        # E.g. a run of convert_weights.py, whose dataset the user has not built: the
        # export is verified on generated images; int8 needs training images to calibrate.
        if quantize == "int8":
            raise
        logger.warning("%s; verifying the export on generated images", error)
        builder = None
    model = keras_predictor.model
    if config.low_res_logits:
        model = low_res_logits_model(model)
    name = default_file_name(run.config.model, format_name, quantize, config.low_res_logits)
    path = Path(config.output) if config.output else run.config.work_path / "export" / name
    images = None
    if quantize == "int8":
        images = calibration_images(
            builder, run.config.train_split, keras_predictor.image_size, config.calibration_steps
        )
    temp_path = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        export_model(
            model,
            temp_path,
            format_name,
            keras_predictor.image_size,
            run.num_channels,
            quantize,
            images,
        )
        exported = Predictor(
            load_runtime(temp_path, run.num_channels, config.threads),
            run.labels,
            run.config.image_size,
            run.num_channels,
        )
        description = run.labels.to_dict()
        description.update(
            image_size=list(keras_predictor.image_size),
            num_channels=run.num_channels,
            model=run.config.model,
            format=format_name,
            quantize=quantize,
            low_res_logits=config.low_res_logits,
            source=str(run.checkpoint_path(config.checkpoint)),
            created=datetime.datetime.now().isoformat(timespec="seconds"),
            calibration_images=len(images) if images else 0,
        )
        description.update(
            compare_with_keras(
                keras_predictor, exported, builder, run.config.val_split, config.verify_examples
            )
        )
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(temp_path, path)
    finally:
        if temp_path.is_dir():
            shutil.rmtree(temp_path, ignore_errors=True)
        else:
            temp_path.unlink(missing_ok=True)
    write_json(f"{path}.json", description)
    return path, description


# What `export.py --format auto` tries: every CPU format and precision of the runtimes
# `predict*.py --model` run (SavedModel is left out: always slower than these here).
AUTO_CANDIDATES = (
    ("tflite", None),
    ("tflite", "fp16"),
    ("tflite", "int8"),
    ("onnx", None),
    ("onnx", "int8"),
    ("openvino", None),
    ("openvino", "bf16"),
    ("openvino", "int8"),
)


# The CPU flags that decide which precision is fast (recorded with every timing).
SPEED_FLAGS = {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}
BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def auto_candidates():
    """`AUTO_CANDIDATES` less those this CPU cannot make faster: bf16 without bfloat16
    instructions computes in float32 (the fp32 candidate again)."""
    from semseg.base.cpu import cpu_flags

    has_bf16 = bool(cpu_flags() & BF16_FLAGS)
    return tuple(candidate for candidate in AUTO_CANDIDATES if candidate[1] != "bf16" or has_bf16)


def int8_pays_off():
    """Whether this CPU has the int8 dot-product instructions (VNNI) that make int8
    inference faster than fp32. Without them (AVX2 only) TFLite's and ONNX Runtime's int8
    kernels emulate the dot products and run slower than fp32 (bench/RESULTS.md: "Why int8
    does not pay off")."""
    from semseg.base.cpu import cpu_flags

    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def export_fastest(config, candidates=None, runs=20, report=logger.info):
    """`export.py --format auto`: exports each candidate, times it on this machine at the
    run's input size (batch 1, medians of `runs` calls) and keeps the fastest of those
    whose mIoU on the verification images is within `config.max_miou_drop` points of
    Keras's.

    `config` is `export_run`'s, its format auto; `candidates` are `(format, quantize)`
    pairs (default: `auto_candidates()`).

    Candidates are exported and verified by `export_run` into a temporary folder; the
    fastest moves to `output` (default: `W/export/<its default name>`) with its `.json`,
    which also records every candidate's time and the CPU (`"speed"`). The others go.

    Returns:
        `(path, description)` of the kept export, as `export_run`.

    Raises:
        InputError: when no candidate could be exported (e.g. int8 only, without the
            training data to calibrate on).
    """
    from semseg.config.run import load_run
    from semseg.runtime.latency import device_description, measure_latency
    from semseg.runtime.runtimes import load_runtime

    run = load_run(config.work_dir)
    export_dir = run.config.work_path / "export"
    export_dir.mkdir(parents=True, exist_ok=True)
    candidates = auto_candidates() if candidates is None else candidates
    timings = []
    with tempfile.TemporaryDirectory(prefix=".auto-", dir=export_dir) as scratch:
        exported = {}
        for format_name, quantize in candidates:
            name = default_file_name(run.config.model, format_name, quantize, config.low_res_logits)
            # A candidate the config refuses is a mistake in `candidates`: it raises.
            candidate = dataclasses.replace(
                config, format=format_name, quantize=quantize, output=str(Path(scratch) / name)
            )
            try:
                path, description = export_run(candidate)
            except InputError as error:
                report(f"{format_name} {quantize or 'fp32'}: left out ({error})")
                continue
            change = description["miou_change"]
            if change is not None and change < -config.max_miou_drop:
                report(
                    f"{format_name} {quantize or 'fp32'}: left out (mIoU {change:+.2f} points "
                    f"against Keras, more than --max_miou_drop {config.max_miou_drop})"
                )
                continue
            runtime = load_runtime(path, run.num_channels, config.threads)
            timing = measure_latency(
                runtime, tuple(run.config.image_size), run.num_channels, runs=runs
            )
            exported[(format_name, quantize)] = (path, description)
            timings.append(
                {
                    "format": format_name,
                    "quantize": quantize,
                    "median_ms": round(float(timing["p50"]), 3),
                    "p95_ms": round(float(timing["p95"]), 3),
                    "miou_change": None if change is None else round(change, 3),
                }
            )
            report(f"{format_name} {quantize or 'fp32'}: {timing['p50']:.1f} ms (median)")
        if not timings:
            raise InputError(
                f"{config.work_dir}: no candidate export could be made within --max_miou_drop "
                f"{config.max_miou_drop} (see the lines above)"
            )
        best = min(timings, key=lambda row: row["median_ms"])
        key = (best["format"], best["quantize"])
        path, description = exported[key]
        target = export_dir / path.name
        if config.output:
            # The winner's own extension (`.tflite`, `.onnx`, none for a folder).
            suffix = FORMATS[best["format"]]
            output = config.output
            target = Path(output if output.endswith(suffix) else f"{output}{suffix}")
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(path, target)
        os.replace(f"{path}.json", f"{target}.json")
    from semseg.base.cpu import cpu_flags
    from semseg.base.files import write_json

    notable = sorted(cpu_flags() & SPEED_FLAGS)
    description["speed"] = {
        "candidates": sorted(timings, key=lambda row: row["median_ms"]),
        "image_size": list(run.config.image_size),
        "runs": runs,
        "cpu_flags": notable,
        **device_description(),
    }
    write_json(f"{target}.json", description)
    return target, description
