"""
``tests/`` mirrors the code, and this module keeps it so.

- ``tests/unit/`` mirrors ``airflow_qstash/``: the tests of ``airflow_qstash/<pkg>/<mod>.py`` are
  ``tests/unit/<pkg>/test_<mod>.py``, or, where a module's tests are about several distinct aspects, the folder
  ``tests/unit/<pkg>/<mod>/test_<aspect>.py``. What spans a whole package is ``tests/unit/<pkg>/test_<pkg>.py``.
- Every provider module has its unit test file or folder, or is named in :data:`COVERED_ELSEWHERE` with the
  unit test file that covers it; that file must import the module (directly or through a provider module
  that imports it), so a waiver cannot outlive what it points at.
- The top level holds only the layers: ``unit/``, ``integration/`` (a real server process or the whole system),
  ``project/`` (checks of the repository as a whole), ``support/`` and ``doubles/`` (helpers, no tests), and
  ``spec/`` (the vendored API spec).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "airflow_qstash"
TESTS = ROOT / "tests"
UNIT = TESTS / "unit"

#: Modules whose tests live in one file of the unit tree other than their mirror, and that file. Each is a
#: file that tests several modules together and is kept whole (its tests are not split by module).
COVERED_ELSEWHERE = {
    "connection_fields": "tests/unit/test_get_provider_info.py",
    "runs/dlq_preview": "tests/unit/operators/dlq/test_dry_run.py",
    "triggers/_common": "tests/unit/triggers/qstash/test_trigger.py",
}

TOP_LEVEL = {"unit", "integration", "project", "support", "doubles", "spec"}
INTEGRATION = {"emulator", "e2e", "live", "reliability", "properties", "sdk", "docs"}


def provider_modules() -> list[str]:
    """``airflow_qstash``'s modules as ``pkg/mod`` paths without ``.py``, ``__init__`` left out."""
    return sorted(
        path.relative_to(PACKAGE).with_suffix("").as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py"
    )


def unit_test_files() -> list[Path]:
    return sorted(UNIT.rglob("test_*.py"))


def mirrors(test_file: Path) -> bool:
    """Whether ``test_file`` (under tests/unit) mirrors a module, a module's aspect folder or a package."""
    relative = test_file.relative_to(UNIT)
    folder, name = relative.parent, relative.stem.removeprefix("test_")
    source = PACKAGE / folder
    if (source / f"{name}.py").is_file() or (source / name / "__init__.py").is_file():
        return True  # tests/unit/<pkg>/test_<mod>.py, or test_<subpackage>.py
    if folder.parts and source.with_suffix(".py").is_file():
        return True  # tests/unit/<pkg>/<mod>/test_<aspect>.py
    return bool(folder.parts) and name == folder.name and (source / "__init__.py").is_file()  # test_<pkg>.py


