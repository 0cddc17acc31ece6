"""Published weights by name: MMSegmentation's DDRNet and PIDNet files, fetched and converted.

The numeric ground truth is ../shared/reference/mmseg: MMSeg's own models with random
weights, saved as MMSeg publishes them, and their outputs on a fixed image. Downloads
go to an `http.server` on 127.0.0.1 serving those files.
"""

import contextlib
import dataclasses
import hashlib
import http.server
import json
import os
import socket
import sys
import threading
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
from commands import run
from errors import assert_one_line_error, input_error
from real_data import converted_references, reference

import models
from semseg.base.errors import InputError
from semseg.config import published_weights
from semseg.weights import mmseg_keys, published_runs
from semseg.weights.download import fetch
from semseg.weights.pretrained import FileState, load_state_dict, load_weights_file, read_state
from tests.torch_files import write_torch_zip

ROOT = Path(__file__).resolve().parents[3]
# case -> model
NUMERIC_CASES = {"ddrnet23_slim_cityscapes": "ddrnet23_slim", "pidnet_s_cityscapes": "pidnet_s"}
KEYS_CASES = {
    f"{model}_{holds}": model
    for model in ("ddrnet23_slim", "ddrnet23", "pidnet_s", "pidnet_m", "pidnet_l")
    for holds in ("cityscapes", "imagenet")
}
HEAD_LAYERS = ("head_", "aux_head_", "p_head_", "d_head_")


def mmseg_reference(name):
    """A file of MMSegmentation's published format, ../shared/reference/mmseg/NAME."""
    return reference("mmseg", name)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def mmseg_runs(tmp_path_factory):
    """`{case: work dir}` converted from MMSeg's files."""
    return converted_references(tmp_path_factory.mktemp("mmseg"), NUMERIC_CASES, "mmseg")


@pytest.mark.parametrize("case", sorted(NUMERIC_CASES))
def test_converted_mmseg_model_reproduces_mmseg(mmseg_runs, case):
    work_dir = mmseg_runs[case]
    model = keras.saving.load_model(work_dir / "checkpoints" / "best.keras")
    io = np.load(mmseg_reference(f"{case}.io.npz"))
    image = io["image"][None].astype("float32")
    stride = keras.Model(model.input, model.get_layer("head_2_conv").output)(image).numpy()[0]
    assert stride.shape == io["logits"].shape == (16, 24, 19)
    assert np.max(np.abs(stride - io["logits"])) < 1e-4
    # Full size as MMSeg's whole-image inference returns it (PIDHead: align_corners=True).
    full = model(image).numpy()[0]
    assert full.shape == io["logits_full"].shape == (128, 192, 19)
    assert np.max(np.abs(full - io["logits_full"])) < 1e-3
    report = json.loads((work_dir / "weights.json").read_text())
    assert report["skipped"] == {} and report["missing"] == []
    config = json.loads((work_dir / "config.json").read_text())
    assert config["training"]["layout"] == "mmseg" and config["class_names"][0] == "road"
    # A folder as train.py's and mkdir's are (not mkdtemp's private 0700).
    umask = os.umask(0)
    os.umask(umask)
    assert work_dir.stat().st_mode & 0o777 == 0o777 & ~umask


# PIDNet's full-size output upsamples with align_corners=True (gathers, not a resize op):
# both exporters in the default suite; DDRNet's are `large`.
EXPORT_CASES = [
    pytest.param(case, format_name, marks=() if case.startswith("pidnet") else pytest.mark.large)
    for case in sorted(NUMERIC_CASES)
    for format_name in ("tflite", "onnx")
]


