"""`semseg.base.cli`: a command's flags made from its config dataclass, the checks run
when a config is made, and the rule that no command types its flags by hand."""

import dataclasses
import subprocess
import sys

import pytest
from commands import ROOT

from semseg.base.cli import (
    Command,
    at_least,
    config_parser,
    option,
    parse_config,
    parse_subcommand,
    size_at_least,
    within,
)
from semseg.base.errors import FlagError, InputError


def height_by_width(text):
    height, width = text.split("x")
    return int(height), int(width)


@dataclasses.dataclass
class Example(Command):
    """an example command"""

    name: str = option(required=True, help="a name")
    count: int = option(3, "how many", check=at_least(1))
    share: float | None = option(help="a fraction", check=within(0, 1))
    fast: bool = option(False, "a switch")
    keep: bool = option(True, "on unless --no-keep")
    size: tuple[int, int] = option((4, 5), "height and width")
    scales: tuple[float, ...] = option((1.0,), "one or more")
    sizes: tuple[tuple[int, int], ...] = option(((1, 2),), "HxW values", type=height_by_width)
    mode: str = option("a", "a mode", choices=("a", "b"), group="modes")

    def check_together(self):
        super().check_together()
        if self.fast and self.mode == "b":
            raise InputError("--fast does not go with --mode b")


@dataclasses.dataclass
class Several(Command):
    kinds: tuple[str, ...] = option(("a", "b"), "one or more kinds", choices=("a", "b"))


def test_the_flags_are_the_fields_with_their_types():
    config = parse_config(
        Example,
        "doc",
        ["--name", "x", "--count", "7", "--fast", "--no-keep", "--size", "8", "9",
         "--scales", "0.5", "2", "--sizes", "3x4", "5x6", "--share", "0.25"],
    )  # fmt: skip
    assert config == Example(
        name="x", count=7, share=0.25, fast=True, keep=False, size=(8, 9), scales=(0.5, 2.0),
        sizes=((3, 4), (5, 6)), mode="a",
    )  # fmt: skip
    assert config.verbose is False


def test_defaults_come_from_the_fields():
    config = parse_config(Example, "doc", ["--name", "x", "-v"])
    assert (config.count, config.share, config.fast, config.keep) == (3, None, False, True)
    assert config.size == (4, 5) and config.scales == (1.0,) and config.sizes == ((1, 2),)
    assert config.verbose is True


def test_help_lists_defaults_and_groups():
    text = config_parser("Examples:\n    keep \\\n    lines", Example).format_help()
    assert "(default: 3)" in text and "(default: 4 5)" in text and "(default: yes)" in text
    assert "--size H W " in text  # a size shows as H W without saying so
    assert "--fast" in text and "(default: False)" not in text
    assert "modes:\n  --mode {a,b}" in text
    assert "    keep \\\n    lines" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--count", "0"], "--count must be at least 1. Received: 0"),
        (["--share", "1.5"], "--share must be in 0..1. Received: 1.5"),
        (["--fast", "--mode", "b"], "--fast does not go with --mode b"),
    ],
)
def test_a_refused_value_is_a_flag_error(argv, message):
    with pytest.raises(FlagError, match=message):
        parse_config(Example, "doc", ["--name", "x", *argv])


def test_a_config_made_in_code_is_checked_too():
    with pytest.raises(InputError, match="--mode must be one of"):
        Example(name="x", mode="c")
    assert Several().kinds == ("a", "b")  # each value of a flag of several is checked
    with pytest.raises(InputError, match=r"--kinds must be one of \['a', 'b'\]. Received: 'c'"):
        Several(kinds=("a", "c"))
    with pytest.raises(InputError, match="--count must be at least 1"):
        Example(name="x", count=-1)


def test_argparse_refuses_what_does_not_parse():
    with pytest.raises(SystemExit):
        parse_config(Example, "doc", [])  # --name is required
    with pytest.raises(SystemExit):
        parse_config(Example, "doc", ["--name", "x", "--mode", "c"])


