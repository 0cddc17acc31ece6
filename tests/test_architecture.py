"""The package rules of docs/ARCHITECTURE.md, one test each: the import graph between
packages has no circle, the ground floor imports nothing of ours, the dataset readers
import only the ground floor, and `semseg/` is sub-packages only.

    .venv/bin/pytest tests/test_architecture.py
"""

import ast

import pytest
from commands import ROOT

# The packages of the graph: `semseg.<stage>`, and the top-level folders.
TOP_LEVEL = ("full_semantic", "models", "data_augmentation", "bench")
FLOOR = "semseg.base"
# Modules of full_semantic/ that are commands (`python -m full_semantic.stats`), not readers.
FULL_SEMANTIC_COMMANDS = {"full_semantic.stats"}


def package_of(module):
    """`semseg.train.training` -> `semseg.train`; `full_semantic.cvat` -> `full_semantic`;
    None for a module that is not ours."""
    parts = module.split(".")
    if parts[0] == "semseg":
        return ".".join(parts[:2]) if len(parts) > 1 else None
    return parts[0] if parts[0] in TOP_LEVEL else None


def imported_modules(path):
    """The modules a file imports, `from semseg.train import training` giving both
    `semseg.train` and `semseg.train.training`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def project_files():
    """`(module name, path)` of every module of the graph's packages."""
    for folder in ("semseg", *TOP_LEVEL):
        for path in sorted((ROOT / folder).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield module.removesuffix(".__init__"), path


def package_graph(files):
    """`{package: {imported package: [(module, imported module), ...]}}` of `files`."""
    graph = {}
    for module, path in files:
        source = package_of(module)
        for name in imported_modules(path):
            target = package_of(name)
            if target and source and target != source:
                graph.setdefault(source, {}).setdefault(target, []).append((module, name))
    return graph


def find_cycle(graph):
    """One circle of the graph as a list of packages, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for target in graph.get(node, {}):
            if state.get(target) == "open":
                return path[path.index(target) :] + [target]
            if target not in state:
                cycle = visit(target, [*path, target])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [node])
            if cycle:
                return cycle
    return None


def test_no_circle_between_packages():
    graph = package_graph(project_files())
    cycle = find_cycle(graph)
    if cycle:
        edges = [graph[a][b][0] for a, b in zip(cycle, cycle[1:])]
        pytest.fail(f"imports go in a circle: {' -> '.join(cycle)}, e.g. {edges}")


def test_a_circle_is_found_and_named():
    """The rule above fails on a violation: a graph with a circle is reported."""
    graph = {"semseg.base": {"semseg.train": [("a", "b")]}, "semseg.train": {"semseg.base": []}}
    assert find_cycle(graph) == ["semseg.base", "semseg.train", "semseg.base"]
    assert find_cycle({"semseg.train": {"semseg.base": []}}) is None


def test_the_ground_floor_imports_nothing_of_ours():
    graph = package_graph(project_files())
    assert not graph.get(FLOOR), f"{FLOOR} imports {graph.get(FLOOR)}"


def test_full_semantic_imports_only_the_ground_floor():
    readers = [
        (module, path)
        for module, path in project_files()
        if module.startswith("full_semantic") and module not in FULL_SEMANTIC_COMMANDS
    ]
    upward = package_graph(readers).get("full_semantic", {})
    assert set(upward) <= {FLOOR}, {key: value for key, value in upward.items() if key != FLOOR}


def test_models_import_nothing_of_ours():
    models = [(module, path) for module, path in project_files() if module.startswith("models")]
    assert not package_graph(models).get("models")


def test_semseg_is_sub_packages_only():
    loose = [path.name for path in (ROOT / "semseg").glob("*.py") if path.name != "__init__.py"]
    assert not loose, f"modules directly under semseg/: {loose}"


def test_no_module_is_over_500_lines():
    """A longer one holds two jobs or more: split it by job (tests and the TFDS test case
    beside the builder are left out)."""
    commands = sorted(ROOT.glob("*.py"))
    modules = [path for _, path in project_files()] + commands
    long = {
        str(path.relative_to(ROOT)): length
        for path in modules
        if not path.name.endswith("_test.py")
        and (length := len(path.read_text().splitlines())) > 500
    }
    assert len(modules) > 100 and not long, long


def test_semseg_reads_no_command_and_no_augmentation_code():
    for module, path in project_files():
        if module.startswith("semseg"):
            imported = imported_modules(path)
            assert not any(name.startswith("data_augmentation") for name in imported), module
            assert "full_semantic.stats" not in imported, module


def test_split_lists_and_label_colours_are_read_only_in_full_semantic():
    readers = ("read_split_lists", "read_name_list", "ColorLookup", "read_labelmap")
    for package in ("semseg", "data_augmentation", "models"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            defined = {
                node.name
                for node in ast.walk(tree)
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in readers
            }
            assert not defined, f"{path.name} defines {sorted(defined)}: full_semantic/'s job"


# The CVAT "Segmentation mask 1.1" layout, typed only in full_semantic/ (cvat.py's
# constants, cvat_writer.py's members). Test fixtures write exports on their own on
# purpose, independent of the reader they test.
CVAT_LAYOUT = ("labelmap.txt", "ImageSets", "JPEGImages", "SegmentationClass", "SegmentationObject")


def layout_strings(path):
    """The string constants of a file's code (docstrings and help texts aside: prose may
    name the folders) that are or start with a part of the CVAT layout."""
    tree = ast.parse(path.read_text())
    prose = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            prose.add(id(body[0].value))
        if isinstance(node, ast.keyword) and node.arg == "help":
            prose.add(id(node.value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in prose
        and node.value.startswith(CVAT_LAYOUT)
    ]


def test_the_cvat_layout_is_typed_only_in_full_semantic():
    for folder in ("semseg", "data_augmentation", "models", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            found = layout_strings(path)
            assert not found, f"{path.relative_to(ROOT)} types {found}: use full_semantic.cvat"
    for path in ROOT.glob("*.py"):
        assert not layout_strings(path), path.name


def test_a_layout_string_in_code_is_found(tmp_path):
    """The rule above fails on a violation; prose may name the folders."""
    path = tmp_path / "writer.py"
    path.write_text(
        '"""Writes SegmentationClass/ masks."""\n'
        'parser.add_argument("--masks", help="SegmentationClass/ folder")\n'
        'name = f"SegmentationClass/{key}.png"\n'
    )
    assert layout_strings(path) == ["SegmentationClass/"]
