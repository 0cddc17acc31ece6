"""Resolve the requirements files into requirements.lock, or check that the lock is current.

`requirements.lock` pins every package that `docker/install_requirements.sh`
installs (the top-level pins of `requirements.txt`, `requirements-dev.txt` and
`docker/requirements-gpu.txt`, everything they pull in, and pip itself) for
CPython 3.11 on Linux x86_64, the platform of the Docker images and of CI. The
install script hands it to pip as a constraints file, so a rebuild a year later
installs the same versions, on a laptop, in CI and in both images.

Regenerating keeps the versions of the old lock wherever the new requirements
allow them, so adding one package does not move fifty others; `--upgrade`
resolves everything afresh to the newest versions the pins allow. Resolution is
pip's own (`pip install --dry-run --report` in a throw-away virtualenv), so
nothing is downloaded but package metadata. Only the standard library is used:
the install script runs `--check` before anything else is installed.

Examples:

    make lock                                      # after editing a requirements file
    python3 docker/lock_requirements.py            # the same, without make
    python3 docker/lock_requirements.py --upgrade  # move every unpinned dependency forward
    python3 docker/lock_requirements.py --check    # exit 1 if a pin is missing from the lock
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK_FILE = ROOT / "requirements.lock"
# Everything any install may ask for: the dev file includes requirements.txt, the
# GPU file adds TensorFlow's CUDA wheels. One lock serves every install, because a
# constraints file only pins what is installed and ignores the rest.
INPUT_FILES = (ROOT / "requirements-dev.txt", ROOT / "docker" / "requirements-gpu.txt")
LOCK_PLATFORM = ("linux", "x86_64", (3, 11))
LOCK_PLATFORM_NAME = "CPython 3.11 on Linux x86_64"

_REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[(?P<extras>[^\]]*)\])?\s*"
    r"(?P<specifier>(?:===|==|~=|!=|<=|>=|<|>)[^;]*?)?\s*(?:;.*)?$"
)
_PIN = re.compile(r"^==\s*(?P<version>[^\s,*]+)$")
_LOCK_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;]+)$")


class LockError(Exception):
    """A requirements or lock file that cannot be used; the message names the file."""


def normalize_name(name):
    """Returns the PEP 503 form of a distribution name (`Jinja2` -> `jinja2`, `a_b` -> `a-b`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def display_path(path):
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def read_requirements(path, _seen=None):
    """Reads a pip requirements file, following `-r` includes.

    Args:
        path: the requirements file.

    Returns:
        A list of dicts with keys `name` (normalised), `extras` (tuple), `version`
        (the pinned version of an exact `==` requirement, else None) and `source`
        (`"file:line"`), in file order.

    Raises:
        LockError: the file (or an included one) is missing, includes itself, or
            has a line that is not a plain `name[extras] op version` requirement.
    """
    path = Path(path).resolve()
    seen = set() if _seen is None else _seen
    if path in seen:
        raise LockError(f"{display_path(path)}: includes itself through -r")
    seen.add(path)
    if not path.is_file():
        raise LockError(f"{display_path(path)}: requirements file not found")
    requirements = []
    for number, raw_line in enumerate(path.read_text().splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw_line).strip()
        if not line:
            continue
        source = f"{display_path(path)}:{number}"
        include = re.match(r"^(?:-r|--requirement)(?:\s+|=)(\S+)$", line)
        if include:
            requirements += read_requirements(path.parent / include.group(1), seen)
            continue
        match = _REQUIREMENT.match(line)
        if not match:
            raise LockError(
                f"{source}: expected a requirement like `name==1.2.3` or `-r other.txt`, "
                f"got {line!r}"
            )
        extras = match.group("extras") or ""
        pin = _PIN.match((match.group("specifier") or "").strip())
        requirements.append(
            {
                "name": normalize_name(match.group("name")),
                "extras": tuple(extra.strip() for extra in extras.split(",") if extra.strip()),
                "version": pin.group("version") if pin else None,
                "source": source,
            }
        )
    return requirements


def read_lock(path=LOCK_FILE):
    """Reads a lock file of `name==version` lines.

    Returns:
        A dict from normalised name to version string.

    Raises:
        LockError: the file is missing or has a line that is not `name==version`.
    """
    path = Path(path)
    if not path.is_file():
        raise LockError(f"{display_path(path)}: lock file not found; create it with `make lock`")
    pins = {}
    for number, raw_line in enumerate(path.read_text().splitlines(), start=1):
        line = raw_line.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LOCK_LINE.match(line)
        if not match:
            raise LockError(
                f"{display_path(path)}:{number}: expected `name==version`, got {line!r}"
            )
        name = normalize_name(match.group("name"))
        if name in pins:
            raise LockError(f"{display_path(path)}:{number}: {name} is pinned twice")
        pins[name] = match.group("version")
    return pins


def lock_problems(requirements, lock_pins):
    """Lists the requirements that the lock does not satisfy.

    A pinned requirement (`==`) needs the same version in the lock; any other
    requirement needs its package to be in the lock at all.

    Returns:
        One message per problem, naming the requirement's file and line; empty
        when the lock covers every requirement.
    """
    problems = []
    for requirement in requirements:
        name, version = requirement["name"], requirement["version"]
        locked = lock_pins.get(name)
        if locked is None:
            problems.append(f"{requirement['source']}: {name} is not in requirements.lock")
        elif version is not None and locked != version:
            problems.append(
                f"{requirement['source']}: {name}=={version} but requirements.lock has {locked}"
            )
    return problems


def platform_matches():
    system, machine, python = LOCK_PLATFORM
    return (
        sys.platform == system
        and platform.machine() == machine
        and sys.version_info[:2] == python
        and sys.implementation.name == "cpython"
    )


def this_platform():
    version = ".".join(map(str, sys.version_info[:3]))
    return f"{platform.python_implementation()} {version} on {sys.platform} {platform.machine()}"


def _run(command):
    result = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1"),
    )
    return result


