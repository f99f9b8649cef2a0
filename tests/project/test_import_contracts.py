"""
The layers are a contract the suite checks: ``lint-imports`` (import-linter) with the contracts in
pyproject.toml's ``[tool.importlinter]``: operators > triggers > hooks > runs > protocol > config >
filters > inputs > exceptions, no import circles, and the provider and the emulator independent both ways.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_declared_contracts_cover_layers_circles_and_both_directions_of_independence():
    contracts = _contracts()
    by_type = {contract["type"]: contract for contract in contracts}
    layers = by_type["layers"]["layers"]
    assert layers[0] == "airflow_qstash.operators" and layers[-1] == "airflow_qstash.exceptions"
    assert layers.index("airflow_qstash.hooks") < layers.index("airflow_qstash.runs | airflow_qstash.durable")
    assert layers.index("airflow_qstash.runs | airflow_qstash.durable") < layers.index("airflow_qstash.protocol")
    assert layers.index("airflow_qstash.protocol") < layers.index("airflow_qstash.filters")
    assert layers.index("airflow_qstash.filters") < layers.index("airflow_qstash.inputs")
    assert {"airflow_qstash", "airflow_qstash.protocol", "airflow_qstash.runs"} <= set(
        by_type["acyclic_siblings"]["ancestors"]
    )
    independent = {tuple(c["modules"]) for c in contracts if c["type"] == "independence"}
    assert ("airflow_qstash.runs.bulk_cancel", "airflow_qstash.runs.dlq") in independent
    assert ("airflow_qstash.protocol.messages", "airflow_qstash.protocol.dlq") in independent
    forbidden = {(c["source_modules"][0], c["forbidden_modules"][0]) for c in contracts if c["type"] == "forbidden"}
    assert forbidden == {("airflow_qstash", "qstash_emulator"), ("qstash_emulator", "airflow_qstash")}


def test_lint_imports_keeps_every_contract():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "emulator")])}
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in result.stdout


def _provider_imports() -> dict[str, set[str]]:
    """Every provider module and the provider modules it names in any import: at the top, inside a
    function, or under ``if TYPE_CHECKING:`` (which import-linter is told to skip)."""
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in (ROOT / "airflow_qstash").rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        named: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                named.add(node.module)
            elif isinstance(node, ast.Import):
                named |= {alias.name for alias in node.names}
        graph[name] = {other for other in named if other in modules and other != name}
    return graph


def test_no_two_provider_modules_import_each_other_not_even_for_annotations():
    """The layering runs one way also where import-linter does not look: filters.py imports the readers of
    inputs.py, and inputs.py names nothing of filters.py (its list readers take a ``ListSpec``)."""
    graph = _provider_imports()

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        stack = [start]
        while stack:
            for other in graph[stack.pop()] - seen:
                seen.add(other)
                stack.append(other)
        return seen

    circles = sorted((a, b) for a in graph for b in graph[a] if a in reachable(b))
    assert circles == []
    assert graph["airflow_qstash.inputs"] == {"airflow_qstash.exceptions"}
