"""The benchmark scripts: their JSON contracts, errors and the Markdown report (no timings)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from cvat_fixtures import build_demo_dataset
from real_data import shared_data

from bench import input_pipeline, latency, peers, report, train_step, upsampling
from semseg.base.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
LATENCY_KEYS = {"model", "runtime", "precision", "image_size", "median_ms", "p95_ms", "runs"}


def run_script(*arguments):
    return subprocess.run(
        [sys.executable, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize(
    "runtime, precision",
    [
        ("keras", "fp32"),
        pytest.param("onnx", "int8", marks=pytest.mark.large),
        pytest.param("xla", "bf16", marks=pytest.mark.large),
    ],
)
def test_latency_prints_one_json_line(runtime, precision):
    result = run_script(
        "bench/latency.py",
        "--image_size", "64", "96",
        "--runtime", runtime,
        "--precision", precision,
        "--threads", "1",
        "--runs", "3",
        "--warmup", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    measured = json.loads(lines[0])
    assert LATENCY_KEYS <= set(measured)
    assert measured["runtime"] == runtime and measured["precision"] == precision
    assert measured["image_size"] == [64, 96] and measured["runs"] == 3
    assert measured["threads"] == 1
    assert 0 < measured["median_ms"] <= measured["p95_ms"]


def test_latency_rejects_a_precision_the_runtime_lacks():
    result = run_script("bench/latency.py", "--runtime", "keras", "--precision", "int8")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: --precision int8 is not available for --runtime keras (offered: fp32, bf16)"
    ]
    with pytest.raises(InputError, match="--model must be one of"):
        latency.main(latency.parse_args(["--model", "resnet9000", "--image_size", "32", "32"]))


@pytest.mark.large
def test_train_step_function_restores_the_precision_policy():
    measured = train_step.measure_train_step(
        "ddrnet23_slim", (64, 64), batch_size=2, num_classes=3, precision="bf16", steps=1, warmup=1
    )
    assert keras.config.dtype_policy().name == "float32"
    assert measured["precision"] == "bf16" and measured["batch_size"] == 2
    assert measured["images_per_s"] > 0 and measured["steps"] == 1


@pytest.fixture(scope="module")
def demo_builder(tmp_path_factory):
    base = tmp_path_factory.mktemp("bench_data")
    return build_demo_dataset(base, num_train=12, num_val=2, size=(48, 64), seed=1)


def test_input_pipeline_counts_a_first_pass_and_the_steady_state(demo_builder):
    measured = input_pipeline.measure_pipeline(demo_builder, (40, 56), batch_size=4, batches=5)
    assert set(measured) == {"images_per_s", "first_pass_images_per_s", "batches"}
    assert measured["batches"] == 5
    assert measured["images_per_s"] > 0 and measured["first_pass_images_per_s"] > 0


def test_input_pipeline_names_a_missing_export(tmp_path):
    with pytest.raises(InputError, match=f"{tmp_path}: not the CamVid CVAT export"):
        input_pipeline.build_camvid(tmp_path, tmp_path / "tfds")


def synthetic_results():
    return [
        {"model": "ddrnet23_slim", "runtime": "onnx", "precision": "fp32",
         "image_size": [480, 640], "median_ms": 70.4, "p95_ms": 80.0, "runs": 50, "threads": 2},
        {"model": "ddrnet23_slim", "runtime": "keras", "precision": "fp32",
         "image_size": [480, 640], "median_ms": 90.0, "p95_ms": 99.0, "runs": 50, "threads": 2},
        {"model": "ddrnet23_slim", "runtime": "tflite", "precision": "int8",
         "image_size": [480, 640], "median_ms": 30.2, "p95_ms": 33.0, "runs": 50, "threads": 2},
        {"model": "pidnet_s", "runtime": "onnx", "precision": "fp32",
         "image_size": [480, 640], "median_ms": 105.6, "p95_ms": 120.0, "runs": 50, "threads": 2},
        {"model": "ddrnet23_slim", "image_size": [360, 480], "batch_size": 8,
         "precision": "bf16", "jit": False, "images_per_s": 7.5, "step_ms_median": 1066.7,
         "steps": 15},
        {"model": "ddrnet23_slim", "image_size": [360, 480], "batch_size": 8,
         "precision": "fp32", "jit": True, "images_per_s": 4.0, "step_ms_median": 2000.0,
         "steps": 15},
        {"dataset": "full_semantic/camvid", "image_size": [360, 480], "batch_size": 8,
         "images_per_s": 90.0, "first_pass_images_per_s": 60.0, "batches": 90,
         "train_images_per_s": 6.0, "train_precision": "fp32", "ratio": 15.0},
        {"work_dir": "build/demo/run", "runtime": "onnx", "precision": "int8", "split": "val",
         "examples": 60,
         "miou_fp32": 0.9099, "miou": 0.9102, "miou_change": 0.03, "max_abs_logit_diff": 0.8},
    ]  # fmt: skip


def write_markdown(machine_path, results_path, output):
    """`bench/report.py markdown` of `results_path` into `output`."""
    arguments = ["markdown", "--machine", str(machine_path), "--results", str(results_path)]
    report.main(report.parse_args([*arguments, "--output", str(output)]))


def test_report_writes_a_row_per_figure_with_its_target(tmp_path):
    machine_path = tmp_path / "machine.json"
    report.main(report.parse_args(["machine", "--output", str(machine_path)]))
    machine = json.loads(machine_path.read_text())
    assert machine["cores"] >= 1 and machine["packages"]["tensorflow"]
    machine["load_average"] = [0.3, 0.5, 0.6]
    machine_path.write_text(json.dumps(machine))
    results_path = tmp_path / "results.jsonl"
    lines = [json.dumps(result) for result in synthetic_results()]
    results_path.write_text("\n".join(["I0000 a log line", *lines]) + "\n")
    output = tmp_path / "RESULTS.md"
    write_markdown(machine_path, results_path, output)
    text = output.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(synthetic_results())
    assert "| onnx fp32, 2 threads | 70.4 ms (p95 80.0) | <= 75 ms | yes |" in text
    assert "| keras fp32, 2 threads | 90.0 ms (p95 99.0) | <= 75 ms | no |" in text
    assert "| tflite int8, 2 threads | 30.2 ms (p95 33.0) | <= 40 ms | yes |" in text
    assert "| fp32, XLA | 4.00 images/s (2000 ms/step) | >= 5.4 images/s | no |" in text
    assert "= 15.0x training" in text and ">= 3x training | yes |" in text
    assert "| mIoU change, 60 val images of build/demo/run | onnx int8 vs Keras fp32 |" in text
    assert "+0.03 points (90.99 -> 91.02) | within 1 point | yes |" in text
    assert "Best fp32: **70.4 ms** median, onnx fp32" in text
    assert "Best reduced precision: **30.2 ms** median, tflite int8" in text
    # Other models: no target, their ratio to DDRNet-23-slim on the same runtime.
    assert (
        "| latency pidnet_s 480x640 | onnx fp32, 2 threads | 105.6 ms (p95 120.0) = 1.50x " in text
    )
    assert "1.50x ddrnet23_slim | - | - |" in text
    assert "Best fp32: **105.6 ms** median, onnx fp32 (pidnet_s 480x640" in text
    assert "0.3, 0.5, 0.6 (quiet machine)" in text
    assert machine["cpu"] in text


def peers_run(lite_ms):
    machine = {"date": "2026-12-01T23:00:00", "cpu": "AMD EPYC", "cpu_flags": ["avx2"],
               "cores": 2, "load_average": [0.4, 0.9, 1.0]}  # fmt: skip
    contestants = [
        {"name": "yolo26n-sem onnx fp32", "median_ms": 40.0, "p95_ms": 44.0, "runs": 100},
        {"name": "ddrnet_lite tflite fp32", "median_ms": lite_ms, "p95_ms": 36.0, "runs": 100},
        {"name": "ddrnet23_slim tflite fp32", "median_ms": 70.0, "p95_ms": 75.0, "runs": 100},
    ]
    summary = {"machine": machine, "image_size": [480, 640], "threads": 2, "peer_ms": 40.0,
               "best": "ddrnet_lite tflite fp32", "best_ms": lite_ms,
               "best_over_peer": lite_ms / 40.0}  # fmt: skip
    return "\n".join(json.dumps(line) for line in [*contestants, summary]) + "\n"


def test_report_peers_section_is_replaced_by_the_next_run_and_kept_by_markdown(tmp_path):
    output = tmp_path / "RESULTS.md"
    output.write_text("# Benchmark results\n\nthe make bench table\n")
    results = tmp_path / "peers.jsonl"
    for lite_ms in (34.0, 32.0):
        results.write_text(peers_run(lite_ms))
        report.main(
            report.parse_args(["peers", "--results", str(results), "--output", str(output)])
        )
    text = output.read_text()
    assert text.startswith("# Benchmark results\n\nthe make bench table\n")
    assert text.count("## Against Ultralytics YOLO26n-sem") == 1  # replaced, not appended
    assert "| ddrnet_lite tflite fp32 | 32.0 ms | 36.0 ms | 0.80x |" in text
    assert "| ddrnet23_slim tflite fp32 | 70.0 ms | 75.0 ms | 1.75x |" in text
    assert (
        "**ddrnet_lite tflite fp32**, 32.0 ms = **0.80x** the peer's fastest, yolo26n-sem onnx "
        "fp32 (40.0 ms)" in text
    )
    assert "AMD EPYC, 2 cores (avx2)" in text and "(1, 5, 15 min): 0.4, 0.9, 1.0" in text

    machine_path = tmp_path / "machine.json"
    report.main(report.parse_args(["machine", "--output", str(machine_path)]))
    bench_results = tmp_path / "results.jsonl"
    bench_results.write_text("\n".join(json.dumps(result) for result in synthetic_results()))
    by_hand = f"{report.BY_HAND_BEGIN}\n## Measured by hand\n\nBeam: 1.69x\n{report.BY_HAND_END}"
    output.write_text(output.read_text() + "\n" + by_hand + "\n")
    write_markdown(machine_path, bench_results, output)
    regenerated = output.read_text()
    assert regenerated.count(by_hand) == 1
    assert "the make bench table" not in regenerated and "Best fp32: **70.4 ms**" in regenerated
    assert regenerated.count("| ddrnet_lite tflite fp32 | 32.0 ms | 36.0 ms | 0.80x |") == 1
    with pytest.raises(InputError, match="no bench/peers.py run"):
        report.render_peers(synthetic_results())


def test_report_refuses_an_empty_results_file(tmp_path):
    results_path = tmp_path / "results.jsonl"
    results_path.write_text("no JSON here\n")
    with pytest.raises(InputError, match="no benchmark results in it"):
        report.read_results(results_path)
    with pytest.raises(InputError, match="no such results file"):
        report.read_results(tmp_path / "missing.jsonl")


def test_report_lists_memory_and_multi_device_figures(tmp_path):
    machine = {"date": "2026-11-22", "cpu": "AMD EPYC", "cores": 2, "load_average": [0.2] * 3,
               "python": "3.11", "packages": {"tensorflow": "2.21.0"}}  # fmt: skip
    results = [
        {"benchmark": "memory", "allocator": "malloc", "epochs": 3, "image_size": [160, 160],
         "batch_size": 16, "rss_mb": [2100.0, 2250.7, 2400.2], "peak_rss_mb": 2450.0,
         "growth_mb": 300.2, "seconds": 90.0},
        {"benchmark": "distributed", "model": "ddrnet23_slim", "image_size": [360, 480],
         "batch_size": 8, "single_step_ms": 1000.0,
         "runs": [{"replicas": 2, "step_ms_median": 1200.0, "images_per_s": 6.67, "ratio": 1.2}]},
    ]  # fmt: skip
    text = report.render_markdown(machine, results)
    assert (
        "| resident memory, training 3 epochs 160x160 batch 16 | malloc | peak 2450 MB; per "
        "epoch 2100 / 2251 / 2400 MB (growth +300 MB) | flat with tcmalloc | - |"
    ) in text
    assert (
        "| MirroredStrategy over 2 logical CPU devices | 1200 ms/step = 1.20x one device "
        "(1000 ms) |"
    ) in text


def test_train_step_and_distributed_name_bad_device_counts():
    result = run_script("bench/train_step.py", "--batch_size", "3", "--cpu_devices", "2")
    assert result.returncode == 1
    assert "--cpu_devices must be at least 1 and divide --batch_size" in result.stderr
    result = run_script("bench/distributed.py", "--batch_size", "8", "--devices", "3")
    assert result.returncode == 1
    assert "--devices must be at least 2 and divide --batch_size" in result.stderr


def test_peers_alternates_every_contestant_in_each_round():
    calls = []
    contestants = {name: (lambda name=name: calls.append(name)) for name in ("peer", "ours")}

    times = peers.alternate(contestants, rounds=3, runs=2, warmup=1)

    assert calls == ["peer", "ours"] + ["peer", "peer", "ours", "ours"] * 3
    assert {name: len(values) for name, values in times.items()} == {"peer": 6, "ours": 6}
    assert peers.percentile([5.0, 1.0, 3.0], 0.5) == 3.0


def test_peers_needs_a_peer_and_names_a_missing_onnx(tmp_path):
    with pytest.raises(InputError, match="give one of --peer_python and --peer_onnx"):
        peers.parse_args([])
    with pytest.raises(InputError, match="--peer_onnx .*missing.onnx: no such file"):
        peers.main(peers.parse_args(["--peer_onnx", str(tmp_path / "missing.onnx")]))


@pytest.mark.large
def test_peers_prints_each_contestant_and_the_ratio(tmp_path, capsys):
    import openvino

    from semseg.export import export

    # Any static-shape model stands in for the peer (the real one needs torch).
    model = keras.Sequential([keras.Input((32, 48, 3)), keras.layers.Conv2D(4, 3, padding="same")])
    stand_in = export.export_model(model, tmp_path / "peer.onnx", "onnx", (32, 48), 3)
    (tmp_path / "peer_openvino").mkdir()
    openvino.save_model(
        openvino.convert_model(str(stand_in)), str(tmp_path / "peer_openvino" / "peer.xml")
    )
    arguments = ["--peer_onnx", str(stand_in), "--peer_openvino", str(tmp_path / "peer_openvino")]
    arguments += ["--image_size", "32", "48", "--rounds", "2", "--runs", "3"]
    arguments += ["--runtimes", "onnx:fp32", "keras", "openvino:fp32"]
    arguments += ["--models", "ddrnet_lite", "ddrnet23_slim", "--outputs", "logits"]

    summary = peers.main(peers.parse_args(arguments))

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    names = [line["name"] for line in lines[:-1]]
    peer_openvino = names[1]
    assert peer_openvino in ("yolo26n-sem openvino f32", "yolo26n-sem openvino bf16")
    assert names == [
        "yolo26n-sem onnx fp32",
        peer_openvino,
        "ddrnet_lite onnx fp32 logits",
        "ddrnet_lite keras fp32 logits",
        "ddrnet_lite openvino fp32 logits",
        "ddrnet23_slim onnx fp32 logits",
        "ddrnet23_slim keras fp32 logits",
        "ddrnet23_slim openvino fp32 logits",
    ]
    assert all(line["runs"] == 6 and line["median_ms"] > 0 for line in lines[:-1])
    assert lines[-1] == summary and summary["best"] in names[2:]
    assert summary["best_ms"] == min(line["median_ms"] for line in lines[2:-1])
    # Best against best: the peer's faster runtime.
    assert summary["peer_ms"] == min(line["median_ms"] for line in lines[:2])
    assert summary["peer_best"] in names[:2]
    # The ratio is of the unrounded medians.
    assert summary["best_over_peer"] == pytest.approx(
        summary["best_ms"] / summary["peer_ms"], rel=0.2
    )
    assert "avx2" in summary["machine"]["cpu_flags"] or summary["machine"]["cpu_flags"] == []


def test_gpu_check_smoke_runs_the_gpu_tests_and_the_timing_table_on_the_cpu():
    """`bench/gpu_check.sh --smoke`: the GPU check's tests and timings, tiny, on the CPU."""
    environment = dict(os.environ, VENV=str(Path(sys.executable).parents[1]))
    environment.pop("TF_CONFIG", None)
    result = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "3 passed" in result.stdout
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    timed = {(row["model"], row["runtime"]) for row in rows if "median_ms" in row}
    assert timed == {("ddrnet23_slim", "keras")}  # XLA is tests/test_gpu.py's, in the smoke
    assert all(row["median_ms"] > 0 and row["image_size"] == [64, 128] for row in rows)
    assert "gpu check passed" in result.stdout


