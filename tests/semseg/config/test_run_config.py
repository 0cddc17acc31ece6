import dataclasses
import json
from pathlib import Path

import pytest

import train
from semseg.base.cli import config_parser
from semseg.base.errors import InputError
from semseg.base.labels import LabelSpec
from semseg.config.recipes import apply_recipe
from semseg.config.run import Run, check_work_dir, load_run, save_run
from semseg.config.run_config import RunConfig


def fake_build(data_dir, config):
    """What `semseg.config.workspace` looks for:
    DATA_DIR/full_semantic/CONFIG/1.0.0/dataset_info.json."""
    version_dir = Path(data_dir) / "full_semantic" / config / "1.0.0"
    version_dir.mkdir(parents=True)
    (version_dir / "dataset_info.json").write_text("{}")


def test_train_flags_map_one_to_one_to_run_config_fields(tmp_path):
    fake_build(tmp_path, "x")
    parser = config_parser(train.__doc__, RunConfig)
    flags = {action.dest for action in parser._actions} - {"help", "verbose"}
    assert flags == {field.name for field in dataclasses.fields(RunConfig)}
    argv = ["--work_dir", "w", "--dataset", "full_semantic/x", "--data_dir", str(tmp_path)]
    config = train.parse_args(argv).config
    assert config == RunConfig(work_dir="w", dataset="full_semantic/x", data_dir=str(tmp_path))


def test_config_json_round_trip(tmp_path):
    config = RunConfig(
        work_dir=str(tmp_path), dataset="full_semantic/camvid", image_size=(360, 480), epochs=3
    )
    labels = LabelSpec(["road", "car"], [[128, 64, 128], [64, 0, 128]])
    save_run(Run(config, labels, num_channels=4))
    values = json.loads((tmp_path / "config.json").read_text())
    assert values["class_names"] == ["road", "car"]
    assert values["palette"] == [[128, 64, 128], [64, 0, 128]]
    assert values["ignore_index"] == 255
    assert values["image_size"] == [360, 480]
    run = load_run(tmp_path)
    assert run.config == config
    assert run.labels == labels
    assert run.num_channels == 4
    assert run.dataset_build is None and "dataset_build" not in values
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"
    build = {"name": "full_semantic/camvid/1.0.0", "version_dir": "/d", "source_fingerprint": "x"}
    save_run(Run(config, labels, dataset_build=build))
    assert load_run(tmp_path).dataset_build == build


@pytest.mark.parametrize(
    "changes, flag",
    [
        ({"image_size": (16, 16)}, "--image_size"),
        ({"batch_size": 0}, "--batch_size"),
        ({"optimizer": "rmsprop"}, "--optimizer"),
        ({"schedule": "step"}, "--schedule"),
        ({"loss": "dice2"}, "--loss"),
        ({"scale_range": (2.0, 0.5)}, "--scale_range"),
        ({"dataset": "camvid"}, "--dataset"),
        ({"learning_rate": 0.0}, "--learning_rate"),
        ({"learning_rate": float("inf")}, "--learning_rate"),
        ({"momentum": 2.0}, "--momentum"),
        ({"momentum": float("nan")}, "--momentum"),
        ({"weight_decay": float("nan")}, "--weight_decay"),
        ({"aux_weight": float("inf")}, "--aux_weight"),
        ({"boundary_weight": -1.0}, "--boundary_weight"),
        ({"scale_range": (0.5, float("inf"))}, "--scale_range"),
        ({"crop_size": (16, 64)}, "--crop_size"),
        ({"crop_size": (64, 64), "augment": False}, "--crop_size"),
        ({"ema": 1.0}, "--ema"),
        ({"ema": float("nan")}, "--ema"),
    ],
)
def test_invalid_settings_name_the_flag(changes, flag):
    settings = {"work_dir": "w", "dataset": "full_semantic/x", **changes}
    with pytest.raises(InputError, match=flag):
        RunConfig(**settings)


def test_missing_or_broken_config_json_names_the_file(tmp_path):
    with pytest.raises(InputError, match="config.json: not found"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="config.json: not a valid run config"):
        load_run(tmp_path)


RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "camvid_ddrnet23_slim.json"


