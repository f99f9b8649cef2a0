"""
A re-run against the emulator's async DLQ (today's generation): the first try gives up on a slow bulk action
(``action_timeout``), the re-run sends the same filters, meets "identical filters return the existing
action" and follows that action to ``FINISHED``, saying so in its log; nothing outside the selection goes.
The first try runs on the worker's transport, the re-run in the trigger's (httpx). The action takes 5 s (300 entries at
60/s), far past the first try's 0.3 s, so the first try always gives up on a running action.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_qstash.exceptions import QStashRunIncomplete
from airflow_qstash.filters import DLQFilter
from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from airflow_qstash.runs.dlq import make_run
from qstash_emulator import QStashEmulator
from tests.conftest import TEST_TOKEN, connection_json

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

FROM_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z
TO_MS = FROM_MS + 86_400_000


class ListLog:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)


@pytest.fixture
def slow_emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[QStashEmulator]:
    with QStashEmulator(token=TEST_TOKEN, bulk_cancel="actions", action_rate=60) as emu:
        monkeypatch.setenv(
            "AIRFLOW_CONN_QSTASH_DEFAULT",
            connection_json(emu.base_url, max_retries=3, backoff_initial=0, backoff_max=0, poll_interval_max=0.2),
        )
        yield emu


def test_a_rerun_follows_the_action_its_first_try_started(slow_emu: QStashEmulator):
    def entry(i: int, label: str) -> dict[str, Any]:
        return {"dlqId": f"d-{label}-{i:04d}", "url": "https://dest.example/x", "createdAt": FROM_MS + i,
                "responseStatus": 500, "labels": [label]}  # fmt: skip

    slow_emu.add_dlq([entry(i, "report") for i in range(300)] + [entry(i, "other") for i in range(20)])
    dlq_filter = DLQFilter.build(labels="report", from_date=FROM_MS, to_date=TO_MS)

    first = make_run("delete", dlq_filter, action_timeout=0.3)
    hook = QStashHook()
    with pytest.raises(QStashRunIncomplete, match=r"past action_timeout.*running the task again joins it"):
        hook.drive(first.steps(hook.config.base_url, poll_interval_max=0.2))
    [started] = first.action_ids

    async def rerun() -> tuple[dict[str, Any], ListLog]:
        log = ListLog()
        run = make_run("delete", dlq_filter, action_timeout=60)
        run.started_ms += 1_000  # the re-run starts later than the first try's action (clocks of one machine)
        async_hook = QStashAsyncHook()
        try:
            config = await async_hook.get_config()
            summary = await async_hook.drive(run.steps(config.base_url, log=log, poll_interval_max=0.2))
        finally:
            await async_hook.aclose()
        return summary, log

    summary, log = asyncio.run(rerun())
    assert summary["action_ids"][0] == started
    assert any(f"bulk action {started} created before this run started" in line for line in log.lines), log.lines
    assert summary["mode"] == "bulk_action" and summary["deleted"] == 300
    assert slow_emu.dlq_ids() == {f"d-other-{i:04d}" for i in range(20)}
    kinds = [a["kind"] for a in slow_emu.bulk_actions()]
    assert kinds == ["dlqDelete", "dlqDelete"]  # the joined action and the confirming round's, no third
