"""Converting the authors' DDRNet and PIDNet checkpoints (../shared/reference) into our models."""

import json
import os
import pickle
import sys
import zipfile

import keras
import numpy as np
import pytest
from errors import input_error
from real_data import converted_references, reference

import models
from semseg.base.errors import InputError
from semseg.weights.pretrained import load_state_dict, load_weights_file, torch_layer_candidates
from semseg.weights.torch_checkpoint import read_torch_checkpoint, state_dict_of
from tests.torch_files import write_pickle_zip, write_torch_legacy, write_torch_zip

DEFAULT_PAIR = ("ddrnet23_slim_cityscapes", "onnx")
LARGE = (pytest.mark.large,)
NUMERIC_CASES = {
    "ddrnet23_slim_cityscapes": ("ddrnet23_slim", False),
    "pidnet_s_cityscapes": ("pidnet_s", True),
}
# case -> (model, aux_head, torch modules the model has no use for, Keras layers the file lacks)
IMAGENET_UNUSED = {"down5.0", "down5.1", "down5.3", "down5.4", "last_layer.0", "last_layer.1"}
KEYS_CASES = {
    "ddrnet23_cityscapes": ("ddrnet23", False, set(), "none"),
    "ddrnet23_slim_cityscapes_aux": ("ddrnet23_slim", True, set(), "none"),
    "ddrnet23_slim_imagenet": ("ddrnet23_slim", False, IMAGENET_UNUSED | {"linear"}, "heads"),
    "ddrnet23_imagenet": ("ddrnet23", False, IMAGENET_UNUSED | {"linear"}, "heads"),
    "pidnet_s_cityscapes_inference": ("pidnet_s", False, set(), "none"),
    "pidnet_m_cityscapes": ("pidnet_m", True, set(), "none"),
    "pidnet_l_cityscapes": ("pidnet_l", True, set(), "none"),
}


def stride_logits(model, image):
    """The model's logits before upsampling (the official output at stride 8)."""
    head = keras.Model(model.input, model.get_layer("head_2_conv").output)
    return head(image[None].astype("float32")).numpy()[0]


@pytest.fixture(scope="module")
def converted():
    """`{case: (model, reference image, official logits)}` for the numeric cases."""
    result = {}
    for case, (name, aux_head) in NUMERIC_CASES.items():
        model = models.build_model(name, 19, aux_head=aux_head, padding="symmetric")
        load_weights_file(model, reference(f"{case}.pth"))
        io = np.load(reference(f"{case}.io.npz"))
        result[case] = (model, io["image"], io["logits"])
    return result


@pytest.mark.parametrize("case", sorted(NUMERIC_CASES))
def test_converted_logits_match_the_official_model(converted, case):
    model, image, official = converted[case]
    logits = stride_logits(model, image)
    assert logits.shape == official.shape == (16, 24, 19)
    assert np.max(np.abs(logits - official)) < 1e-4
    # The inference head is the one the authors evaluate: same argmax almost everywhere.
    assert np.mean(logits.argmax(-1) == official.argmax(-1)) > 0.99


@pytest.mark.parametrize("case", sorted(KEYS_CASES))
def test_every_tensor_maps_to_exactly_one_keras_weight(case):
    name, aux_head, expected_unused, expected_missing = KEYS_CASES[case]
    shapes = json.loads(reference(f"{case}.keys.json").read_text())
    rng = np.random.default_rng(0)
    state = {key: rng.standard_normal(shape).astype("float32") for key, shape in shapes.items()}
    model = models.build_model(name, 19, aux_head=aux_head)
    report = load_state_dict(model, state, case)
    assert set(report.unused) == expected_unused
    assert not report.skipped
    if expected_missing == "none":
        assert report.missing == []
    else:  # an ImageNet classifier: the segmentation heads (DAPPM, head) stay initialised
        assert report.missing and all(
            layer.startswith(("spp_", "head_")) for layer in report.missing
        )
    assert len(set(report.loaded)) == len(report.loaded)
    used = {key for key in shapes if key.rpartition(".")[0] not in expected_unused}
    values = sum(int(np.prod(shapes[key])) for key in used if "num_batches" not in key)
    assert report.loaded_parameters == values
    # Spot check of the layout: a torch conv (O, I, kh, kw) is a Keras kernel (kh, kw, I, O).
    kernel = model.get_layer("stem_conv1").kernel.numpy()
    np.testing.assert_array_equal(kernel, np.transpose(state["conv1.0.weight"], (2, 3, 1, 0)))