def test_gpu_check_without_a_gpu_says_to_use_smoke(tmp_path):
    environment = dict(os.environ, PATH=f"{tmp_path}:/usr/bin:/bin")  # no nvidia-smi
    result = subprocess.run(
        ["bash", "bench/gpu_check.sh"], cwd=ROOT, capture_output=True, text=True, env=environment
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: no NVIDIA GPU here (nvidia-smi -L fails); on a CPU run: bench/gpu_check.sh --smoke"
    ]


@pytest.mark.large
def test_int8_profile_times_every_variant_and_counts_the_xnnpack_partitions():
    result = subprocess.run(
        [sys.executable, "bench/int8_profile.py", "--image_size", "64", "64", "--rounds", "1",
         "--calls", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    variants = {line["variant"]: line for line in lines if "variant" in line}
    assert set(variants) == {
        "tflite fp32 xnnpack", "tflite fp32 builtin", "tflite int8 xnnpack",
        "tflite int8 builtin", "onnx fp32", "onnx int8 per_channel", "onnx int8 per_tensor",
        "conv3x3 stack fp32 xnnpack", "conv3x3 stack int8 xnnpack",
    }  # fmt: skip
    assert variants["conv3x3 stack int8 xnnpack"]["gmac_per_s"] > 0
    assert variants["tflite fp32 xnnpack"]["partitions"] == 1
    # DDRNet's three DAPPM average pools run outside XNNPACK in int8: four partitions.
    assert variants["tflite int8 xnnpack"]["partitions"] == 4
    assert variants["tflite int8 builtin"]["partitions"] == 0
    assert all(line["median_ms"] > 0 for line in variants.values())
    summary = lines[-1]
    assert set(summary["summary"]) == {
        "tflite_int8_over_fp32_xnnpack", "tflite_int8_xnnpack_over_builtin",
        "onnx_int8_per_channel_over_fp32", "onnx_int8_per_tensor_over_fp32",
        "conv3x3_int8_over_fp32",
    }  # fmt: skip


@pytest.mark.large
def test_build_scale_builds_plainly_and_on_beam_then_trains(tmp_path, capsys):
    from bench import build_scale

    arguments = ["--num_images", "24", "--num_val", "4", "--train_steps", "6"]
    arguments += ["--distinct_scenes", "5", "--repeats", "1"]
    arguments += ["--steps_per_epoch", "2", "--batch_size", "2", "--image_size", "64", "64"]
    builds, training, summary = build_scale.main(
        build_scale.parse_args([*arguments, "--work_dir", str(tmp_path)])
    )

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["benchmark"] for line in lines] == [
        "build_scale", "build_scale", "build_scale_train", "build_scale_summary",
    ]  # fmt: skip
    assert lines[:2] == [*builds["plain"], *builds["beam"]]
    for mode, workers in (("plain", 1), ("beam", 2)):
        (result,) = builds[mode]
        assert result["workers"] == workers and result["num_images"] == 24
        assert result["images_per_s"] > 0 and result["peak_rss_mb"] > 100
        built = json.loads(
            (tmp_path / f"tfds_{mode}/full_semantic/cvat/1.0.0/dataset_info.json").read_text()
        )
        counts = {split["name"]: sum(map(int, split["shardLengths"])) for split in built["splits"]}
        assert counts == {"train": 20, "val": 4}
    # Three validations (every 2 of 6 steps): one memory sample each.
    assert len(training["rss_mb"]) == 3 and training["images_per_s"] > 0
    assert training["rss_min_mb"] <= min(training["rss_mb"]) <= training["rss_max_mb"]
    assert summary["beam_over_plain"] == pytest.approx(
        builds["beam"][0]["images_per_s"] / builds["plain"][0]["images_per_s"], abs=1e-3
    )
    # The export is written once and reused by the next run.
    stamp = (tmp_path / "export.json").stat().st_mtime_ns
    assert build_scale.write_export(tmp_path, 24, 4, 5) == tmp_path / "export"
    assert (tmp_path / "export.json").stat().st_mtime_ns == stamp


def test_build_scale_refuses_bad_sizes(tmp_path):
    from bench import build_scale

    with pytest.raises(InputError, match="--num_images must exceed --num_val"):
        build_scale.main(build_scale.parse_args(["--num_images", "5", "--num_val", "5"]))
    with pytest.raises(InputError, match="--train_steps must be at least twice"):
        build_scale.main(build_scale.parse_args(["--train_steps", "10", "--steps_per_epoch", "8"]))
    with pytest.raises(InputError, match="--repeats must be at least 1"):
        build_scale.main(build_scale.parse_args(["--repeats", "0"]))


@pytest.mark.large
def test_build_scale_repeats_builds_and_reports_medians_without_training(tmp_path, capsys):
    from bench import build_scale

    arguments = ["--num_images", "12", "--num_val", "2", "--distinct_scenes", "3"]
    arguments += ["--repeats", "3", "--train_steps", "0", "--work_dir", str(tmp_path)]
    builds, training, summary = build_scale.main(build_scale.parse_args(arguments))

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line.get("mode") for line in lines] == [*["plain", "beam"] * 3, None]
    assert training is None and summary["train_rss_spread"] is None
    for mode, results in builds.items():
        rates = sorted(result["images_per_s"] for result in results)
        assert summary["median_images_per_s"][mode] == rates[1]
        assert summary["peak_rss_mb"][mode] == max(r["peak_rss_mb"] for r in results)


