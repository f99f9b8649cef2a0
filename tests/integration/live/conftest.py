"""
Fixtures of the live suite: one real Airflow 3 per session, pointed at an in-process QStash emulator.

``live_airflow`` (session) starts the emulator and Airflow (see :mod:`tests.integration.live.airflow_runtime`),
with ``qstash_default`` = the emulator; the Airflow processes reach the emulator's thread in this pytest
process over loopback. Every test starts from an empty emulator with no faults (``emulator`` resets
it). When a test fails, the end of each component's log and of the newest task logs is attached to its
report; everything is under the session's temporary directory (printed in the header). ``browser`` and
``page`` give the UI tests headless Chromium (see :mod:`tests.integration.live.browser`).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_TOKEN, connection_json
from tests.integration.live.airflow_runtime import AirflowAPI, LiveAirflow
from tests.integration.live.celery_stack import CeleryAirflow

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"


@pytest.fixture(scope="session")
def qstash_emulator() -> Iterator[object]:
    from qstash_emulator import QStashEmulator

    with QStashEmulator(token=TEST_TOKEN) as emu:
        yield emu


@pytest.fixture(scope="session")
def live_airflow(qstash_emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAirflow]:
    """Airflow 3 started once for the session; stopped (every process) at its end, even after failures."""
    home = tmp_path_factory.mktemp("airflow_home")
    airflow = LiveAirflow(
        home,
        # A generous timeout: on 2 cores a worker may wait while the others start tasks.
        connections={"qstash_default": connection_json(qstash_emulator.base_url, qstash_emulator.token, timeout=30)},
    )
    print(f"\nlive Airflow: AIRFLOW_HOME={home}, logs in {airflow.log_dir}, UI {airflow.base_url}")
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        # A SIGTERM to pytest would skip finalizers and atexit; as an interrupt, Airflow is stopped.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        airflow.start()
        yield airflow
    finally:
        airflow.stop()
        leftovers = airflow.leftover_processes()
        assert not leftovers, f"processes left after stopping Airflow: {leftovers}"


@pytest.fixture
def airflow_api(live_airflow: LiveAirflow) -> AirflowAPI:
    return live_airflow.api


@pytest.fixture
def emulator(qstash_emulator) -> object:
    """The session's emulator, emptied, its request log cleared and faults off."""
    qstash_emulator.reset()
    qstash_emulator.set_faults(None)
    return qstash_emulator


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """``test-artifacts/`` at the repository root (gitignored): screenshots."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's, through Playwright; see :mod:`tests.integration.live.browser`), one per module."""
    from playwright import sync_api

    from tests.integration.live.browser import CHROMIUM, CHROMIUM_ARGS

    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not installed (make chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, artifacts_dir: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A tab in a fresh browser context; a screenshot of it goes to ``ui-failure.png`` when the test fails."""
    # Tall enough for the whole Trigger form to show in one screenshot. The UI writes and reads dates in the
    # browser's time zone and locale: pin both (the machine's TZ could be a DST zone, its locale not English).
    context = browser.new_context(viewport={"width": 1400, "height": 1900}, timezone_id="UTC", locale="en-US")
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(artifacts_dir / "ui-failure.png"))
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)  # for fixtures that act on failures (screenshots)
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            airflow = value._airflow if isinstance(value, CeleryAirflow) else value
            if isinstance(airflow, LiveAirflow) and not airflow._stopped:
                report.sections.append(("Airflow logs (tail)", airflow.log_tails()))
    return report


@dataclass(frozen=True)
class WindowScenario:
    """
    Held messages around a creation-time window: ``targets`` carry ``label`` and lie inside the window
    (both bounds included), ``others`` do not (the label just outside either bound, or another label).
    Bounds are whole minutes, so the UI's date-time picker can enter them.
    """

    label: str
    from_dt: datetime
    to_dt: datetime
    targets: frozenset[str]
    others: frozenset[str]

    @property
    def from_ms(self) -> int:
        return int(self.from_dt.timestamp() * 1000)

    @property
    def to_ms(self) -> int:
        return int(self.to_dt.timestamp() * 1000)

    def conf(self, **extra: Any) -> dict[str, Any]:
        """The on-demand DAGs' ``conf`` that selects exactly the targets."""
        return {
            "labels": [self.label],
            "from_date": self.from_dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "to_date": self.to_dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            **extra,
        }

    def assert_only_targets_cancelled(self, emulator: Any) -> None:
        """The emulator's view: every target cancelled, every other message still held."""
        cancelled = {m["messageId"] for m in emulator.messages("cancelled")}
        assert cancelled == self.targets, f"cancelled {sorted(cancelled)}, expected {sorted(self.targets)}"
        assert emulator.held_ids() == self.others


@pytest.fixture
def seed_window(emulator) -> Callable[[str], WindowScenario]:
    """Seed a :class:`WindowScenario` for a label: 5 targets, 5 others; the window ends 1 h ago."""

    def seed(label: str) -> WindowScenario:
        now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        from_dt = now - timedelta(hours=3)
        to_dt = from_dt + timedelta(minutes=90)
        lo, hi = int(from_dt.timestamp() * 1000), int(to_dt.timestamp() * 1000)
        url = "https://example.com/hooks/"
        targets = [
            {"url": url + "a", "labels": [label], "createdAt": lo},  # on the lower bound
            {"url": url + "b", "labels": [label], "createdAt": lo + 1_000},
            {"url": url + "c", "labels": [label], "queueName": "reports", "createdAt": lo + 30 * 60_000},
            {"url": url + "d", "labels": ["unrelated", label], "createdAt": lo + 60 * 60_000},
            {"url": url + "e", "labels": [label], "createdAt": hi},  # on the upper bound
        ]
        others = [
            {"url": url + "f", "labels": [label], "createdAt": lo - 1},  # just before the window
            {"url": url + "g", "labels": [label], "createdAt": hi + 1},  # just after it
            {"url": url + "h", "labels": [label], "createdAt": hi + 89 * 60_000},  # a minute ago
            {"url": url + "i", "labels": ["keep-me"], "createdAt": lo + 30 * 60_000},  # another label
            {"url": url + "j", "createdAt": lo + 45 * 60_000},  # no label
        ]
        target_ids = emulator.add_messages(targets)
        other_ids = emulator.add_messages(others)
        assert emulator.counts() == {"held": 10, "cancelled": 0}
        return WindowScenario(label, from_dt, to_dt, frozenset(target_ids), frozenset(other_ids))

    return seed