def test_pidnet_training_heads_and_grouped_pappm_map():
    assert torch_layer_candidates("seghead_d.conv2", "pidnet") == ["d_head_2_conv"]
    assert torch_layer_candidates("spp.scale_process.2", "pidnet") == ["spp_process_conv"]
    assert torch_layer_candidates("layer3_.1.bn2", "ddrnet") == ["layer3_high_block2_conv2_bn"]
    assert torch_layer_candidates("layer5.0.conv1", "ddrnet") == [
        "layer5_block1_conv1",
        "layer5_conv1",
    ]
    assert torch_layer_candidates("criterion.weight", "pidnet") == []


def test_other_class_count_skips_the_classifiers(converted):
    model = models.build_model("pidnet_s", 11, aux_head=True, padding="symmetric")
    report = load_weights_file(model, reference("pidnet_s_cityscapes.pth"))
    assert set(report.skipped) == {"head_2_conv", "p_head_2_conv"}
    assert report.missing == []
    # Everything else is the official model: the features before the classifier agree.
    official_model = converted["pidnet_s_cityscapes"][0]
    image = converted["pidnet_s_cityscapes"][1][None].astype("float32")
    features = [
        keras.Model(candidate.input, candidate.get_layer("head_2_relu").output)(image).numpy()
        for candidate in (model, official_model)
    ]
    np.testing.assert_allclose(features[0], features[1], atol=1e-5)


def test_four_channel_model_skips_the_first_convolution():
    model = models.build_model("ddrnet23_slim", 19, input_shape=(None, None, 4))
    report = load_weights_file(model, reference("ddrnet23_slim_cityscapes.pth"))
    assert list(report.skipped) == ["stem_conv1"]
    assert "input channels" in report.skipped["stem_conv1"]


def test_imagenet_classifier_file_loads_the_backbone():
    model = models.build_model("ddrnet23_slim", 11)
    before = model.get_layer("head_2_conv").kernel.numpy()
    report = load_weights_file(model, reference("ddrnet23_slim_imagenet.pth"))
    assert "linear" in report.unused
    assert "head_2_conv" in report.missing and "spp_scale0_conv" in report.missing
    np.testing.assert_array_equal(model.get_layer("head_2_conv").kernel.numpy(), before)
    state = state_dict_of(read_torch_checkpoint(reference("ddrnet23_slim_imagenet.pth")), "x")
    np.testing.assert_array_equal(
        model.get_layer("layer4_high_block2_conv2_bn").moving_variance.numpy(),
        state["layer4_.1.bn2.running_var"],
    )


@pytest.mark.parametrize("layout", ["zip", "legacy", "state_dict", "module"])
def test_checkpoint_layouts(tmp_path, layout):
    state = {
        "conv.weight": np.arange(24, dtype="float32").reshape(2, 3, 2, 2),
        "bn.running_var": np.ones(2, "float32"),
        "bn.num_batches_tracked": np.array(7, dtype="int64"),
    }
    path = tmp_path / "file.pth"
    if layout == "legacy":
        write_torch_legacy(path, state)
    elif layout == "module":
        write_torch_zip(path, {f"module.{key}": value for key, value in state.items()})
    elif layout == "state_dict":
        write_torch_zip(path, state, wrap=lambda tensors: {"state_dict": tensors, "epoch": 3})
    else:
        write_torch_zip(path, state)
    loaded = state_dict_of(read_torch_checkpoint(path), path)
    assert sorted(loaded) == sorted(state)
    for key, value in state.items():
        assert loaded[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded[key], value)


def test_model_prefix_drops_the_wrappers_loss_buffers(tmp_path):
    path = tmp_path / "full_model.pt"
    write_torch_zip(
        path,
        {
            "model.conv1.0.weight": np.zeros((1, 1, 1, 1), "float32"),
            "sem_loss.weight": np.ones(3, "float32"),
        },
    )
    assert list(state_dict_of(read_torch_checkpoint(path), path)) == ["conv1.0.weight"]


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    write_pickle_zip(path, {"conv1.0.weight": _RunsCode(marker)})
    with pytest.raises(InputError, match=r"evil\.pth: refused: the pickle asks for .*system"):
        read_torch_checkpoint(path)
    assert not marker.exists()
    # The same in the legacy layout (a bare pickle stream).
    legacy = tmp_path / "evil_legacy.pth"
    legacy.write_bytes(
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps({}, protocol=2)
        + pickle.dumps({"x": _RunsCode(marker)}, protocol=2)
    )
    with pytest.raises(InputError, match="refused"):
        read_torch_checkpoint(legacy)
    assert not marker.exists()