@pytest.mark.large
def test_compute_floor_times_the_model_against_its_own_convolutions(capsys):
    from bench import compute_floor

    arguments = ["--image_size", "64", "96", "--runtimes", "openvino:fp32", "onnx:fp32"]
    rows = compute_floor.main(
        compute_floor.parse_args([*arguments, "--rounds", "1", "--runs", "2"])
    )

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    throughput = [line for line in lines if line["kind"] == "throughput"]
    # One stack per feature size of DDRNet-lite's 3x3 convolutions: 1/2 .. 1/64.
    assert [line["shape"][:2] for line in throughput[:6]] == [
        [32, 48], [16, 24], [8, 12], [4, 6], [2, 3], [1, 2]
    ]  # fmt: skip
    assert all(line["gmac_per_s"] > 0 for line in throughput)
    assert [row["runtime"] for row in rows] == ["openvino:fp32", "onnx:fp32"]
    for row in rows:
        assert 0 < row["conv_gmacs"] <= row["gmacs"]
        assert row["ratio"] == pytest.approx(row["median_ms"] / row["floor_ms"], rel=0.02)
    profile = next(line for line in lines if line["kind"] == "profile")
    assert "Convolution" in profile["time_share"]
    # Shares of the whole, each rounded to 3 decimals.
    assert sum(profile["time_share"].values()) <= 1 + 0.0005 * len(profile["time_share"])
    assert lines[-1]["kind"] == "machine"


