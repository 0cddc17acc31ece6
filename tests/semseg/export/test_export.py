"""export.py: every format and precision, verified against Keras on a trained run."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import models
from semseg.base.errors import InputError
from semseg.export import run as export
from semseg.export.options import ExportConfig, check_format
from semseg.predict.inference import Predictor

ROOT = Path(__file__).resolve().parents[3]


# In the default run ONNX fp32 exports are also verified by the --format auto test and
# tests/semseg/runtime/test_runtimes.py, SavedModel ones by tests/semseg/runtime/test_runtimes.py.
@pytest.mark.parametrize(
    "format_name",
    [
        "tflite",
        "openvino",
        pytest.param("onnx", marks=pytest.mark.large),
        pytest.param("saved_model", marks=pytest.mark.large),
    ],
)
def test_fp32_exports_match_keras_logits(demo_run, format_name):
    path, description = export.export_run(
        ExportConfig(work_dir=demo_run, format=format_name, verify_examples=8)
    )
    assert description["max_abs_logit_diff"] < 1e-4
    assert abs(description["miou_change"]) < 0.01
    assert description["miou_keras"] > 0.3, "the fixture run should have learned something"
    shipped = Predictor.from_export(path)
    assert shipped.runtime.name == format_name and shipped.image_size == (72, 88)
    keras_predictor = Predictor.from_work_dir(demo_run)
    image = np.random.default_rng(0).integers(0, 256, (50, 61, 3), dtype=np.uint8)
    agreement = np.mean(shipped.predict(image) == keras_predictor.predict(image))
    assert agreement > 0.999
    saved = json.loads(Path(f"{path}.json").read_text())
    assert saved["class_names"] == keras_predictor.labels.class_names
    assert not [item for item in path.parent.iterdir() if item.name.startswith(".")]


@pytest.mark.parametrize(
    "format_name, quantize",
    [
        pytest.param("tflite", "int8", marks=pytest.mark.large),
        ("onnx", "int8"),
        pytest.param("openvino", "int8", marks=pytest.mark.large),
    ],
)
def test_int8_keeps_miou_within_two_points(demo_run, format_name, quantize):
    path, description = export.export_run(
        ExportConfig(
            work_dir=demo_run,
            format=format_name,
            quantize=quantize,
            calibration_steps=32,
            verify_examples=16,
        )
    )
    assert abs(description["miou_change"]) <= 2.0, description
    assert description["calibration_images"] == 32
    weights = path / "model.bin" if format_name == "openvino" else path
    assert weights.stat().st_size < 0.4 * (demo_run / "checkpoints" / "best.keras").stat().st_size
    if format_name == "onnx":
        # 7-bit convolution weights (-64..64, symmetric): full-range int8 ones (-127..127)
        # saturate ONNX Runtime's int16 pair sums on CPUs without VNNI (-4.98 mIoU on a
        # CamVid model, README).
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(path))
        weights = {node.input[1] for node in model.graph.node if node.op_type == "Conv"}
        quantized = {
            node.input[0]
            for node in model.graph.node
            if node.op_type == "DequantizeLinear" and node.output[0] in weights
        }
        values = [
            numpy_helper.to_array(initializer)
            for initializer in model.graph.initializer
            if initializer.name in quantized
        ]
        assert len(values) == len(weights) > 10
        assert all(value.dtype == np.int8 and np.abs(value).max() <= 64 for value in values)


@pytest.mark.large
def test_openvino_keeps_its_precision_in_the_model(demo_run, tmp_path):
    """bf16 is computed in bfloat16 and stays close to Keras; an fp32 export asks for float32
    even where OpenVINO's default on the CPU would be bf16."""
    import openvino

    from semseg.runtime.runtimes import OPENVINO_PRECISION

    hints = {}
    for quantize in (None, "bf16"):
        path, description = export.export_run(
            ExportConfig(
                work_dir=demo_run,
                format="openvino",
                quantize=quantize,
                output=str(tmp_path / f"{quantize}"),
                verify_examples=8,
            )
        )
        assert sorted(item.name for item in path.iterdir()) == ["model.bin", "model.xml"]
        model = openvino.Core().read_model(str(path / "model.xml"))
        hints[quantize] = model.get_rt_info(list(OPENVINO_PRECISION)).astype(str)
        assert abs(description["miou_change"]) <= 1.0
        runtime = Predictor.from_export(path).runtime
        assert runtime.compiled.get_property("INFERENCE_PRECISION_HINT") == (
            openvino.Type.bf16 if quantize and _has_bf16() else openvino.Type.f32
        )
    assert hints == {None: "f32", "bf16": "bf16"}


