"""A local emulator of the Upstash QStash API, for demos, tests and DAG development.

It holds messages in SQLite (never delivering them), implements the routes the
provider uses (publish, enqueue, get/cancel one message, bulk cancel with every
filter, list queues), injects faults on demand, and exposes an admin API under
``/_emulator/``. It is its own distribution (``airflow-provider-qstash-emulator``) and imports
nothing of Airflow nor of the provider (``airflow_qstash``).

Run it with ``qstash-emulator --token T`` (port 8787; ``python -m qstash_emulator`` works too) or, in
tests, ``with QStashEmulator(token="t") as emu: ...``.

Importing this package is cheap: the server side (Starlette, uvicorn) is only
imported when :class:`QStashEmulator` or :func:`create_app` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qstash_emulator.faults import FaultConfig

if TYPE_CHECKING:
    from qstash_emulator.app import create_app
    from qstash_emulator.server import InProcessEmulator, QStashEmulator, SubprocessEmulator
    from qstash_emulator.store import MessageStore

__all__ = ["FaultConfig", "InProcessEmulator", "MessageStore", "QStashEmulator", "SubprocessEmulator", "create_app"]

_LAZY = {
    "QStashEmulator": "qstash_emulator.server",
    "InProcessEmulator": "qstash_emulator.server",
    "SubprocessEmulator": "qstash_emulator.server",
    "create_app": "qstash_emulator.app",
    "MessageStore": "qstash_emulator.store",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
