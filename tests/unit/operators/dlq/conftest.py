"""
Fixtures of the DLQ operator tests: a spy on deferral, and the emulator (emptied per test) with the data set
of :mod:`tests.support.dlq_dataset`. ``emu`` takes the module's own ``shared_emulator``: each emulator test
module says which server generations it runs against.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from qstash_emulator import QStashEmulator
from tests.conftest import connection_json
from tests.support.dlq_dataset import FROM_MS, dataset
from tests.support.dlq_task import OPERATORS


@pytest.fixture
def defer_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record every ``defer`` call (it still defers)."""
    calls: list[dict[str, Any]] = []
    for cls in OPERATORS:
        original = cls.defer

        def spy(self: Any, _original: Any = original, **kwargs: Any) -> Any:
            calls.append(kwargs)
            return _original(self, **kwargs)

        monkeypatch.setattr(cls, "defer", spy)
    return calls


@pytest.fixture
def emu(shared_emulator: QStashEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[QStashEmulator]:
    shared_emulator.reset()
    shared_emulator.set_faults(None)
    monkeypatch.setenv(
        "AIRFLOW_CONN_QSTASH_DEFAULT",
        connection_json(shared_emulator.base_url, max_retries=12, backoff_initial=0, backoff_max=0),
    )
    yield shared_emulator
    shared_emulator.set_faults(None)


@pytest.fixture
def data(emu: QStashEmulator) -> SimpleNamespace:
    entries, matching = dataset()
    emu.add_dlq(entries)
    held = emu.add_messages([{"url": "https://dest.example/held", "labels": ["report"], "createdAt": FROM_MS + 5}])
    everything = {entry["dlqId"] for entry in entries}
    assert emu.dlq_ids() == everything
    return SimpleNamespace(
        matching=matching,
        others=everything - matching,
        held=set(held),
        urls={f"https://dest.example/{i}" for i in matching},
    )