def resolve(input_files, constraints=None):
    """Lets pip resolve the requirement files for this interpreter, installing nothing.

    Args:
        input_files: requirements files passed to pip with `-r`.
        constraints: optional dict name -> version passed to pip as a constraints file.

    Returns:
        (pins, pip_version): a dict from normalised name to version of every
        package pip would install into an empty environment, and the version of the
        pip that resolved them (the newest release, itself pinned in the lock).

    Raises:
        LockError: pip could not resolve; the message holds pip's own explanation.
    """
    with tempfile.TemporaryDirectory(prefix="semseg-lock-") as temp_dir:
        temp_dir = Path(temp_dir)
        venv.EnvBuilder(with_pip=True).create(temp_dir / "venv")
        python = temp_dir / "venv" / "bin" / "python"
        result = _run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        if result.returncode != 0:
            raise LockError(f"could not upgrade pip in a temporary venv:\n{result.stderr}")
        pip_version = _run([python, "-c", "import pip; print(pip.__version__)"]).stdout.strip()
        command = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        command += ["--report", temp_dir / "report.json"]
        if constraints:
            constraints_file = temp_dir / "constraints.txt"
            constraints_file.write_text(
                "".join(f"{name}=={version}\n" for name, version in sorted(constraints.items()))
            )
            command += ["--constraint", constraints_file]
        for path in input_files:
            command += ["--requirement", path]
        result = _run(command)
        if result.returncode != 0:
            raise LockError(f"pip could not resolve {_names(input_files)}:\n{result.stderr}")
        report = json.loads((temp_dir / "report.json").read_text())
    pins = {}
    for item in report["install"]:
        metadata = item["metadata"]
        pins[normalize_name(metadata["name"])] = metadata["version"]
    return pins, pip_version


def _names(paths):
    return " and ".join(display_path(path) for path in paths)