def test_the_floor_charges_each_convolution_at_its_own_feature_size():
    from bench.compute_floor import floor_ms, stack_shapes

    convs = [
        ("a", (100, 100), 8, 16, (3, 3), 1, 2_000_000_000),
        ("b", (100, 100), 16, 16, (3, 3), 1, 1_000_000_000),
        ("c", (50, 50), 16, 32, (3, 3), 1, 1_000_000_000),
        ("d", (49, 49), 32, 32, (1, 1), 1, 500_000_000),
    ]
    assert stack_shapes(convs) == [(100, 100, 16), (50, 50, 32)]
    # 3 GMAC at 100 GMAC/s, then 1.5 GMAC at 50 GMAC/s (49 is nearest to 50).
    assert floor_ms(convs, {100: 100.0, 50: 50.0}) == pytest.approx(30.0 + 30.0)


@pytest.mark.large
def test_latency_of_a_whole_frame_with_low_res_logits():
    arguments = ["--model", "ddrnet_lite", "--image_size", "64", "96", "--runtime", "openvino"]
    arguments += ["--runs", "3", "--warmup", "1", "--threads", "1"]
    alone = latency.main(latency.parse_args([*arguments, "--low_res_logits"]))
    frame = latency.main(latency.parse_args([*arguments, "--low_res_logits", "--end_to_end"]))

    assert alone["low_res_logits"] and not alone["end_to_end"] and frame["end_to_end"]
    assert 0 < alone["median_ms"] <= alone["p95_ms"] and 0 < frame["median_ms"]