def test_the_camvid_recipe_holds_the_whole_configuration():
    config = RunConfig(**apply_recipe({"recipe": str(RECIPE)}, given={"recipe"}), work_dir="w")
    assert config.recipe == str(RECIPE)
    assert config.dataset == "full_semantic/camvid" and config.model == "ddrnet23_slim"
    assert config.image_size == (360, 480) and config.augment
    assert config.scale_range == (0.5, 2.0)
    assert config.loss.startswith("ohem") and config.class_weights == "median"
    assert config.aux_weight == 0.4 and config.schedule == "poly"
    assert config.mixed_precision
    # Every key of the file arrived unchanged.
    for key, value in json.loads(RECIPE.read_text()).items():
        expected = tuple(value) if isinstance(value, list) else value
        assert getattr(config, key) == expected, key


@pytest.mark.parametrize("recipe", sorted(RECIPE.parent.glob("*.json")), ids=lambda path: path.name)
def test_every_recipe_is_a_valid_run_config(recipe):
    config = RunConfig(**apply_recipe({"recipe": str(recipe)}, given={"recipe"}), work_dir="w")
    for key, value in json.loads(recipe.read_text()).items():
        expected = tuple(value) if isinstance(value, list) else value
        assert getattr(config, key) == expected, key


def test_flags_on_the_command_line_override_the_recipe(tmp_path):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"dataset": "full_semantic/a", "epochs": 7, "batch_size": 4}))
    fake_build(tmp_path, "a")
    argv = ["--recipe", str(recipe), "--work_dir", "w", "--epochs", "100"]
    config = train.parse_args([*argv, "--data_dir", str(tmp_path)]).config
    assert config.epochs == 100  # given, even though it equals the default
    assert config.batch_size == 4 and config.dataset == "full_semantic/a"


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"epoch": 3}', "unknown key 'epoch'"),
        ('{"epochs": "3"}', "epochs must be an integer"),
        ('{"image_size": [360]}', "image_size must be a list of 2 integers"),
        ("[1, 2]", "a recipe is a JSON object"),
        ("{oops", "not a JSON recipe"),
    ],
)
def test_a_bad_recipe_is_named_with_what_is_wrong(tmp_path, text, message):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(text)
    with pytest.raises(InputError, match=f"{recipe}: {message}"):
        train.parse_args(["--recipe", str(recipe), "--work_dir", "w"])
    with pytest.raises(InputError, match="recipe not found"):
        train.parse_args(["--recipe", str(tmp_path / "none.json"), "--work_dir", "w"])


def test_a_recipe_with_nan_is_one_line_naming_the_setting(tmp_path):
    fake_build(tmp_path, "a")
    recipe = tmp_path / "recipe.json"
    recipe.write_text('{"dataset": "full_semantic/a", "momentum": NaN, "learning_rate": 1e400}')
    with pytest.raises(InputError) as caught:
        train.parse_args(["--recipe", str(recipe), "--data_dir", str(tmp_path), "--work_dir", "w"])
    message = str(caught.value)
    assert "--momentum must be in [0, 1)" in message and "momentum=nan" in message
    assert "--learning_rate must be positive. Received: learning_rate=inf" in message
    assert "\n" not in message


def test_a_binary_loss_is_stored_as_binary_and_resumes_with_the_same_flags(tmp_path):
    def flags():
        return RunConfig(
            work_dir=str(tmp_path / "run"), dataset="full_semantic/cracks", loss="bce:1.0,dice:1.0"
        )

    config = flags()
    assert config.binary is True
    save_run(Run(config=config, labels=LabelSpec(["background", "crack"])))
    assert json.loads((tmp_path / "run" / "config.json").read_text())["binary"] is True
    assert load_run(tmp_path / "run").config.binary is True
    (tmp_path / "run" / "backup").mkdir()
    check_work_dir(flags())  # the same flags resume the unfinished run
    with pytest.raises(InputError, match="loss differ"):
        check_work_dir(dataclasses.replace(flags(), loss="ce"))
    assert RunConfig(work_dir="w", dataset="full_semantic/cracks", loss="dice").binary is False


def test_output_strides_are_the_encoders():
    from models import encoders
    from semseg.config import run_config

    assert run_config.OUTPUT_STRIDES == encoders.OUTPUT_STRIDES
