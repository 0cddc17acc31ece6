import dataclasses
import json

import pytest

import train
from semseg.errors import InputError
from semseg.labels import LabelSpec
from semseg.run_config import Run, RunConfig, load_run, save_run


def test_train_flags_map_one_to_one_to_run_config_fields():
    args = train.parse_args(["--work_dir", "w", "--dataset", "full_semantic/x"])
    assert set(vars(args)) == {field.name for field in dataclasses.fields(RunConfig)}
    config = RunConfig(**vars(args))
    defaults = RunConfig(work_dir="w", dataset="full_semantic/x")
    assert config == defaults


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
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


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