def test_whole_module_pickles_are_refused(tmp_path):
    path = tmp_path / "model.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "archive/data.pkl",
            b"\x80\x02ctorch.nn.modules.conv\nConv2d\nq\x00)\x81q\x01.",
        )
    with pytest.raises(InputError, match=r"torch\.nn\.modules\.conv\.Conv2d"):
        read_torch_checkpoint(path)


def test_truncated_file_is_one_error(tmp_path):
    data = reference("ddrnet23_slim_cityscapes.pth").read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"truncated\.pth: truncated or damaged .* cut off at"):
        read_torch_checkpoint(path)


def test_deeply_nested_legacy_pickle_is_one_error(tmp_path):
    """200,000 nested lists: unpickling builds them, walking them must not recurse away."""
    depth = 200_000
    nested = b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."
    path = tmp_path / "nested.pth"
    with open(path, "wb") as stream:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, stream, protocol=2)
        stream.write(nested)
        pickle.dump([], stream, protocol=2)
    with pytest.raises(InputError, match="nested too deeply") as error:
        read_torch_checkpoint(path)
    assert "\n" not in str(error.value)


def test_a_storage_shorter_than_its_tensor_is_refused(tmp_path):
    path = tmp_path / "short.pth"
    write_torch_zip(path, {"weight": np.zeros((4, 4), "float32")})
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["archive/data/0"] = members["archive/data/0"][:10]
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    with pytest.raises(InputError, match="truncated"):
        read_torch_checkpoint(path)


@pytest.mark.parametrize(
    "content", [b"\xff\xd8\xff\xe0 a jpeg", b"just some text\n", b""], ids=["jpeg", "text", "empty"]
)
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"weights\.pth: .*(not a|damaged)"):
        read_torch_checkpoint(path)


def test_a_checkpoint_without_tensors_is_not_a_model(tmp_path):
    path = tmp_path / "numbers.pth"
    write_pickle_zip(path, {"epoch": 3, "best_miou": 0.7})
    with pytest.raises(InputError, match="no state dict of named tensors"):
        state_dict_of(read_torch_checkpoint(path), path)


def test_another_architecture_names_the_key_and_both_shapes():
    model = models.build_model("ddrnet23", 19)
    message = input_error(
        lambda: load_weights_file(model, reference("ddrnet23_slim_cityscapes.pth"))
    )
    assert message.startswith(str(reference("ddrnet23_slim_cityscapes.pth")))
    assert "tensor conv1.0.weight has shape [32, 3, 3, 3] in the file" in message
    assert "stem_conv1 expects [64, 3, 3, 3]" in message
    model = models.build_model("pidnet_s", 19)
    with pytest.raises(InputError, match=r"has no counterpart|expects"):
        load_weights_file(model, reference("ddrnet23_slim_cityscapes.pth"))


def test_torch_files_are_refused_for_other_models(tmp_path):
    model = models.build_model("effdeeplabv3plus_lite", 3)
    with pytest.raises(InputError, match="read for DDRNet and PIDNet"):
        load_weights_file(model, reference("ddrnet23_slim_cityscapes.pth"))


def test_convert_weights_writes_a_work_dir_predict_reads(tmp_path):
    from commands import run

    work_dir = tmp_path / "pidnet_s_cityscapes"
    result = run(
        sys.executable,
        "convert_weights.py",
        "--model",
        "pidnet_s",
        "--weights",
        reference("pidnet_s_cityscapes.pth"),
        "--output",
        work_dir,
        "--image_size",
        "128",
        "192",
    )
    assert "loaded 150 layers" in result.stdout
    config = json.loads((work_dir / "config.json").read_text())
    assert config["model"] == "pidnet_s" and config["class_names"][0] == "road"
    assert len(config["class_names"]) == 19
    report = json.loads((work_dir / "weights.json").read_text())
    assert sorted({name.split(".")[0] for name in report["unused"]}) == ["seghead_d", "seghead_p"]
    image = tmp_path / "input" / "frame.png"
    image.parent.mkdir()
    io = np.load(reference("pidnet_s_cityscapes.io.npz"))
    import cv2

    cv2.imwrite(str(image), io["image"][..., ::-1])
    run(
        sys.executable,
        "predict.py",
        "--work_dir",
        work_dir,
        "--input",
        image.parent,
        "--output",
        tmp_path / "out",
    )
    mask = cv2.imread(str(tmp_path / "out" / "masks" / "frame.png"))[..., ::-1]
    palette = np.asarray(config["palette"])
    # The predicted colours are the official model's argmax, upsampled: compare at stride 8.
    official = palette[io["logits"].argmax(-1)]
    agreement = np.mean(np.all(mask[4::8, 4::8] == official, axis=-1))
    assert agreement > 0.9