def test_a_size_check_names_both_sides():
    check = size_at_least(32)
    check("size", (32, 40))
    check("size", None)
    with pytest.raises(InputError, match="--size must be at least 32 32. Received: 16 64"):
        check("size", (16, 64))


def test_option_refuses_an_unknown_setting():
    with pytest.raises(TypeError, match="unknown settings"):
        option(1, "help", nargs=2)


@dataclasses.dataclass
class Other(Command):
    """another command"""

    output: str = option("out.md")


def test_subcommands_each_have_their_config():
    commands = {"example": Example, "other": Other}
    config = parse_subcommand(commands, "doc", ["other", "--output", "a.md"])
    assert isinstance(config, Other) and config.output == "a.md" and config.command == "other"
    config = parse_subcommand(commands, "doc", ["-v", "example", "--name", "y"])
    assert isinstance(config, Example) and config.verbose is True
    with pytest.raises(FlagError, match="--count must be at least 1"):
        parse_subcommand(commands, "doc", ["example", "--name", "y", "--count", "0"])


def command_scripts():
    """Every file of ours that runs as a command (`if __name__ == "__main__":`); the
    Docker lock tool runs alone in an image without our packages."""
    for folder in (
        ROOT,
        *(ROOT / name for name in ("bench", "data_augmentation", "full_semantic")),
    ):
        for path in sorted(folder.glob("*.py")):
            if '__name__ == "__main__"' in path.read_text():
                yield path


def test_no_command_types_its_flags():
    scripts = list(command_scripts())
    assert len(scripts) >= 25, [path.name for path in scripts]
    for path in scripts:
        assert "add_argument(" not in path.read_text(), f"{path.relative_to(ROOT)} types flags"


def test_a_refused_flag_is_one_line_with_status_1():
    result = subprocess.run(
        [sys.executable, "select_images.py", "--input", "x", "--count", "0", "--output", "o"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: --count must be at least 1. Received: 0"]


# Each command with only its required flags: its defaults must pass its own checks.
MINIMAL_COMMANDS = {
    "bench.active_learning": [],
    "bench.build_scale": [],
    "bench.compute_floor": [],
    "bench.distributed": [],
    "bench.gpu_latency": [],
    "bench.input_pipeline": [],
    "bench.int8_profile": [],
    "bench.latency": [],
    "bench.memory": [],
    "bench.model_table": [],
    "bench.peers": ["--peer_onnx", "peer.onnx"],
    "bench.precision_accuracy": ["--work_dir", "run"],
    "bench.report": ["machine", "--output", "machine.json"],
    "bench.train_step": [],
    "bench.upsampling": [],
    "convert_weights": ["--list"],
    "data_augmentation.augment_data": ["--rgb_path", "export", "--output_path", "out"],
    "data_augmentation.make_blank_label": ["--rgb_path", "export"],
    "full_semantic.split_rgbt": ["--input", "images", "--output", "split"],
    "full_semantic.stats": ["--dataset", "full_semantic/x"],
    "make_demo_data": ["--output", "demo"],
}


@pytest.mark.parametrize("module, argv", MINIMAL_COMMANDS.items())
def test_every_command_accepts_its_own_defaults(module, argv):
    import importlib

    assert importlib.import_module(module).parse_args(argv).verbose is False


def test_the_run_commands_accept_their_own_defaults():
    from semseg.evaluate.options import EvalConfig
    from semseg.export.options import ExportConfig
    from semseg.labelling.options import SelectImagesConfig
    from semseg.predict.options import PredictConfig, PredictRealtimeConfig, PredictVideoConfig

    assert EvalConfig().split == "val" and ExportConfig(format="onnx").threads is None
    assert PredictConfig(input=("a.jpg",)).alpha == 0.5 and PredictRealtimeConfig().port is None
    assert PredictVideoConfig(input="a.mp4").checkpoint == "best"
    assert SelectImagesConfig(input=("pool",), count=1, output="next").min_area == 16