def _has_bf16():
    from semseg.base.cpu import cpu_flags

    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def test_a_model_openvino_cannot_convert_is_one_line_error(demo_run, monkeypatch, tmp_path):
    import openvino

    def refuse(path, *args, **kwargs):
        raise RuntimeError("Check 'is_op_type_supported' failed: unsupported op Foo")

    monkeypatch.setattr(openvino, "convert_model", refuse)
    with pytest.raises(InputError, match=r"OpenVINO cannot convert .*unsupported op Foo.*onnx"):
        export.export_run(
            ExportConfig(work_dir=demo_run, format="openvino", output=str(tmp_path / "ov"))
        )
    assert list(tmp_path.iterdir()) == []


def test_auto_offers_openvino_and_bf16_only_where_it_computes_in_bf16(monkeypatch):
    monkeypatch.setattr("semseg.base.cpu.cpu_flags", lambda: {"avx2", "avx512f"})
    assert ("openvino", None) in export.auto_candidates()
    assert not [row for row in export.auto_candidates() if row[1] == "bf16"]
    monkeypatch.setattr("semseg.base.cpu.cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert ("openvino", "bf16") in export.auto_candidates()


def test_low_res_logits_leave_the_upsampling_to_the_predictor(demo_run):
    path, description = export.export_run(
        ExportConfig(work_dir=demo_run, format="openvino", low_res_logits=True, verify_examples=8)
    )
    assert path.name.endswith("_lowres_fp32_openvino") and description["low_res_logits"]
    assert abs(description["miou_change"]) <= 0.5
    shipped = Predictor.from_export(path)
    logits = shipped.runtime(np.zeros((1, 72, 88, 3), np.float32))
    assert logits.shape[1:3] == (9, 11)  # DDRNet's head at 1/8
    keras_predictor = Predictor.from_work_dir(demo_run)
    image = np.random.default_rng(0).integers(0, 256, (50, 61, 3), dtype=np.uint8)
    for upsample in ("logits", "labels"):
        ids = shipped.predict(image, upsample=upsample)
        assert ids.shape == (50, 61)
        assert np.mean(ids == keras_predictor.predict(image, upsample=upsample)) > 0.99


def test_low_res_logits_need_a_half_pixel_upsampling_to_leave_out():
    import keras

    from semseg.export.export import low_res_logits_model

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 1, name="logits")(inputs), name="plain")
    with pytest.raises(InputError, match="plain: its logits are not a half-pixel bilinear"):
        low_res_logits_model(model)
    pidnet = models.build_model("pidnet_s", 4, input_shape=(64, 64, 3), align_corners=True)
    with pytest.raises(InputError, match="--low_res_logits cannot leave it out"):
        low_res_logits_model(pidnet)
    head = low_res_logits_model(models.build_model("ddrnet_lite", 4, input_shape=(64, 64, 3)))
    assert head.output.shape == (None, 8, 8, 4)


@pytest.mark.large
def test_fp16_tflite_is_close_to_keras(demo_run):
    _, description = export.export_run(
        ExportConfig(work_dir=demo_run, format="tflite", quantize="fp16", verify_examples=8)
    )
    assert description["max_abs_logit_diff"] < 0.1
    assert abs(description["miou_change"]) <= 1.0


def test_a_failed_verification_leaves_no_file(demo_run, monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("the exported model returns NaN or infinite logits")

    monkeypatch.setattr(export, "compare_with_keras", broken)
    output = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError):
        export.export_run(ExportConfig(work_dir=demo_run, format="onnx", output=str(output)))
    assert list(tmp_path.iterdir()) == []


