"""The unit/slow split of ``tests/conftest.py``: what ``make unit`` (``pytest -m "not slow"``) leaves out."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import SLOW_FIXTURES, is_slow, pytest_collection_modifyitems

ROOT = Path(__file__).resolve().parents[2]


def fake_item(path: str, markers: tuple[str, ...] = (), fixtures: tuple[str, ...] = ()) -> Any:
    """What :func:`is_slow` reads of a collected test: its path, its markers and its fixture closure."""
    return SimpleNamespace(
        path=ROOT / path,
        config=SimpleNamespace(rootpath=ROOT),
        get_closest_marker=lambda name: object() if name in markers else None,
        fixturenames=list(fixtures),
    )


@pytest.mark.parametrize(
    "item",
    [
        fake_item("tests/integration/e2e/test_scheduled_e2e.py"),
        fake_item("tests/integration/live/test_ui_live.py"),
        fake_item("tests/integration/emulator/test_emulator_api.py"),
        fake_item("tests/unit/hooks/transport/test_loopback.py"),
        fake_item("tests/project/test_packaging.py"),
        fake_item("tests/integration/reliability/test_soak.py", markers=("soak",)),
        fake_item("tests/elsewhere/test_x.py", markers=("airflow_live",)),
        *(fake_item("tests/triggers/test_x.py", fixtures=("tmp_path", name)) for name in sorted(SLOW_FIXTURES)),
    ],
    ids=lambda item: f"{item.path.relative_to(ROOT)}-{'+'.join(item.fixturenames) or 'no fixtures'}",
)
def test_servers_airflow_processes_and_browsers_are_slow(item: Any):
    assert is_slow(item)


def test_a_test_with_no_server_is_a_unit_test():
    assert not is_slow(
        fake_item("tests/unit/hooks/qstash/test_sync.py", fixtures=("monkeypatch", "requests_mock", "emu_like"))
    )


def test_collection_marks_exactly_the_slow_tests():
    slow, unit = fake_item("tests/integration/e2e/test_x.py"), fake_item("tests/unit/test_filters.py")
    for item in (slow, unit):
        item.added = []
        item.add_marker = item.added.append
    pytest_collection_modifyitems(slow.config, [slow, unit])
    assert [mark.name for mark in slow.added] == ["slow"]
    assert unit.added == []