def format_lock(pins, pip_version, input_files):
    """Returns the text of requirements.lock: a header, then sorted `name==version` lines."""
    header = [
        "# requirements.lock: every package that docker/install_requirements.sh installs, pinned.",
        f"# Resolved from {_names(input_files)} by pip {pip_version}",
        f"# for {LOCK_PLATFORM_NAME} (the Docker images and CI). Do not edit by hand:",
        "# change a requirements file, then run `make lock` (docker/lock_requirements.py).",
        "# pip installs with it as a constraints file (-c), so a package that no install asks",
        "# for (the CUDA wheels on a CPU install) is simply not installed.",
    ]
    lines = [f"pip=={pip_version}"]
    lines += [f"{name}=={version}" for name, version in sorted(pins.items()) if name != "pip"]
    return "\n".join(header + lines) + "\n"


def write_lock(path, text):
    """Writes through a temporary file and a rename, so a failure never leaves half a lock."""
    path = Path(path)
    temp_path = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp_path.write_text(text)
        os.replace(temp_path, path)
    finally:
        temp_path.unlink(missing_ok=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check that the lock pins every requirement at its version (exit 1 if not)",
    )
    parser.add_argument(
        "--upgrade",
        action="store_true",
        help="resolve afresh instead of keeping the old lock's versions where possible",
    )
    parser.add_argument("--lock", type=Path, default=LOCK_FILE, help="the lock file")
    return parser.parse_args(argv)


def check(lock_path):
    requirements = [r for path in INPUT_FILES for r in read_requirements(path)]
    problems = lock_problems(requirements, read_lock(lock_path))
    if problems:
        raise LockError(
            f"{display_path(lock_path)} is out of date with the requirements files; "
            "run `make lock`:\n  " + "\n  ".join(problems)
        )
    if not platform_matches():
        print(
            f"warning: {display_path(lock_path)} was resolved for {LOCK_PLATFORM_NAME}; "
            f"this is {this_platform()}, where some pinned versions may not exist",
            file=sys.stderr,
        )
    print(f"{display_path(lock_path)} pins all {len(requirements)} requirements")


def lock(lock_path, upgrade):
    if not platform_matches():
        raise LockError(
            f"the lock is resolved for {LOCK_PLATFORM_NAME} (the Docker images and CI); "
            f"this is {this_platform()}. Run it in the base image instead: docker run --rm "
            '-u "$(id -u):$(id -g)" -e HOME=/tmp -v "$PWD:/app" -w /app '
            "python:3.11.14-slim-bookworm python docker/lock_requirements.py"
        )
    requirements = [r for path in INPUT_FILES for r in read_requirements(path)]
    pins = None
    if not upgrade and Path(lock_path).is_file():
        # Keep the old versions of everything that is not a top-level requirement
        # (those come from the requirements files, which may just have changed them).
        top_level = {requirement["name"] for requirement in requirements}
        old_pins = {n: v for n, v in read_lock(lock_path).items() if n not in top_level}
        old_pins.pop("pip", None)
        try:
            pins, pip_version = resolve(INPUT_FILES, constraints=old_pins)
        except LockError as error:
            print(f"the old lock's versions no longer fit, resolving afresh: {error}")
    if pins is None:
        pins, pip_version = resolve(INPUT_FILES)
    problems = lock_problems(requirements, pins)
    if problems:  # pip honours `==`, so this only fires if pip itself misbehaves.
        raise LockError("pip's resolution misses requirements:\n  " + "\n  ".join(problems))
    old = read_lock(lock_path) if Path(lock_path).is_file() else {}
    write_lock(lock_path, format_lock(pins, pip_version, INPUT_FILES))
    new = read_lock(lock_path)
    changed = sorted(name for name in new.keys() | old.keys() if new.get(name) != old.get(name))
    print(f"wrote {display_path(lock_path)}: {len(new)} packages, {len(changed)} changed")
    for name in changed:
        print(f"  {name}: {old.get(name, '-')} -> {new.get(name, '-')}")


def main(args):
    try:
        if args.check:
            check(args.lock)
        else:
            lock(args.lock, args.upgrade)
    except LockError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(parse_args())