def imported_modules(path: Path) -> set[str]:
    """The dotted names ``path`` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:  # relative import inside the provider
            package = path.relative_to(ROOT).parent.parts[: len(path.relative_to(ROOT).parent.parts) - node.level + 1]
            base = ".".join(package) + (f".{node.module}" if node.module else "")
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def dotted(module: str) -> str:
    return "airflow_qstash." + module.replace("/", ".")


def test_every_unit_test_file_mirrors_a_module_of_the_provider():
    strays = [str(path.relative_to(ROOT)) for path in unit_test_files() if not mirrors(path)]
    assert not strays, f"not a mirror of a module of airflow_qstash (see this module's docstring): {strays}"


def test_every_folder_of_the_unit_tree_mirrors_a_package_or_a_module():
    folders = [path for path in UNIT.rglob("*") if path.is_dir() and path.name != "__pycache__"]
    strays = [
        str(folder.relative_to(ROOT))
        for folder in folders
        if not (PACKAGE / folder.relative_to(UNIT)).is_dir()
        and not (PACKAGE / folder.relative_to(UNIT)).with_suffix(".py").is_file()
    ]
    assert not strays, f"folders of tests/unit that mirror nothing in airflow_qstash: {strays}"


def test_every_provider_module_has_its_unit_tests():
    missing = []
    for module in provider_modules():
        mirror = UNIT / module
        if (mirror.parent / f"test_{mirror.name}.py").is_file() or mirror.is_dir():
            continue
        if module not in COVERED_ELSEWHERE:
            missing.append(module)
    assert not missing, (
        f"provider modules without tests/unit/<pkg>/test_<mod>.py or a folder tests/unit/<pkg>/<mod>/: {missing}"
    )


def test_each_waiver_points_at_a_unit_test_file_that_imports_its_module():
    modules = set(provider_modules())
    for module, test_file in COVERED_ELSEWHERE.items():
        assert module in modules, f"{module} is no longer a provider module: drop it from COVERED_ELSEWHERE"
        path = ROOT / test_file
        assert path.is_file() and path.is_relative_to(UNIT), f"{test_file} (covering {module}) is not a unit test"
        reached = {name for name in imported_modules(path) if name.startswith("airflow_qstash.")}
        through = {
            name
            for name in reached
            if (PACKAGE.parent / f"{name.replace('.', '/')}.py").is_file()
            and dotted(module) in imported_modules(PACKAGE.parent / f"{name.replace('.', '/')}.py")
        }
        assert dotted(module) in reached or through, f"{test_file} does not import {dotted(module)}"


def test_the_mirror_check_refuses_a_file_that_mirrors_nothing(tmp_path: Path):
    assert mirrors(UNIT / "hooks" / "test_qstash.py")
    assert mirrors(UNIT / "hooks" / "qstash" / "test_any_aspect.py")
    assert mirrors(UNIT / "protocol" / "test_protocol.py")
    assert not mirrors(UNIT / "hooks" / "test_wire.py")
    assert not mirrors(UNIT / "test_wire.py")
    assert not mirrors(UNIT / "nowhere" / "test_nowhere.py")


def test_the_top_level_holds_only_the_layers():
    entries = {path.name for path in TESTS.iterdir() if path.name != "__pycache__"}
    folders = {name for name in entries if (TESTS / name).is_dir()}
    files = entries - folders
    assert folders == TOP_LEVEL, f"tests/ holds the layers {sorted(TOP_LEVEL)}, found {sorted(folders)}"
    assert files == {"__init__.py", "conftest.py"}, f"test files belong in a layer: {sorted(files)}"
    integration = {p.name for p in (TESTS / "integration").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert integration == INTEGRATION


def test_helpers_hold_no_tests():
    tests_in_helpers = [
        str(path.relative_to(ROOT)) for folder in ("support", "doubles") for path in (TESTS / folder).rglob("test_*.py")
    ]
    assert not tests_in_helpers, f"tests/support and tests/doubles are helpers; tests go in a layer: {tests_in_helpers}"


def test_every_test_folder_is_a_package():
    """Without ``__init__.py`` two ``test_dlq.py`` (protocol, triggers) would clash as top-level modules."""
    folders = [
        path
        for layer in ("unit", "integration", "project", "support", "doubles")
        for path in [TESTS / layer, *(TESTS / layer).rglob("*")]
        if path.is_dir() and path.name not in {"__pycache__", "js", "node_modules"} and "node_modules" not in path.parts
    ]
    missing = [str(path.relative_to(ROOT)) for path in folders if not (path / "__init__.py").is_file()]
    assert not missing, f"test folders without __init__.py: {missing}"


def test_no_layer_imports_another_layers_tests():
    """Unit tests need no integration module (a server process would creep into ``make unit``) nor a
    ``project/`` check, and the reverse (the example DAGs' DagBag is in ``support/``); ``support/`` and
    ``doubles/`` import no layer at all, so every layer can use them."""
    allowed = {
        "unit": ("tests.unit", "tests.support", "tests.doubles", "tests.conftest"),
        "integration": ("tests.integration", "tests.project", "tests.support", "tests.doubles", "tests.conftest"),
        "support": ("tests.support", "tests.conftest"),
        "doubles": ("tests.doubles", "tests.support", "tests.conftest"),
    }
    crossings = [
        f"{path.relative_to(ROOT)} imports {name}"
        for layer, prefixes in allowed.items()
        for path in (TESTS / layer).rglob("*.py")
        for name in imported_modules(path)
        if (name == "tests" or name.startswith("tests.")) and not name.startswith(prefixes)
    ]
    assert not crossings, crossings


#: Test modules that still import another test module, with what they import: each is to move to
#: ``tests/support`` (helpers) or a ``conftest.py`` (fixtures). An entry must match the file exactly, so it is
#: dropped when the file is fixed. (tests/integration/properties/ was another change's at the time.)
IMPORTS_OF_TEST_MODULES_LEFT: dict[str, set[str]] = {}


def imported_test_modules(path: Path) -> set[str]:
    """The test modules (``tests.<...>.test_<name>``) ``path`` imports, at its top or inside a function."""
    found = set()
    for name in imported_modules(path):
        parts = name.split(".")
        first = next((i for i, part in enumerate(parts) if part.startswith("test_")), None)
        if parts[0] == "tests" and first is not None:
            found.add(".".join(parts[: first + 1]))  # ``tests.x.test_mod.helper`` is ``tests.x.test_mod``
    return found


def test_no_test_module_imports_another_test_module():
    """A test module's helpers live in ``tests/support``/``tests/doubles`` and its fixtures in a ``conftest.py``.

    Importing a test module ties two files together, and an imported ``test_*`` name is collected again under
    the importer, so one behaviour would be tested twice in a layer. Every Python file under ``tests/`` is
    checked (helpers and ``conftest.py`` too), imports inside functions included.
    """
    found = {
        str(path.relative_to(ROOT)): imported_test_modules(path)
        for path in sorted(TESTS.rglob("*.py"))
        if "node_modules" not in path.parts and imported_test_modules(path)
    }
    assert found == IMPORTS_OF_TEST_MODULES_LEFT, (
        "import helpers from tests/support or tests/doubles and fixtures from a conftest.py, not from a test "
        f"module (or drop a fixed file from IMPORTS_OF_TEST_MODULES_LEFT): {found}"
    )


def test_the_test_module_import_check_sees_every_form(tmp_path: Path):
    forms = {
        "from tests.unit.hooks.test_x import helper\n": {"tests.unit.hooks.test_x"},
        "import tests.unit.hooks.test_x\n": {"tests.unit.hooks.test_x"},
        "from tests.unit.operators.dlq import test_emulator as base\n": {"tests.unit.operators.dlq.test_emulator"},
        "def f():\n    from tests.project.test_dag_integrity import DagBag\n": {"tests.project.test_dag_integrity"},
        "from tests.support.dlq_task import ti_context\nfrom tests.conftest import TEST_TOKEN\n": set(),
    }
    for source, expected in forms.items():
        path = tmp_path / "test_form.py"
        path.write_text(source, encoding="utf-8")
        assert imported_test_modules(path) == expected, source
