"""The provider and the emulator are two distributions of this repo that import nothing of each other.

``airflow-provider-qstash`` (``setup.cfg``, import package ``airflow_qstash``) must not carry the emulator's
web stack in its ``install_requires``; ``airflow-provider-qstash-emulator`` (``emulator/pyproject.toml``,
import package ``qstash_emulator``) declares every third-party package it imports and imports nothing of
Airflow nor of the provider. Imports are read from the source (AST), so a lazy import inside a function,
an ``importlib.import_module("...")`` with a literal name and an ``if TYPE_CHECKING:`` import all count.
"""

from __future__ import annotations

import ast
import configparser
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = ROOT / "airflow_qstash"
EMULATOR = ROOT / "emulator" / "qstash_emulator"
#: The emulator's web stack: none of it belongs in the provider's install_requires.
WEB_STACK = ("starlette", "uvicorn", "httptools", "uvloop", "h11", "websockets", "airflow-provider-qstash-emulator")


def requirement_name(requirement: str) -> str:
    """The normalised distribution name of a PEP 508 requirement (``'Starlette>=0.37'`` -> ``'starlette'``)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def cfg_list(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip() and not line.strip().startswith("#")]


def emulator_project() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((ROOT / "emulator" / "pyproject.toml").read_text())["project"]
    return project


def package_of(path: Path) -> str:
    """The dotted package ``path`` belongs to (its folders up to the last one with an ``__init__.py``)."""
    parts: list[str] = []
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, module)`` of every import in ``path``: statements anywhere in the file (relative ones resolved
    against the package) and ``importlib.import_module`` / ``__import__`` calls with a literal name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = package_of(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
                assert base, f"{path}:{node.lineno} imports above its top-level package"
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # "from pkg import sub" imports pkg.sub when it is a module
                yield node.lineno, f"{module}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
        ):
            yield node.lineno, node.args[0].value


def python_files(package: Path) -> list[Path]:
    files = sorted(package.rglob("*.py"))
    assert files, package
    return files


def imports_of(package: Path, root: Path) -> list[tuple[str, str]]:
    """``(file:line, module)`` of every import in ``package`` (paths relative to ``root``)."""
    return [
        (f"{path.relative_to(root)}:{line}", module)
        for path in python_files(package)
        for line, module in imported_modules(path)
    ]


def top_level(module: str) -> str:
    return module.split(".")[0]


# --------------------------------------------------------------------------- the provider's requirements


def test_the_provider_install_requires_carry_none_of_the_emulator_web_stack():
    requires = {requirement_name(r) for r in cfg_list(setup_cfg()["options"]["install_requires"])}
    assert "apache-airflow" in requires  # the right key was read
    assert requires.isdisjoint(WEB_STACK), sorted(requires & set(WEB_STACK))


def test_the_provider_offers_the_emulator_as_its_emulator_extra():
    extras = setup_cfg()["options.extras_require"]
    assert [requirement_name(r) for r in cfg_list(extras["emulator"])] == ["airflow-provider-qstash-emulator"]
    assert emulator_project()["name"] == "airflow-provider-qstash-emulator"


def test_the_provider_wheel_ships_no_emulator_package():
    packages = cfg_list(setup_cfg()["options.packages.find"]["include"])
    assert all(top_level(p) == "airflow_qstash" for p in packages), packages
    assert not (PROVIDER / "emulator").exists(), "the emulator lives in emulator/qstash_emulator now"


# --------------------------------------------------------------------------- the emulator's distribution


def test_the_emulator_declares_every_third_party_package_it_imports():
    stdlib = set(sys.stdlib_module_names)
    third_party = {
        top_level(module)
        for _, module in imports_of(EMULATOR, ROOT)
        if top_level(module) not in stdlib and top_level(module) not in ("qstash_emulator", "__future__")
    }
    declared = {requirement_name(r) for r in emulator_project()["dependencies"]}  # type: ignore[union-attr]
    assert third_party == {"starlette", "uvicorn"}
    assert third_party <= declared, sorted(third_party - declared)


def test_the_emulator_has_a_console_script_and_a_python_m_entry():
    scripts = emulator_project()["scripts"]
    assert scripts == {"qstash-emulator": "qstash_emulator.cli:main"}
    assert (EMULATOR / "__main__.py").is_file()
    assert (EMULATOR / "py.typed").is_file()


# --------------------------------------------------------------------------- neither imports the other


def test_no_module_of_the_provider_imports_the_emulator():
    found = [(where, m) for where, m in imports_of(PROVIDER, ROOT) if top_level(m) == "qstash_emulator"]
    assert found == []


def test_no_module_of_the_emulator_imports_the_provider_or_airflow():
    found = [(where, m) for where, m in imports_of(EMULATOR, ROOT) if top_level(m) in ("airflow_qstash", "airflow")]
    assert found == []


def test_the_import_scan_sees_every_kind_of_import(tmp_path: Path):
    """The scan above is only as good as what it sees: a lazy, a TYPE_CHECKING, a relative and a dynamic import."""
    package = tmp_path / "pkg" / "sub"
    package.mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from qstash_emulator.app import create_app\n"
        "def f():\n    import qstash_emulator.server\n"
        "import importlib\nimportlib.import_module('qstash_emulator.cli')\n"
        "__import__('qstash_emulator.web')\n"
        "from . import sibling\n"
        "from ..other import thing\n"
    )
    found = {m for _, m in imports_of(package, tmp_path)}
    expected = {"qstash_emulator.app", "qstash_emulator.server", "qstash_emulator.cli", "qstash_emulator.web"}
    assert expected | {"pkg.sub.sibling", "pkg.other", "pkg.other.thing"} <= found


def test_the_emulator_imports_alone_without_airflow_or_the_provider():
    """Every module of ``qstash_emulator`` imports in a fresh interpreter that can reach neither Airflow nor
    ``airflow_qstash`` (a finder refuses them), with only ``emulator/`` on the path."""
    modules = sorted(
        "qstash_emulator" + ("" if p.stem == "__init__" else "." + p.stem)
        for p in python_files(EMULATOR)
        if p.stem != "__main__"
    )
    probe = (
        "import sys, importlib\n"
        "class Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('airflow', 'airflow_qstash'):\n"
        "            raise ImportError('the emulator imported ' + name)\n"
        "sys.meta_path.insert(0, Refuse())\n"
        f"sys.path[:0] = [{str(ROOT / 'emulator')!r}]\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'airflow_qstash')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT / "emulator"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"
    assert len(modules) >= 15


def test_the_emulator_has_no_import_circle():
    """No module of ``qstash_emulator`` imports (directly or not, at module level, lazily or for typing) one
    that imports it back."""
    graph: dict[str, set[str]] = {}
    names = {p.stem for p in python_files(EMULATOR)}
    for path in python_files(EMULATOR):
        graph[path.stem] = {
            part
            for _, module in imported_modules(path)
            if top_level(module) == "qstash_emulator" and module != "qstash_emulator"
            for part in [module.split(".")[1]]
            if part in names and part != path.stem
        }
    circles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                circles.append([*path[path.index(nxt) :], nxt])
            elif len(path) < len(graph):
                visit(nxt, [*path, nxt])

    for node in sorted(graph):
        visit(node, [node])
    assert graph["web"] >= {"state"} and graph["store"] >= {"seeding"}  # the graph was read
    assert circles == []


# --------------------------------------------------------------------------- make setup


def test_make_setup_installs_the_emulator_before_the_provider():
    makefile = (ROOT / "Makefile").read_text()
    stamp_rule = re.search(r"^\$\(STAMP\):(.*)$", makefile, re.M)
    assert stamp_rule and "emulator/pyproject.toml" in stamp_rule.group(1).split()
    recipe = makefile[stamp_rule.end() :].split("\n\n")[0]
    emulator_at = recipe.index("-e ./emulator")
    provider_at = recipe.index("-e '.[test")  # with its test extra (and any other extras)
    assert emulator_at < provider_at