@pytest.mark.parametrize("case, format_name", EXPORT_CASES)
def test_exports_of_a_converted_mmseg_model_keep_mmseg_outputs(mmseg_runs, case, format_name):
    from semseg.export.options import ExportConfig
    from semseg.export.run import export_run
    from semseg.runtime.runtimes import load_runtime

    path, description = export_run(
        ExportConfig(work_dir=mmseg_runs[case], format=format_name, verify_examples=2)
    )
    assert description["max_abs_logit_diff"] < 1e-4
    io = np.load(mmseg_reference(f"{case}.io.npz"))
    logits = np.asarray(load_runtime(path, 3)(io["image"][None].astype("float32")))[0]
    assert np.max(np.abs(logits - io["logits_full"])) < 1e-3


def random_state(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return {key: rng.standard_normal(shape).astype("float32") for key, shape in shapes.items()}


@pytest.mark.parametrize("case", sorted(KEYS_CASES))
def test_every_mmseg_tensor_maps_to_exactly_one_keras_weight(case):
    model_name = KEYS_CASES[case]
    shapes = json.loads(mmseg_reference(f"{case}.keys.json").read_text())
    family = "ddrnet" if model_name.startswith("ddrnet") else "pidnet"
    state = random_state(shapes)
    official, file_keys, extra = mmseg_keys.official_state(state, family)
    assert extra == []
    # One file tensor per authors' key, none lost or merged.
    assert sorted(key for key in file_keys.values() if "(none: 0)" not in key) == sorted(shapes)
    model = models.build_model(model_name, 19, aux_head=True, padding="symmetric")
    report = load_state_dict(model, FileState(official, file_keys, extra, "mmseg"), case)
    assert report.skipped == {} and report.unused == []
    assert len(set(report.loaded)) == len(report.loaded)
    values = sum(int(np.prod(shape)) for key, shape in shapes.items() if "num_batches" not in key)
    stem_biases = sum(
        int(official[f"{conv}.bias"].size) for conv in ("conv1.0", "conv1.3")
    )  # zeros: MMSeg's stem convolutions have none
    assert report.loaded_parameters == values + stem_biases
    if case.endswith("cityscapes"):
        assert report.missing == []
        assert report.loaded_parameters == report.total_parameters
    else:  # the backbone alone: the decode heads stay initialised
        assert report.missing and all(name.startswith(HEAD_LAYERS) for name in report.missing)
    # Spot check: the file's classifier (or last BN) is where the name says.
    if case.endswith("cityscapes"):
        np.testing.assert_array_equal(
            model.get_layer("head_2_conv").kernel.numpy(),
            np.transpose(state["decode_head.conv_seg.weight"], (2, 3, 1, 0)),
        )


def imagenet_style_file(path, extra_keys=False, trainable=False):
    """The backbone tensors of the reference Cityscapes file without `backbone.` (as MMSeg's
    ImageNet files are), optionally with an ImageNet classifier's keys.

    With `trainable`, the random convolution kernels are scaled to He initialisation
    (the stand-in's unit-variance kernels overflow float32 after a few dozen layers)."""
    backbone = {
        key.removeprefix("backbone."): value
        for key, value in _mmseg_tensors(mmseg_reference("pidnet_s_cityscapes.pth")).items()
        if key.startswith("backbone.")
    }
    if trainable:
        for key, value in backbone.items():
            if value.ndim == 4:
                fan_in = value[0].size
                backbone[key] = value * np.float32(np.sqrt(2.0 / fan_in) / value.std())
    if extra_keys:
        rng = np.random.default_rng(1)
        backbone["fc.weight"] = rng.standard_normal((1000, 1024)).astype("float32")
        backbone["fc.bias"] = np.zeros(1000, "float32")
        backbone["last_layer.conv.weight"] = np.zeros((1024, 256, 1, 1), "float32")
    write_torch_zip(path, backbone, wrap=(lambda tensors: {"state_dict": tensors}))
    return backbone


def _mmseg_tensors(path):
    from semseg.weights.torch_checkpoint import read_torch_checkpoint, state_dict_of

    return state_dict_of(read_torch_checkpoint(path), path)


@pytest.mark.parametrize("extra_keys", [False, True], ids=["backbone", "with_classifier"])
def test_imagenet_style_file_initialises_the_backbone_of_an_11_class_model(tmp_path, extra_keys):
    path = tmp_path / "pidnet-s_imagenet1k.pth"
    backbone = imagenet_style_file(path, extra_keys)
    model = models.build_model("pidnet_s", 11, aux_head=True, padding="symmetric")
    heads_before = model.get_layer("head_2_conv").kernel.numpy()
    report = load_weights_file(model, path).to_dict()  # what train.py writes as weights.json
    assert report["skipped"] == {}
    assert report["missing"] and all(name.startswith(HEAD_LAYERS) for name in report["missing"])
    np.testing.assert_array_equal(model.get_layer("head_2_conv").kernel.numpy(), heads_before)
    np.testing.assert_array_equal(
        model.get_layer("layer5_d_conv3_bn").moving_variance.numpy(),
        backbone["d_branch_layers.2.0.conv3.bn.running_var"],
    )
    assert report["unused"] == (["fc", "last_layer.conv"] if extra_keys else [])


def test_a_segmentor_file_of_another_architecture_names_the_mmseg_key(tmp_path):
    state = _mmseg_tensors(mmseg_reference("ddrnet23_slim_cityscapes.pth"))
    state["decode_head.extra_conv.weight"] = np.zeros((3, 3, 1, 1), "float32")
    path = tmp_path / "odd.pth"
    write_torch_zip(path, state, wrap=lambda tensors: {"meta": {}, "state_dict": tensors})
    with pytest.raises(InputError, match=r"decode_head\.extra_conv\.weight \[3, 3, 1, 1\]"):
        load_weights_file(models.build_model("ddrnet23_slim", 19), path)
    # An MMSeg DDRNet file given to PIDNet names a key of the file, not a renamed one.
    with pytest.raises(InputError, match="backbone.context_branch_layers"):
        load_weights_file(
            models.build_model("pidnet_s", 19), mmseg_reference("ddrnet23_slim_cityscapes.pth")
        )


def test_the_authors_layout_is_still_told_apart():
    state = read_state(reference("pidnet_s_cityscapes.pth"), "pidnet")
    assert state.layout == "authors" and state.file_keys == {}


# --- Fetching --------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `files` by path; `/missing` 404s, `/halfway/...` closes mid-transfer."""

    files = {}
    requests = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.requests.append(self.path)
        halfway = self.path.startswith("/halfway/")
        body = self.files.get(self.path.removeprefix("/halfway"))
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if halfway else body)
        if halfway:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, *arguments):
        pass


