"""docker/: the images lint clean, and they, the Makefile and the lock install one environment.

No Docker engine runs here, so the Dockerfiles are checked by hadolint and by
parsing: both images and `make install` must go through
`docker/install_requirements.sh` with the same requirement files and
`requirements.lock`, and the lock must pin every requirement at its version.
"""

import fnmatch
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCRIPT = "docker/install_requirements.sh"
DOCKERFILES = {"cpu": ROOT / "docker" / "Dockerfile.cpu", "gpu": ROOT / "docker" / "Dockerfile.gpu"}
LOCK = ROOT / "requirements.lock"
REQUIREMENT_FILES = [
    ROOT / "requirements.txt",
    ROOT / "requirements-dev.txt",
    ROOT / "docker" / "requirements-gpu.txt",
]


def tool(name):
    path = BIN / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: `make install` installs it from requirements-dev.txt")
    return path


def run_isolated(command, cwd):
    """Runs a linter where no user or project config file can relax its rules."""
    environment = dict(os.environ, HOME=str(cwd), XDG_CONFIG_HOME=str(cwd))
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, env=environment
    )


def hadolint(dockerfile, cwd):
    return run_isolated(
        [tool("hadolint"), "--no-color", "--failure-threshold", "info", dockerfile], cwd
    )


# --- Parsing --------------------------------------------------------------------------


def dockerfile_instructions(path):
    """Returns [(INSTRUCTION, arguments)] with continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in Path(path).read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), " ".join(arguments.split())))
        pending = ""
    assert not pending, f"{path}: ends inside a continued instruction"
    return instructions


def dockerfile_env(instructions):
    environment = {}
    for keyword, arguments in instructions:
        if keyword == "ENV":
            for word in shlex.split(arguments):
                name, _, value = word.partition("=")
                environment[name] = value
    return environment


def copied_sources(arguments):
    """The source paths of a COPY instruction (flags and the destination dropped)."""
    words = [word for word in shlex.split(arguments) if not word.startswith("--")]
    destination = words[-1]
    return words[:-1], destination


def install_invocation(command_line, environment=None):
    """Finds `docker/install_requirements.sh ... VENV` in a shell command.

    Returns:
        (flags, venv_dir) with flags as a sorted tuple (`--python X` dropped), or None.
    """
    for part in re.split(r"&&|;|\|\|", command_line):
        words = shlex.split(part)
        if SCRIPT not in words:
            continue
        arguments = words[words.index(SCRIPT) + 1 :]
        flags, positional = [], []
        while arguments:
            word = arguments.pop(0)
            if word == "--python":
                arguments.pop(0)
            elif word.startswith("--"):
                flags.append(word)
            else:
                positional.append(word)
        assert len(positional) == 1, f"expected one VENV_DIR in {part!r}"
        venv_dir = positional[0]
        for name, value in (environment or {}).items():
            venv_dir = venv_dir.replace(f"${{{name}}}", value).replace(f"${name}", value)
        return tuple(sorted(flags)), venv_dir
    return None


def makefile_rule(target):
    """Returns (prerequisites, recipe lines) of a rule in the Makefile."""
    text = ROOT.joinpath("Makefile").read_text().replace("\\\n", " ")
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(f"{target}:"):
            prerequisites = line.split(":", 1)[1].split()
            recipe = []
            for recipe_line in lines[index + 1 :]:
                if not recipe_line.startswith("\t"):
                    break
                recipe.append(recipe_line.strip())
            return prerequisites, recipe
    pytest.fail(f"Makefile: no rule for {target}")


def makefile_variable(name):
    match = re.search(rf"^{name}\s*\??=\s*(\S+)", ROOT.joinpath("Makefile").read_text(), re.M)
    assert match, f"Makefile: no {name} variable"
    return match.group(1)


def script_inputs():
    """The repository files the install script reads, as it names them (`$root/...`)."""
    text = ROOT.joinpath(SCRIPT).read_text()
    return sorted(set(re.findall(r"\$root/([\w./-]+)", text)))


def exact_pins(path, seen=None):
    """{name: version} of the `name==version` lines of a requirements file, following -r."""
    seen = set() if seen is None else seen
    path = Path(path).resolve()
    assert path not in seen
    seen.add(path)
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            pins.update(exact_pins(path.parent / line[3:].strip(), seen))
        elif line:
            name, separator, version = line.partition("==")
            assert separator, f"{path}: {line!r} is not pinned with =="
            name = re.sub(r"\[.*\]", "", name).strip()
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def lock_pins():
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def load_lock_tool():
    spec = importlib.util.spec_from_file_location(
        "lock_requirements", ROOT / "docker" / "lock_requirements.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dockerignore_excludes(path, patterns):
    """Docker's rule: a pattern excludes a matching path and everything under it."""
    parts = Path(path).parts
    for pattern in patterns:
        if pattern.startswith("**/"):
            candidates = [
                "/".join(parts[start:end])
                for start in range(len(parts))
                for end in range(start + 1, len(parts) + 1)
            ]
            if any(fnmatch.fnmatchcase(c, pattern[3:]) for c in candidates):
                return True
        elif any(
            fnmatch.fnmatchcase("/".join(parts[:end]), pattern.strip("/"))
            for end in range(1, len(parts) + 1)
        ):
            return True
    return False


