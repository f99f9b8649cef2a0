"""Fixtures of the emulator's own tests (not shared with the rest of the suite)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qstash_emulator import QStashEmulator
from tests.integration.emulator.emulator_testlib import TOKEN, Api


@pytest.fixture(scope="session")
def shared_emulator() -> Iterator[QStashEmulator]:
    """One in-process emulator of the legacy generation (``count`` honoured) for the session (reset by :func:`emu`)."""
    with QStashEmulator(token=TOKEN, bulk_cancel="legacy") as emu:
        yield emu


@pytest.fixture
def emu(shared_emulator: QStashEmulator) -> Iterator[QStashEmulator]:
    """The shared emulator, emptied, with faults off and an empty request log."""
    shared_emulator.reset()
    yield shared_emulator
    shared_emulator.set_faults(None)


@pytest.fixture
def api(emu: QStashEmulator) -> Iterator[Api]:
    """An authenticated client of :func:`emu`."""
    client = Api(emu)
    yield client
    client.session.close()