@contextlib.contextmanager
def file_server(files):
    """An HTTP server on 127.0.0.1 serving `{url path: bytes}`; yields its base URL."""
    _Handler.files = files
    _Handler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMSEG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def point_entry(monkeypatch, name, url, sha256_prefix):
    """Points the table's `name` at a local URL (the table is data)."""
    entry = dataclasses.replace(
        published_weights.PUBLISHED[name], url=url, sha256_prefix=sha256_prefix
    )
    monkeypatch.setitem(published_weights.PUBLISHED, name, entry)
    return entry


def cache_files(cache):
    return (
        sorted(path.name for path in cache.rglob("*") if path.is_file()) if cache.exists() else []
    )


def test_first_use_downloads_and_a_second_works_offline(cache, monkeypatch):
    source = mmseg_reference("ddrnet23_slim_cityscapes.pth")
    with file_server({"/w/ddrnet.pth": source.read_bytes()}) as base:
        entry = point_entry(
            monkeypatch, "ddrnet23_slim_cityscapes", f"{base}/w/ddrnet.pth", sha256(source)[:8]
        )
        path = published_runs.weights_file(entry.name, progress=False)
        assert _Handler.requests == ["/w/ddrnet.pth"]
    assert path == cache / "weights" / "ddrnet.pth"
    assert sha256(path) == sha256(source) and cache_files(cache) == ["ddrnet.pth"]
    # The server is gone: the cached file is checked and used.
    assert published_runs.weights_file(entry.name, progress=False) == path


