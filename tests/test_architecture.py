"""The import graph runs one way: CLIs -> semseg -> models / full_semantic readers -> the
ground floor (`semseg.errors`, `semseg.labels`, `semseg.files`). docs/ARCHITECTURE.md.

    .venv/bin/pytest tests/test_architecture.py
"""

import ast

from commands import ROOT

FLOOR = {"semseg.errors", "semseg.labels", "semseg.files"}
# Modules of full_semantic/ that are commands (`python -m full_semantic.stats`), not readers.
FULL_SEMANTIC_COMMANDS = {"full_semantic.stats"}
PACKAGES = ("semseg", "full_semantic", "models", "data_augmentation")


def project_imports(path):
    """The project modules a file imports (`from semseg import files` -> `semseg.files`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] in PACKAGES:
                is_file = len(parts) > 1 and (ROOT / parts[0] / f"{parts[1]}.py").is_file()
                found.add(".".join(parts[:2]) if is_file else parts[0])
    return found


def modules(package):
    for path in sorted((ROOT / package).glob("*.py")):
        if not path.name.endswith("_test.py") and path.name != "conftest.py":
            yield f"{package}.{path.stem}", project_imports(path)


def test_the_ground_floor_imports_only_itself():
    for name in FLOOR:
        imported = project_imports(ROOT / f"{name.replace('.', '/')}.py")
        assert {module for module in imported if module != "semseg"} <= FLOOR, name


def test_readers_and_models_import_only_the_ground_floor():
    for package in ("full_semantic", "models"):
        for name, imported in modules(package):
            if name in FULL_SEMANTIC_COMMANDS:
                continue
            upward = {
                module
                for module in imported
                if module.startswith("semseg.") and module not in FLOOR
            }
            assert not upward, f"{name} imports {sorted(upward)} above the ground floor"
            if package == "models":
                assert not any(module.startswith("full_semantic") for module in imported), name
            assert not any(module.startswith("data_augmentation") for module in imported), name


def test_semseg_reads_no_command_and_no_augmentation_code():
    for name, imported in modules("semseg"):
        assert not any(module.startswith("data_augmentation") for module in imported), name
        assert not any(module.split(".")[:2] == ["full_semantic", "stats"] for module in imported)


def test_split_lists_and_label_colours_are_read_only_in_full_semantic():
    readers = ("read_split_lists", "read_name_list", "ColorLookup", "read_labelmap")
    for package in ("semseg", "data_augmentation", "models"):
        for path in (ROOT / package).glob("*.py"):
            tree = ast.parse(path.read_text())
            defined = {
                node.name
                for node in ast.walk(tree)
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in readers
            }
            assert not defined, f"{path.name} defines {sorted(defined)}: full_semantic/'s job"