def test_peers_class_map_is_the_argmax_of_our_full_resolution_logits(tmp_path):
    def run(output):
        call = peers.ours("ddrnet_lite", "keras", "fp32", output, (64, 96), 1, 5, tmp_path)
        return np.asarray(call())

    logits, class_map = run("logits"), run("class_map")

    assert logits.shape == (1, 64, 96, 5)
    assert class_map.shape == (1, 64, 96) and class_map.dtype == np.uint8
    # The same model (seeded weights), upsampled at the end or by the predictor.
    assert np.mean(class_map == logits.argmax(-1)) > 0.999


def test_upsampling_times_both_ways_to_the_same_class_ids(capsys):
    video = shared_data("video", "solidWhiteRight.mp4")
    arguments = ["--video", str(video), "--frames", "2", "--runs", "1"]
    results = upsampling.main(upsampling.parse_args([*arguments, "--image_size", "64", "96"]))

    assert [result["size"] for result in results] == [[64, 96], [128, 192], [171, 256]]
    assert all(result["logits"] == [8, 12, 19] for result in results)
    for result in results:
        assert 0.0 <= result["mixed_cells"] <= 1.0
        assert result["cells_ms"] > 0 and result["tensorflow_ms"] > 0
        # Float rounding may break a near-tie, nothing more.
        assert result["pixels_differing"] <= 0.001 * 2 * result["size"][0] * result["size"][1]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and "machine" in json.loads(lines[-1])
    with pytest.raises(InputError, match="missing.mp4: no such video file"):
        upsampling.main(
            upsampling.parse_args(["--video", "missing.mp4", "--image_size", "64", "96"])
        )