@pytest.mark.parametrize("problem", ["hash", "404", "halfway", "no_server"])
def test_failed_downloads_are_one_line_and_leave_nothing(cache, monkeypatch, problem):
    source = mmseg_reference("pidnet_s_cityscapes.pth")
    prefix = "00000000" if problem == "hash" else sha256(source)[:8]
    path = {"404": "/missing.pth", "halfway": "/halfway/p.pth"}.get(problem, "/p.pth")
    expected = {
        "hash": "the publisher's starts with 00000000",
        "404": "HTTP error 404",
        "halfway": f"closed after {source.stat().st_size // 2:,} of",
        "no_server": "cannot connect",
    }[problem]
    with file_server({"/p.pth": source.read_bytes()}) as base:
        if problem == "no_server":
            base = f"http://127.0.0.1:{free_port()}"
        entry = point_entry(monkeypatch, "pidnet_s_cityscapes", f"{base}{path}", prefix)
        message = input_error(lambda: published_runs.weights_file(entry.name, progress=False))
    assert expected in message and "\n" not in message
    assert message.startswith(entry.url) and str(published_runs.cached_file(entry)) in message
    assert cache_files(cache) == []


def test_a_wrong_cached_file_is_refused_not_used(cache):
    path = cache / "x.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the file")
    with pytest.raises(InputError, match="cached file has sha256"):
        fetch("http://127.0.0.1:9/x.pth", path, "abcdef12")


def test_the_model_is_implied_and_a_mismatch_is_one_error():
    assert published_weights.implied_model("pidnet_s_imagenet") == "pidnet_s"
    assert published_weights.implied_model("pidnet_s_imagenet", "pidnet_s") == "pidnet_s"
    assert published_weights.implied_model("runs/x/best.keras", "ddrnet_lite") == "ddrnet_lite"
    with pytest.raises(InputError, match="pidnet_s's, not ddrnet23_slim's"):
        published_weights.implied_model("pidnet_s_imagenet", "ddrnet23_slim")


def test_train_refuses_a_model_the_name_does_not_fit():
    result = run(
        sys.executable,
        "train.py",
        "--weights",
        "pidnet_s_imagenet",
        "--model",
        "ddrnet23_slim",
        "--dataset",
        "full_semantic/cvat",
    )
    assert result.returncode == 1
    assert_one_line_error(result, "--weights pidnet_s_imagenet is pidnet_s's, not ddrnet23_slim's")


def test_predicting_with_an_imagenet_backbone_is_one_error(cache):
    result = run(
        sys.executable, "predict.py", "--weights", "pidnet_s_imagenet", "--input", ROOT / "docs"
    )
    assert result.returncode == 1
    assert "an ImageNet backbone without a segmentation head" in result.stderr
    assert "Traceback" not in result.stderr


def test_readme_table_is_the_published_table():
    assert published_weights.markdown_table() in (ROOT / "README.md").read_text()


def test_every_entry_is_checked_by_its_file_name():
    for entry in published_weights.PUBLISHED.values():
        assert entry.file_name.endswith(f"-{entry.sha256_prefix}.pth")
        assert entry.model in models.MODELS and entry.url.startswith("https://download.openmmlab")
        assert (entry.miou is None) == (entry.holds == "imagenet")


# Runs a command line with one table entry pointed at a local URL (the table is data).
POINTED_COMMAND = """
import dataclasses, runpy, sys
from semseg.config import published_weights as table
name, url, prefix, script = sys.argv[1:5]
table.PUBLISHED[name] = dataclasses.replace(table.PUBLISHED[name], url=url, sha256_prefix=prefix)
sys.argv = [script, *sys.argv[5:]]
runpy.run_path(script, run_name="__main__")
"""


