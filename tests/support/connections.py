"""
Connections served to the hooks as ``Connection`` objects, for the cases ``AIRFLOW_CONN_*`` cannot carry on
every supported Airflow.

Airflow 3.0 and 3.1 cannot read an env-var connection whose ``extra`` is JSON text or not an object (3.0
reports it undefined; 3.1, outside a task, asks the task supervisor and fails with an ``ImportError``), and
3.1 also asks the supervisor for a connection no env var defines. So these helpers build the ``Connection``
the way Airflow's ``Connection.from_json`` would and patch the two lookups the provider makes: the sync
hooks' ``get_connection`` and :func:`airflow_qstash.compat.get_async_connection` (the async hook's). Every
other connection id still goes through Airflow.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook, Connection

import airflow_qstash.compat as compat
from airflow_qstash.hooks.qstash import QStashHook
from tests.conftest import TEST_TOKEN

#: A stand-in for a connection id no secrets backend defines.
MISSING = object()


def connection_from_json(conn_id: str, value: str) -> Any:
    """
    The ``Connection`` an ``AIRFLOW_CONN_<CONN_ID>`` of ``value`` stands for, built as Airflow's
    ``Connection.from_json`` builds it: an ``extra`` that is a JSON string is kept as that text, any other
    JSON value is dumped back to text (Python's ``json`` reads ``NaN``, ``Infinity`` and ``1e400`` too).

    :param conn_id: the connection id.
    :param value: the connection as JSON text.
    """
    fields = json.loads(value)
    extra = fields.pop("extra", None)
    if extra is not None:
        fields["extra"] = extra if isinstance(extra, str) else json.dumps(extra)
    return Connection(conn_id=conn_id, **fields)


def raw_qstash_connection(conn_id: str, extra_json: str, host: str = "https://qstash.test") -> Any:
    """A ``qstash`` connection whose ``extra`` is written as raw JSON text (any JSON value, even ``NaN``)."""
    return connection_from_json(
        conn_id,
        f'{{"conn_type": "qstash", "host": {json.dumps(host)}, "password": {json.dumps(TEST_TOKEN)}, '
        f'"extra": {extra_json}}}',
    )


def serve_connections(monkeypatch: pytest.MonkeyPatch, connections: dict[str, Any]) -> None:
    """
    Make both hooks read ``connections`` (conn id -> ``Connection``, or :data:`MISSING` for an id that must
    not be found); any other id is looked up by Airflow as before.

    A :data:`MISSING` id raises ``AirflowNotFoundException`` with the message Airflow gives for a connection
    no backend defines.
    """
    sync_lookup = QStashHook.get_connection
    async_lookup: Callable[..., Awaitable[Any]] = compat.get_async_connection

    def served(conn_id: str) -> Any:
        conn = connections[conn_id]
        if conn is MISSING:
            raise AirflowNotFoundException(f"The conn_id `{conn_id}` isn't defined")
        return conn

    def get_connection(cls: type[BaseHook], conn_id: str) -> Any:
        return served(conn_id) if conn_id in connections else sync_lookup(conn_id)

    async def get_async_connection(conn_id: str, hook: Any = None) -> Any:
        return served(conn_id) if conn_id in connections else await async_lookup(conn_id, hook)

    monkeypatch.setattr(QStashHook, "get_connection", classmethod(get_connection))
    # set on the module, so the hook's ``from airflow_qstash.compat import get_async_connection`` finds it
    monkeypatch.setattr(compat, "get_async_connection", get_async_connection, raising=False)