# --- Lint -----------------------------------------------------------------------------


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_hadolint_passes(image, tmp_path):
    dockerfile = DOCKERFILES[image]
    assert "hadolint ignore" not in dockerfile.read_text(), "fix the rule instead of muting it"
    result = hadolint(dockerfile, tmp_path)
    if result.returncode != 0:
        pytest.fail(f"hadolint {dockerfile.name}:\n{result.stdout}{result.stderr}")


def test_hadolint_catches_unpinned_images_and_packages(tmp_path):
    """The lint above can fail: the mistakes it guards against are reported."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM python:latest\n"
        "RUN apt-get update && apt-get install -y libtcmalloc-minimal4\n"
        "USER root\n"
        'CMD ["python"]\n'
    )
    result = hadolint(dockerfile, tmp_path)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3009", "DL3015", "DL3002"):
        assert rule in result.stdout, result.stdout


def test_install_script_passes_bash_n_and_shellcheck(tmp_path):
    script = ROOT / SCRIPT
    assert os.access(script, os.X_OK), f"{SCRIPT} must be executable (the Makefile runs it)"
    syntax = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    result = run_isolated(
        [tool("shellcheck"), "--severity=style", "--shell=bash", script], tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- One install path -----------------------------------------------------------------


def test_makefile_installs_through_the_script_and_tracks_its_inputs():
    venv = makefile_variable("VENV")
    prerequisites, recipe = makefile_rule("$(VENV)/.installed")
    invocations = [install_invocation(line) for line in recipe if SCRIPT in line]
    assert invocations == [(("--dev",), "$(VENV)")], recipe
    assert not any(re.search(r"\bpip\b", line) for line in recipe), "pip only in the script"
    # The stamp is redone when anything that decides the environment changes.
    for needed in (SCRIPT, "requirements.txt", "requirements-dev.txt", "requirements.lock"):
        assert needed in prerequisites, f"$(VENV)/.installed must depend on {needed}"
    assert venv == ".venv"
    assert makefile_rule("install")[0] == ["$(VENV)/.installed"]
    assert makefile_rule("lock")[1] == ["$(PYTHON) docker/lock_requirements.py $(LOCK_FLAGS)"]


def test_script_inputs_exist():
    inputs = script_inputs()
    assert {"requirements.txt", "requirements-dev.txt", "requirements.lock"} <= set(inputs)
    assert "docker/requirements-gpu.txt" in inputs
    for name in inputs:
        assert (ROOT / name).is_file(), f"{SCRIPT} reads {name}, which does not exist"


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_image_installs_through_the_same_script_and_files(image):
    dockerfile = DOCKERFILES[image]
    instructions = dockerfile_instructions(dockerfile)
    environment = dockerfile_env(instructions)
    runs = [
        (index, install_invocation(arguments, environment))
        for index, (keyword, arguments) in enumerate(instructions)
        if keyword == "RUN" and SCRIPT in arguments
    ]
    assert len(runs) == 1, f"{dockerfile.name}: expected one RUN of {SCRIPT}, got {runs}"
    install_index, (flags, venv_dir) = runs[0]
    # The Makefile's flags, plus --gpu for the GPU image only.
    _, recipe = makefile_rule("$(VENV)/.installed")
    makefile_flags = next(install_invocation(line) for line in recipe if SCRIPT in line)[0]
    expected = set(makefile_flags) | ({"--gpu"} if image == "gpu" else set())
    assert set(flags) == expected, f"{dockerfile.name}: {flags}"

    # Every file the script reads is in the image before it runs (and not left out by
    # .dockerignore), so the image installs from the same requirement files and lock.
    copied = {}
    for keyword, arguments in instructions[:install_index]:
        if keyword == "COPY":
            sources, destination = copied_sources(arguments)
            for source in sources:
                copied[source] = destination
    for name in script_inputs() + [SCRIPT]:
        directory = Path(name).parent.as_posix()
        allowed = {name, "./", "."} if directory == "." else {name, f"{directory}/"}
        assert copied.get(name) in allowed, (
            f"{dockerfile.name}: {name} must be copied to {directory}/ before the install RUN"
        )

    # The Makefile inside the image sees the same environment as installed: VENV is
    # where the script installed, PATH uses it, the Makefile's stamp is touched and
    # `make --question install` is checked once the whole tree is copied.
    assert environment["VENV"] == venv_dir
    assert environment["PATH"].split(":")[0] == f"{venv_dir}/bin"
    stamp = f"{venv_dir}/.installed"  # the Makefile's $(VENV)/.installed
    assert f'touch "{stamp}"' in instructions[install_index][1].replace("$VENV", venv_dir)
    later = [arguments for keyword, arguments in instructions[install_index + 1 :]]
    assert any(argument.startswith("--chown=") and argument.endswith(". .") for argument in later)
    assert any("make --question install" in argument for argument in later)


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_image_runs_as_non_root_with_tcmalloc_preloaded(image):
    instructions = dockerfile_instructions(DOCKERFILES[image])
    keywords = [keyword for keyword, _ in instructions]
    environment = dockerfile_env(instructions)
    assert environment["LD_PRELOAD"] == "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
    apt = next(arguments for keyword, arguments in instructions if "apt-get install" in arguments)
    assert re.search(r"\blibtcmalloc-minimal4=\S+", apt), apt
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    base = next(arguments for keyword, arguments in instructions if keyword == "FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base
    assert "WORKDIR" in keywords and "ENTRYPOINT" in keywords and "CMD" in keywords


def test_both_images_share_base_and_system_packages():
    cpu, gpu = (dockerfile_instructions(DOCKERFILES[name]) for name in ("cpu", "gpu"))
    for keyword in ("FROM", "USER", "WORKDIR", "ENTRYPOINT", "CMD"):
        assert [a for k, a in cpu if k == keyword] == [a for k, a in gpu if k == keyword]
    apt = [[a for k, a in image if "apt-get install" in a] for image in (cpu, gpu)]
    assert apt[0] == apt[1]


def test_dockerignore_keeps_sources_and_drops_local_state():
    patterns = [
        line.strip()
        for line in ROOT.joinpath(".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for local in (".git", ".venv", "build/demo/run/config.json", "runs/x", "a/__pycache__/b.pyc"):
        assert dockerignore_excludes(local, patterns), f".dockerignore lets {local} in"
    needed = script_inputs() + [SCRIPT, "Makefile", "train.py", "semseg/base/files.py"]
    needed += ["full_semantic/full_semantic_dataset_builder.py", "docker/Dockerfile.cpu"]
    for name in needed:
        assert (ROOT / name).exists(), name
        assert not dockerignore_excludes(name, patterns), f".dockerignore drops {name}"


# --- The lock -------------------------------------------------------------------------


def test_lock_pins_every_requirement_at_its_version():
    locked = lock_pins()
    assert "pip" in locked, "the lock pins pip itself"
    for path in REQUIREMENT_FILES:
        pins = exact_pins(path)
        assert pins, path
        for name, version in pins.items():
            assert locked.get(name) == version, (
                f"{path.name}: {name}=={version}, requirements.lock has {locked.get(name)}; "
                "run `make lock`"
            )
    # The GPU extra's CUDA wheels are pinned too.
    assert any(name.startswith("nvidia-cudnn-cu12") for name in locked)


def test_lock_tool_reads_requirements_like_pip(tmp_path):
    tool_module = load_lock_tool()
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.txt").write_text("# runtime\nNumPy==2.4.6  # comment\nJinja2>=3,<4\n")
    (tmp_path / "sub" / "dev.txt").write_text(
        "-r ../base.txt\ntensorflow[and-cuda]==2.21.0 ; sys_platform == 'linux'\n"
    )
    requirements = tool_module.read_requirements(tmp_path / "sub" / "dev.txt")
    assert [(r["name"], r["version"], r["extras"]) for r in requirements] == [
        ("numpy", "2.4.6", ()),
        ("jinja2", None, ()),
        ("tensorflow", "2.21.0", ("and-cuda",)),
    ]
    assert requirements[0]["source"].endswith("base.txt:2")
    problems = tool_module.lock_problems(requirements, {"numpy": "2.4.5", "tensorflow": "2.21.0"})
    assert len(problems) == 2
    assert "base.txt:2: numpy==2.4.6 but requirements.lock has 2.4.5" in problems[0]
    assert "base.txt:3: jinja2 is not in requirements.lock" in problems[1]

    (tmp_path / "bad.txt").write_text("numpy==2.4.6\n-e git+https://example.invalid/x\n")
    with pytest.raises(tool_module.LockError, match=r"bad\.txt:2: expected a requirement"):
        tool_module.read_requirements(tmp_path / "bad.txt")
    (tmp_path / "loop.txt").write_text("-r loop.txt\n")
    with pytest.raises(tool_module.LockError, match="includes itself"):
        tool_module.read_requirements(tmp_path / "loop.txt")
    (tmp_path / "lock.txt").write_text("a==1\nb>=2\n")
    with pytest.raises(tool_module.LockError, match=r"lock\.txt:2: expected `name==version`"):
        tool_module.read_lock(tmp_path / "lock.txt")


def test_lock_check_passes_on_the_repository():
    result = subprocess.run(
        [sys.executable, ROOT / "docker" / "lock_requirements.py", "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "requirements.lock pins all" in result.stdout


@pytest.fixture
def project_copy(tmp_path):
    """The files the install script reads, copied into a throw-away project tree."""
    for name in script_inputs() + [SCRIPT, "docker/lock_requirements.py"]:
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return tmp_path


def test_install_stops_on_a_stale_lock_before_installing(project_copy):
    """A requirement bumped without `make lock` fails the install, naming the line."""
    requirements = project_copy / "requirements.txt"
    lines = requirements.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("numpy=="))
    lines[index] = "numpy==1.0.0"
    requirements.write_text("\n".join(lines) + "\n")
    # An existing virtualenv whose python is this one: nothing gets created or installed.
    venv_dir = project_copy / "venv"
    (venv_dir / "bin").mkdir(parents=True)
    (venv_dir / "bin" / "python").symlink_to(sys.executable)
    result = subprocess.run(
        [project_copy / SCRIPT, "--dev", venv_dir], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: requirements.lock is out of date" in result.stderr
    assert f"requirements.txt:{index + 1}: numpy==1.0.0 but requirements.lock has" in result.stderr
    assert "run `make lock`" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in venv_dir.iterdir()) == ["bin"]


def test_install_script_rejects_bad_usage(project_copy):
    for arguments in ([], ["--nope", "v"], ["a", "b"], ["--python"]):
        result = subprocess.run([project_copy / SCRIPT, *arguments], capture_output=True, text=True)
        assert result.returncode == 2, (arguments, result.stderr)
        assert "Usage: docker/install_requirements.sh" in result.stderr


@pytest.mark.large
def test_make_lock_reproduces_the_committed_lock(project_copy):
    """Re-resolving (pip, package metadata only: about a minute) changes no version."""
    before = (project_copy / "requirements.lock").read_text()
    result = subprocess.run(
        [sys.executable, project_copy / "docker" / "lock_requirements.py"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    assert ", 0 changed" in result.stdout, result.stdout
    assert (project_copy / "requirements.lock").read_text() == before
