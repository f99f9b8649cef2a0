"""
End-to-end fixtures: the example DAGs run with ``dag.test()`` in an isolated Airflow against the emulator.

* ``e2e_airflow_env`` (session): a temporary ``AIRFLOW_HOME`` and the environment the DAG runs get
  (``dags_examples`` as the DAGs folder, no Airflow example DAGs, none of this process's ``AIRFLOW*``
  variables).
* ``e2e_emulator`` (session): the QStash emulator, in this process, on a free loopback port.
* ``dag_runner`` (session): a :class:`~tests.e2e.dag_runner.DagTestRunner` child process whose
  ``qstash_default`` connection points at that emulator; it migrates the SQLite DB once, as it starts
  (``upgradedb()``, what ``airflow db migrate`` runs). Airflow reads ``AIRFLOW_HOME`` at import and other
  test modules import it earlier in this process, hence the child.
* ``emu`` (per test): the session emulator, emptied (messages, request log, faults) before the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_qstash.emulator import QStashEmulator
from tests.conftest import TEST_TOKEN, connection_json
from tests.e2e.dag_runner import DagTestRunner

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO_ROOT / "dags_examples"


def isolated_env(airflow_home: Path) -> dict[str, str]:
    """This process's environment without any ``AIRFLOW*`` setting, plus the isolated Airflow's own."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="session")
def e2e_airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return isolated_env(tmp_path_factory.mktemp("airflow_home"))


@pytest.fixture(scope="session")
def e2e_emulator() -> Iterator[QStashEmulator]:
    with QStashEmulator(token=TEST_TOKEN) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def dag_runner(e2e_airflow_env: dict[str, str], e2e_emulator: QStashEmulator) -> Iterator[DagTestRunner]:
    env = dict(e2e_airflow_env, AIRFLOW_CONN_QSTASH_DEFAULT=connection_json(e2e_emulator.base_url, TEST_TOKEN))
    runner = DagTestRunner(env, Path(env["AIRFLOW_HOME"]) / "dag-test.log")
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture
def emu(e2e_emulator: QStashEmulator) -> QStashEmulator:
    e2e_emulator.reset()
    return e2e_emulator