@pytest.mark.parametrize("problem", ["truncated", "architecture", "code", "not_checkpoint"])
def test_convert_weights_bad_files(tmp_path, problem):
    from commands import run

    marker = tmp_path / "pwned"
    path = tmp_path / "bad.pth"
    model = "pidnet_s"
    if problem == "truncated":
        data = reference("pidnet_s_cityscapes.pth").read_bytes()
        path.write_bytes(data[: len(data) - 5000])
    elif problem == "architecture":
        path = reference("ddrnet23_slim_cityscapes.pth")
    elif problem == "code":
        write_pickle_zip(path, {"conv1.0.weight": _RunsCode(marker)})
    else:
        path.write_text("model weights\n")
    output = tmp_path / "out"
    result = run(
        sys.executable,
        "convert_weights.py",
        "--model",
        model,
        "--weights",
        path,
        "--output",
        output,
        check=False,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: {path}")
    assert sum(line.startswith("error:") for line in lines) == 1
    assert "Traceback" not in result.stderr
    assert not output.exists() and not marker.exists()
    assert not [item for item in tmp_path.iterdir() if item.name.startswith(".out")]


@pytest.fixture(scope="module")
def converted_runs(tmp_path_factory):
    """`{case: work dir}` converted from the authors' files for the numeric cases."""
    models = {case: name for case, (name, _) in NUMERIC_CASES.items()}
    return converted_references(tmp_path_factory.mktemp("converted"), models)


# One pair in the default suite; the other five (10-22 s each) are `large`.
EXPORT_PAIRS = [
    pytest.param(case, format_name, marks=() if (case, format_name) == DEFAULT_PAIR else LARGE)
    for case in sorted(NUMERIC_CASES)
    for format_name in ("tflite", "onnx", "saved_model")
]


@pytest.mark.parametrize("case, format_name", EXPORT_PAIRS)
def test_export_of_a_converted_run_keeps_the_official_logits(converted_runs, case, format_name):
    """export.py on a convert_weights.py work dir whose dataset (Cityscapes) is not built."""
    import tensorflow as tf

    from semseg.export.options import ExportConfig
    from semseg.export.run import export_run
    from semseg.runtime.runtimes import load_runtime

    path, description = export_run(
        ExportConfig(work_dir=converted_runs[case], format=format_name, verify_examples=2)
    )
    assert description["max_abs_logit_diff"] < 1e-4
    assert description["miou_change"] is None and "generated images" in description["verified_on"]
    io = np.load(reference(f"{case}.io.npz"))
    logits = np.asarray(load_runtime(path, 3)(io["image"][None].astype("float32")))
    # The official stride-8 logits, bilinearly upsampled (half-pixel centres) as the model does.
    official = tf.image.resize(io["logits"][None], (128, 192), method="bilinear").numpy()
    assert logits.shape == official.shape == (1, 128, 192, 19)
    assert np.max(np.abs(logits - official)) < 1e-4


def test_int8_export_of_a_run_without_its_dataset_is_one_error(converted_runs):
    from semseg.export.options import ExportConfig
    from semseg.export.run import export_run

    with pytest.raises(InputError, match="full_semantic"):
        export_run(
            ExportConfig(
                work_dir=converted_runs["pidnet_s_cityscapes"], format="tflite", quantize="int8"
            )
        )


def test_folded_batch_norms_keep_the_converted_logits(converted):
    from semseg.runtime.runtimes import KerasRuntime

    model, image, _ = converted["pidnet_s_cityscapes"]
    inference = keras.Model(model.input, model.outputs[0])
    images = image[None].astype("float32")
    folded = np.asarray(KerasRuntime(inference, 3, optimize=True)(images))
    assert np.max(np.abs(folded - inference(images).numpy())) < 1e-4


def test_a_keras_file_given_to_weights_is_reported_as_weights(tmp_path):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a keras archive")
    with pytest.raises(InputError, match=rf"^--weights {broken}: cannot load the checkpoint"):
        load_weights_file(models.build_model("ddrnet_lite", 3), broken)
