"""
Real hooks of each transport, on their own session or client with no mock in between: how the tests against
a server on 127.0.0.1 (:mod:`tests.support.loopback`) call them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.hooks import qstash as qstash_hook_module
from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from tests.conftest import connection_json
from tests.support.loopback import LoopbackServer

TRANSPORTS = ["requests", "httpx"]
#: The deadline tests also run the async hook with Python 3.10's deadline (the async-timeout package, the
#: hook's ``_attempt_deadline`` there): CI has only 3.11, so this is how that branch runs at all.
DEADLINE_TRANSPORTS = [*TRANSPORTS, "httpx-async-timeout"]
LABELS = BulkCancelFilter.build(labels="a")

#: Long enough that trickling it at 0.2 s a byte takes far longer than the deadline (about 20 s).
SLOW_BODY = json.dumps({"cancelled": 1, "padding": "x" * 150}).encode()
#: A generous bound for an attempt with a 1 s deadline; the trickle alone would take about 20 s.
GENEROUS_BOUND = 5.0


async def _run_async(conn_id: str, method: str, *args: Any) -> Any:
    hook = QStashAsyncHook(conn_id)
    try:
        return await getattr(hook, method)(*args)
    finally:
        await hook.aclose()


def run(transport: str, conn_id: str, method: str, *args: Any) -> Any:
    """Call ``method`` on a real hook of ``transport``: its own session or client, no mock in between."""
    if transport.startswith("httpx"):
        return asyncio.run(_run_async(conn_id, method, *args))
    hook = QStashHook(conn_id)
    try:
        return getattr(hook, method)(*args)
    finally:
        hook.close()


def use_deadline_of(monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    """For ``httpx-async-timeout``, give the async hook the deadline it takes on Python 3.10."""
    if transport == "httpx-async-timeout":
        import async_timeout

        monkeypatch.setattr(qstash_hook_module, "_attempt_deadline", async_timeout.timeout)


def loopback_connection(monkeypatch: pytest.MonkeyPatch, server: LoopbackServer, **extra: Any) -> str:
    """Point the connection ``qstash_loopback`` at ``server`` (``extra``: more connection fields)."""
    monkeypatch.setenv("AIRFLOW_CONN_QSTASH_LOOPBACK", connection_json(host=server.base_url, **extra))
    return "qstash_loopback"