def run_pointed(cache, name, url, prefix, script, *arguments):
    return run(
        "env",
        f"SEMSEG_CACHE={cache}",
        sys.executable,
        "-c",
        POINTED_COMMAND,
        name,
        url,
        prefix,
        script,
        *arguments,
    )


def test_predict_with_a_published_name_in_one_command(tmp_path):
    cache = tmp_path / "cache"
    source = mmseg_reference("pidnet_s_cityscapes.pth")
    io = np.load(mmseg_reference("pidnet_s_cityscapes.io.npz"))
    images = tmp_path / "photos"
    images.mkdir()
    cv2.imwrite(str(images / "street.png"), cv2.resize(io["image"], (256, 128))[..., ::-1])

    def predict(url, output):
        """predict.py --weights pidnet_s_cityscapes, the name's file at `url`."""
        arguments = ("--weights", "pidnet_s_cityscapes", "--input", images, "--output", output)
        prefix = sha256(source)[:8]
        return run_pointed(cache, "pidnet_s_cityscapes", url, prefix, "predict.py", *arguments)

    with file_server({"/p.pth": source.read_bytes()}) as base:
        result = predict(f"{base}/p.pth", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    work_dir = cache / "runs" / "pidnet_s_cityscapes"
    assert (work_dir / "checkpoints" / "best.keras").is_file()
    config = json.loads((work_dir / "config.json").read_text())
    assert config["weights"] == "pidnet_s_cityscapes" and config["model"] == "pidnet_s"
    mask = cv2.imread(str(tmp_path / "out" / "masks" / "street.png"))[..., ::-1]
    assert (tmp_path / "out" / "overlays" / "street.jpg").is_file()
    palette = {tuple(color) for color in config["palette"]}
    assert len(palette) == 19 and (128, 64, 128) in palette  # Cityscapes' road
    assert {tuple(color) for color in mask.reshape(-1, 3)} <= palette
    # Offline now: the cached file and converted run answer alone.
    result = predict(f"http://127.0.0.1:{free_port()}/p.pth", tmp_path / "again")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "again" / "masks" / "street.png").is_file()


def test_convert_weights_offline_is_one_error_line_naming_url_and_path(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/pidnet.pth"
    result = run_pointed(
        tmp_path / "cache",
        "pidnet_s_cityscapes",
        url,
        "bb8e3bcc",
        "convert_weights.py",
        "--weights",
        "pidnet_s_cityscapes",
        "--output",
        tmp_path / "run",
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {url}: cannot connect")
    assert str(tmp_path / "cache" / "weights" / "pidnet.pth") in lines[-1]
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
    assert cache_files(tmp_path / "cache") == []


@pytest.mark.large
def test_train_fine_tunes_from_a_published_imagenet_name(demo_run, tmp_path):
    from commands import TINY_RUN

    path = tmp_path / "imagenet.pth"
    imagenet_style_file(path, extra_keys=True, trainable=True)
    with file_server({"/i.pth": path.read_bytes()}) as base:
        result = run_pointed(
            tmp_path / "cache",
            "pidnet_s_imagenet",
            f"{base}/i.pth",
            sha256(path)[:8],
            "train.py",
            "--weights",
            "pidnet_s_imagenet",
            "--dataset",
            "full_semantic/cvat",
            "--data_dir",
            demo_run.parent / "tfds",
            "--work_dir",
            tmp_path / "run",
            *TINY_RUN,
            # Enough steps for batch norm's moving statistics to settle (a validation
            # loss that is not finite at the end fails the run).
            "--steps_per_epoch",
            "48",
        )
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"] == "pidnet_s" and config["weights"] == "pidnet_s_imagenet"
    report = json.loads((tmp_path / "run" / "weights.json").read_text())
    assert report["unused"] == ["fc", "last_layer.conv"] and report["skipped"] == {}
    assert all(name.startswith(HEAD_LAYERS) for name in report["missing"])
