#!/usr/bin/env bash
# Installs the project's Python dependencies into a virtualenv at the versions of
# requirements.lock. The one install path of the project: the Makefile's `install`
# target (and so `make demo` and `make test`) and both Dockerfiles run this script.
#
# Usage: docker/install_requirements.sh [--python PYTHON] [--dev] [--gpu] VENV_DIR
#
#   VENV_DIR         the virtualenv; created with PYTHON if it has no bin/python yet
#   --python PYTHON  interpreter that creates the virtualenv (default: python3)
#   --dev            also install requirements-dev.txt (pytest, ruff, linters)
#   --gpu            replace tensorflow-cpu with docker/requirements-gpu.txt (TensorFlow's
#                    CUDA build and wheels)
#
# Examples:
#   docker/install_requirements.sh --dev .venv                      # what `make install` runs
#   docker/install_requirements.sh --python python3.11 --dev --gpu /opt/venv
#
# requirements.lock is checked first (docker/lock_requirements.py --check): a
# requirement whose pin is missing from the lock stops the install with a message
# naming it, instead of silently installing unpinned versions. pip then installs
# the requirement files with the lock as constraints, for the packages and for
# the build dependencies of the few that ship only source.
set -euo pipefail

usage() {
    sed -n '6,12s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

python=python3
dev=0
gpu=0
venv_dir=
while (($#)); do
    case "$1" in
        --python)
            (($# >= 2)) || usage
            python=$2
            shift 2
            ;;
        --dev)
            dev=1
            shift
            ;;
        --gpu)
            gpu=1
            shift
            ;;
        -h | --help) usage ;;
        -*)
            echo "error: unknown option $1" >&2
            usage
            ;;
        *)
            [[ -z "$venv_dir" ]] || usage
            venv_dir=$1
            shift
            ;;
    esac
done
[[ -n "$venv_dir" ]] || usage

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lock="$root/requirements.lock"
requirements=(--requirement "$root/requirements.txt")
if ((dev)); then
    requirements+=(--requirement "$root/requirements-dev.txt")
fi

if [[ ! -x "$venv_dir/bin/python" ]]; then
    if ! command -v "$python" >/dev/null; then
        echo "error: $python not found; install Python 3.11 or pass --python" >&2
        exit 1
    fi
    echo "creating virtualenv $venv_dir with $("$python" --version 2>&1)"
    "$python" -m venv "$venv_dir"
fi
venv_python="$venv_dir/bin/python"
"$venv_python" "$root/docker/lock_requirements.py" --check --lock "$lock"

export PIP_DISABLE_PIP_VERSION_CHECK=1
"$venv_python" -m pip install --quiet --upgrade --constraint "$lock" pip
if ((!gpu)) && "$venv_python" -m pip show --quiet tensorflow 2>/dev/null; then
    # An environment from before the switch to tensorflow-cpu (or a GPU one): both
    # distributions own the `tensorflow` package, so both go and tensorflow-cpu returns.
    "$venv_python" -m pip uninstall --quiet --yes tensorflow tensorflow-cpu
fi
if ! "$venv_python" -m pip install --quiet --progress-bar off \
    --constraint "$lock" --build-constraint "$lock" "${requirements[@]}"; then
    echo "error: pip could not install the pinned requirements into $venv_dir" \
        "(see its message above)" >&2
    exit 1
fi
if ((gpu)); then
    # The same TensorFlow, built with CUDA: tensorflow-cpu goes first, as both install
    # the `tensorflow` package.
    "$venv_python" -m pip uninstall --quiet --yes tensorflow-cpu
    if ! "$venv_python" -m pip install --quiet --progress-bar off \
        --constraint "$lock" --requirement "$root/docker/requirements-gpu.txt"; then
        echo "error: pip could not install TensorFlow's CUDA build into $venv_dir" >&2
        exit 1
    fi
fi
# TensorFlow's C++ start-up lines (CPU features, ...) stay hidden in every command of
# this environment, `tfds build` included, which imports TensorFlow before any of our
# code runs; errors still show. `-v` on our commands shows everything.
site_packages=$("$venv_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo 'import os; os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")' \
    >"$site_packages/semseg_quiet_tensorflow.pth"
echo "installed the requirements (dev=$dev, gpu=$gpu) into $venv_dir" \
    "at the versions of requirements.lock"