def test_unsupported_combinations_are_one_line_errors(demo_run):
    with pytest.raises(InputError, match="--quantize fp16 is not available for onnx"):
        check_format("onnx", "fp16")
    result = subprocess.run(
        [
            sys.executable,
            "export.py",
            "--work_dir",
            str(demo_run),
            "--format",
            "saved_model",
            "--quantize",
            "int8",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: --quantize int8")


def test_onnx_resizes_use_exact_sizes(demo_run, tmp_path):
    import onnx
    from onnx import numpy_helper

    path, _ = export.export_run(
        ExportConfig(
            work_dir=demo_run, format="onnx", output=str(tmp_path / "m.onnx"), verify_examples=2
        )
    )
    proto = onnx.load(str(path))
    initializers = {item.name: numpy_helper.to_array(item) for item in proto.graph.initializer}
    resizes = [node for node in proto.graph.node if node.op_type == "Resize"]
    # Every resize has an exact output size (DDRNet upsamples 2 -> 9 and 2 -> 11
    # here): none is left to ONNX's floor(input * float scale).
    assert resizes and all(len(node.input) == 4 for node in resizes)
    sizes = {tuple(initializers[node.input[3]][2:]) for node in resizes}
    assert (9, 11) in sizes and (72, 88) in sizes


def test_auto_leaves_out_an_export_that_loses_more_miou_than_allowed(
    demo_run, tmp_path, monkeypatch
):
    compare_with_keras = export.compare_with_keras

    def onnx_loses_three_points(keras_predictor, exported, *args):
        scores = compare_with_keras(keras_predictor, exported, *args)
        if exported.runtime.name == "onnx":
            scores["miou_change"] -= 3.0
        return scores

    monkeypatch.setattr(export, "compare_with_keras", onnx_loses_three_points)
    lines = []
    config = ExportConfig(
        work_dir=demo_run, format="auto", output=str(tmp_path / "kept"), verify_examples=4
    )
    path, description = export.export_fastest(
        config, candidates=(("onnx", None), ("tflite", None)), runs=2, report=lines.append
    )
    assert path.name == "kept.tflite" and description["format"] == "tflite"
    assert lines[0].startswith("onnx fp32: left out (mIoU -")
    assert "more than --max_miou_drop 0.5" in lines[0]
    assert [row["format"] for row in description["speed"]["candidates"]] == ["tflite"]
    with pytest.raises(InputError, match="no candidate export could be made within"):
        export.export_fastest(config, candidates=(("onnx", None),), runs=2, report=lines.append)


def test_auto_keeps_the_fastest_export_with_every_timing(demo_run, tmp_path, monkeypatch):
    # Two candidates, the ONNX one made to run slower: auto must keep the TFLite one.
    from semseg.runtime import runtimes

    load_runtime = runtimes.load_runtime

    def slow_onnx(path, *args, **kwargs):
        runtime = load_runtime(path, *args, **kwargs)
        if str(path).endswith(".onnx"):

            class Slow:
                def __getattr__(self, name):
                    return getattr(runtime, name)

                def __call__(self, images):
                    time.sleep(0.05)
                    return runtime(images)

            return Slow()
        return runtime

    monkeypatch.setattr(runtimes, "load_runtime", slow_onnx)
    output = tmp_path / "fastest.tflite"
    lines = []
    path, description = export.export_fastest(
        # The winner's extension is added to the output name.
        ExportConfig(
            work_dir=demo_run, format="auto", output=str(tmp_path / "fastest"), verify_examples=2
        ),
        candidates=(("onnx", None), ("tflite", None)),
        runs=3,
        report=lines.append,
    )
    assert path == output and output.is_file()
    assert (description["format"], description["quantize"]) == ("tflite", None)
    speed = json.loads(Path(f"{output}.json").read_text())["speed"]
    assert [row["format"] for row in speed["candidates"]] == ["tflite", "onnx"]
    assert speed["candidates"][1]["median_ms"] >= 50 > 0 < speed["candidates"][0]["median_ms"]
    assert set(speed["cpu_flags"]) <= export.SPEED_FLAGS and speed["image_size"] == [72, 88]
    assert [line.split(":")[0] for line in lines] == ["onnx fp32", "tflite fp32"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "fastest.tflite",
        "fastest.tflite.json",
    ]
    assert not list((demo_run / "export").glob(".auto-*"))


def test_int8_on_a_cpu_without_vnni_warns_and_auto_refuses_a_precision(monkeypatch, demo_run):
    monkeypatch.setattr("semseg.base.cpu.cpu_flags", lambda: {"avx2", "fma"})
    assert not export.int8_pays_off()
    monkeypatch.setattr("semseg.base.cpu.cpu_flags", lambda: {"avx2", "avx512_vnni"})
    assert export.int8_pays_off()
    result = subprocess.run(
        [sys.executable, "export.py", "--work_dir", str(demo_run), "--format", "auto",
         "--quantize", "int8"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert "--format auto chooses the precision too; leave out --quantize" in result.stderr
