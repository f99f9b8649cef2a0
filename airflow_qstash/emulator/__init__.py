"""A local emulator of the Upstash QStash API, for demos, tests and DAG development.

It holds messages in SQLite (never delivering them), implements the routes the
provider uses (publish, enqueue, get/cancel one message, bulk cancel with every
filter, list queues), injects faults on demand, and exposes an admin API under
``/_emulator/``. It does not import Airflow nor the rest of ``airflow_qstash``.

Run it with ``python -m airflow_qstash.emulator --port 8080 --token T`` or, in
tests, ``with QStashEmulator(token="t") as emu: ...``.

Importing this package is cheap: the server side (Starlette, uvicorn) is only
imported when :class:`QStashEmulator` or :func:`create_app` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_qstash.emulator.faults import FaultConfig

if TYPE_CHECKING:
    from airflow_qstash.emulator.app import create_app
    from airflow_qstash.emulator.server import InProcessEmulator, QStashEmulator, SubprocessEmulator
    from airflow_qstash.emulator.store import MessageStore

__all__ = ["FaultConfig", "InProcessEmulator", "MessageStore", "QStashEmulator", "SubprocessEmulator", "create_app"]

_LAZY = {
    "QStashEmulator": "airflow_qstash.emulator.server",
    "InProcessEmulator": "airflow_qstash.emulator.server",
    "SubprocessEmulator": "airflow_qstash.emulator.server",
    "create_app": "airflow_qstash.emulator.app",
    "MessageStore": "airflow_qstash.emulator.store",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
