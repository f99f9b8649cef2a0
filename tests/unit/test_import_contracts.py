"""
The layers are a contract the suite checks: ``lint-imports`` (import-linter) with the contracts in
pyproject.toml's ``[tool.importlinter]``: operators > triggers > hooks > runs > protocol > config >
filters > inputs > exceptions, no import circles, and the provider and the emulator independent both ways.
"""

from __future__ import annotations

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
