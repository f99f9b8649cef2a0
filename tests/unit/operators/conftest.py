"""Fixtures of the operator tests: the bulk cancel's scripted server and a spy on its deferral."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_qstash.hooks.qstash import QStashHook
from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from tests.doubles.fake_qstash import PendingMessages
from tests.support.bulk_cancel_task import BULK_URL


@pytest.fixture
def qstash(qstash_conn: str, requests_mock: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., PendingMessages]:
    """Install a :class:`PendingMessages` behind the ``qstash_default`` connection; retries do not sleep."""
    monkeypatch.setattr(QStashHook, "sleep", staticmethod(lambda seconds: None))

    def install(pending: int = 0, intercept: Any = None) -> PendingMessages:
        fake = PendingMessages(pending, intercept)
        requests_mock.delete(BULK_URL, content=fake.requests_callback)
        return fake

    return install


@pytest.fixture
def no_deferral(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record every ``defer`` call (and still defer): a refusal must leave this empty on the deferrable path."""
    calls: list[Any] = []
    original = QStashBulkCancelOperator.defer

    def spy(self: QStashBulkCancelOperator, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(self, **kwargs)

    monkeypatch.setattr(QStashBulkCancelOperator, "defer", spy)
    return calls
