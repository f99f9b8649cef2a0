"""
End-to-end fixtures: the example DAGs run with ``dag.test()`` in an isolated Airflow against the emulator.

* ``e2e_airflow_env`` (session): a temporary ``AIRFLOW_HOME`` and the environment the DAG runs get
  (``dags_examples`` as the DAGs folder, no Airflow example DAGs, none of this process's ``AIRFLOW*``
  variables).
* ``e2e_emulator`` (session): the QStash emulator in its default ``actions`` mode (today's hosted QStash:
  a filter cancel is a background bulk action), in this process, on a free loopback port.
* ``dag_runner`` (session): a :class:`~tests.integration.e2e.dag_runner.DagTestRunner` child process whose
  ``qstash_default`` connection points at that emulator, polling bulk actions at most
  :data:`POLL_INTERVAL_MAX` apart; it migrates the SQLite DB once, as it starts (``upgradedb()``, what
  ``airflow db migrate`` runs). Airflow reads ``AIRFLOW_HOME`` at import and other test modules import it
  earlier in this process, hence the child.
* ``emu`` (per test): the session emulator, emptied (messages, bulk actions, request log, faults) before
  the test; after it, no bulk action is left running.
* ``legacy_emu`` (per test) and ``legacy_env``: a second emulator in ``legacy`` mode (a server that honours
  ``count``, answering each filter cancel synchronously), and the environment that points a run's
  ``qstash_default`` at it (``dag_runner.run(..., env=legacy_env)``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from qstash_emulator import InProcessEmulator, QStashEmulator
from tests.conftest import TEST_TOKEN, connection_json
from tests.integration.e2e.dag_runner import DagTestRunner

REPO_ROOT = Path(__file__).resolve().parents[3]
DAGS_FOLDER = REPO_ROOT / "dags_examples"
#: The connection's ``poll_interval_max``: short, so that following a bulk action adds little to a run.
POLL_INTERVAL_MAX = 0.2
#: Messages per second a bulk action cancels: a 1,234-message action then takes about 0.6 s, several polls.
ACTION_RATE = 2000.0
CONN_ENV = "AIRFLOW_CONN_QSTASH_DEFAULT"


def conn_env(emulator: QStashEmulator) -> dict[str, str]:
    """``qstash_default`` pointing at ``emulator``, as an environment variable."""
    return {CONN_ENV: connection_json(emulator.base_url, TEST_TOKEN, poll_interval_max=POLL_INTERVAL_MAX)}


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
    with InProcessEmulator(token=TEST_TOKEN, bulk_cancel="actions", action_rate=ACTION_RATE) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def e2e_legacy_emulator() -> Iterator[QStashEmulator]:
    with InProcessEmulator(token=TEST_TOKEN, bulk_cancel="legacy") as emulator:
        yield emulator


@pytest.fixture(scope="session")
def dag_runner(e2e_airflow_env: dict[str, str], e2e_emulator: QStashEmulator) -> Iterator[DagTestRunner]:
    env = dict(e2e_airflow_env, **conn_env(e2e_emulator))
    runner = DagTestRunner(env, Path(env["AIRFLOW_HOME"]) / "dag-test.log")
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture
def emu(e2e_emulator: QStashEmulator) -> Iterator[QStashEmulator]:
    e2e_emulator.reset()
    yield e2e_emulator
    e2e_emulator.wait_actions_idle(30)


@pytest.fixture
def legacy_emu(e2e_legacy_emulator: QStashEmulator) -> QStashEmulator:
    e2e_legacy_emulator.reset()
    return e2e_legacy_emulator


@pytest.fixture
def legacy_env(e2e_legacy_emulator: QStashEmulator) -> dict[str, str]:
    return conn_env(e2e_legacy_emulator)


@pytest.fixture
def e2e_emu(request: pytest.FixtureRequest) -> QStashEmulator:
    """The end-to-end session emulator, emptied (messages, DLQ, request log, faults)."""
    emulator: QStashEmulator = request.getfixturevalue("e2e_emulator")
    emulator.reset()
    return emulator
