"""
Where the example DAGs are, the ``DagBag`` that parses them (no metadata DB: it only parses files), and
:func:`parsed`, the folder parsed once per module with the network blocked (a fixture for the DAG-integrity
checks and the clock-edge properties).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow < 3.2
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parents[2]
DAG_FOLDER = REPO / "dags_examples"


class NetworkBlocked(OSError):
    pass


def guard_network(monkeypatch: pytest.MonkeyPatch, attempts: list[Any]) -> None:
    """Make every outgoing connection and DNS lookup fail, recording the attempt."""

    def connect(self: socket.socket, address: Any) -> None:
        attempts.append(("connect", address))
        raise NetworkBlocked(f"network call during DAG parsing: connect({address!r})")

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(("getaddrinfo", host))
        raise NetworkBlocked(f"network call during DAG parsing: getaddrinfo({host!r})")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The example DAG folder parsed once, with a throwaway AIRFLOW_HOME and the network blocked."""
    attempts: list[Any] = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
        guard_network(monkeypatch, attempts)
        dagbag = DagBag(dag_folder=str(DAG_FOLDER))
    yield SimpleNamespace(dagbag=dagbag, network_attempts=attempts)
