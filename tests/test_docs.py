"""The commands in the manuals run as typed: each `python SCRIPT.py ...` line of a bash
block in README.md, docs/ and recipes/README.md is read by that script's own parser,
and each `tfds build --config '{...}'` JSON makes a `full_semantic` config.

Parsing only: a flag that does not exist, a value of the wrong type or out of range
fails; a run, dataset or file that is not on this machine (the commands name the
user's) is what the parser may still refuse, in its one `InputError` line.
"""

import importlib
import json
import re
import shlex
from pathlib import Path

import pytest

from full_semantic.config import config_from_json_fields
from semseg.base.errors import FlagError, InputError

ROOT = Path(__file__).resolve().parents[1]
MANUALS = ["README.md", "docs/SCALING.md", "docs/ARCHITECTURE.md", "recipes/README.md"]
SCRIPTS = {
    "train.py": "train",
    "eval.py": "eval",
    "predict.py": "predict",
    "predict_video.py": "predict_video",
    "predict_realtime.py": "predict_realtime",
    "export.py": "export",
    "select_images.py": "select_images",
    "convert_weights.py": "convert_weights",
    "make_demo_data.py": "make_demo_data",
    "data_augmentation/augment_data.py": "data_augmentation.augment_data",
    "data_augmentation/make_blank_label.py": "data_augmentation.make_blank_label",
    "-m full_semantic.stats": "full_semantic.stats",
    "-m full_semantic.split_rgbt": "full_semantic.split_rgbt",
    **{f"bench/{path.name}": f"bench.{path.stem}" for path in (ROOT / "bench").glob("*.py")},
}
# An InputError about a flag's own value, as RunConfig and the parsers word it.
FLAG_ERROR = re.compile(r"--\w+ must be|unrecognized arguments|invalid choice")


def shell_commands(path):
    """The commands of the ```bash blocks of a Markdown file, continuation lines joined,
    comments dropped."""
    text = (ROOT / path).read_text()
    commands = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.DOTALL):
        pending = ""
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            pending = f"{pending} {line.strip()}".strip()
            try:
                shlex.split(pending, comments=True)
            except ValueError:  # a quote spans lines (a JSON value)
                continue
            if pending and not pending.startswith("#"):
                commands.append(pending)
            pending = ""
    return commands


def script_calls():
    calls = []
    for manual in MANUALS:
        for command in shell_commands(manual):
            words = shlex.split(command, comments=True)
            for index, word in enumerate(words):
                if word.endswith("python") and index + 1 < len(words):
                    script, first = words[index + 1], index + 2
                    if script == "-m" and index + 2 < len(words):
                        script, first = f"-m {words[index + 2]}", index + 3
                    if script in SCRIPTS:
                        calls.append(pytest.param(script, words[first:], id=command[:90]))
    return calls


def config_jsons():
    found = []
    for manual in MANUALS:
        for command in shell_commands(manual):
            if "tfds build" in command and "--config" in command:
                words = shlex.split(command)
                value = words[words.index("--config") + 1]
                if value.startswith("{"):
                    found.append(pytest.param(value, id=command[:90]))
    return found


def test_the_readme_stays_a_manual_under_25_kb():
    # Dated and per-machine figures go to bench/RESULTS.md, training results to recipes/.
    size = (ROOT / "README.md").stat().st_size
    assert size < 25_000, f"README.md is {size} bytes"


def test_the_manuals_hold_the_main_commands():
    calls = {call.values[0] for call in script_calls()}
    assert {"train.py", "eval.py", "predict.py", "predict_realtime.py", "export.py"} <= calls
    assert len(config_jsons()) >= 2


@pytest.mark.parametrize("script, argv", script_calls())
def test_every_command_in_the_manuals_parses(script, argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative outputs land here, runs/ is empty
    module = importlib.import_module(SCRIPTS[script])
    try:
        module.parse_args(argv)
    except SystemExit as exit:  # argparse: an unknown flag or a mistyped value
        pytest.fail(f"{script} {' '.join(argv)}: the parser exits with {exit.code}")
    except FlagError as error:  # the command's config refuses a value
        pytest.fail(f"{script} {' '.join(argv)}: {error}")
    except InputError as error:
        assert not FLAG_ERROR.search(str(error)), f"{script} {' '.join(argv)}: {error}"


@pytest.mark.parametrize("value", config_jsons())
def test_every_build_config_in_the_manuals_is_a_config(value):
    config = config_from_json_fields(**json.loads(value))
    assert config.name
