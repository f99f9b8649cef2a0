"""
#17.2 on the DLQ: a "Failed from" (``from_date``) older than QStash's longest DLQ retention selects every
entry, so alone it is no filter; with another filter, or with delete_all/retry_all, it is sent as given.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from tests.doubles.fake_qstash import FakeDLQ
from tests.support.dlq_task import OPERATORS, rendered, ti_context

# The operators' task start is 2026-11-02T03:00:00.250Z: 2026-07-01 is 124 days before it (> 92).
OLD = "2026-07-01"
OLD_MS = 1_782_864_000_000
RECENT = "2026-10-01"


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("cls", OPERATORS)
def test_an_old_from_date_alone_is_refused_before_any_request_or_deferral(
    sync_fake: FakeDLQ, defer_calls, cls, deferrable
):
    op = rendered(cls(task_id="t", deferrable=deferrable, from_date=OLD))
    with pytest.raises(AirflowFailException) as info:
        op.execute(ti_context())
    message = str(info.value)
    assert "is older than anything QStash keeps" in message
    assert "92 days" in message and "a from_date within the last 92 days" in message
    assert ("delete_all=True" if "Delete" in cls.__name__ else "retry_all=True") in message
    assert sync_fake.seen == []
    assert defer_calls == []


@pytest.mark.parametrize("cls", OPERATORS)
@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"from_date": OLD, "response_statuses": [500]}, id="with-another-filter"),
        pytest.param({"from_date": OLD, "delete_all": True}, id="with-the-all-flag"),
        pytest.param({"from_date": RECENT}, id="recent-alone"),
    ],
)
def test_an_old_from_date_with_another_filter_or_the_all_flag_is_sent_as_given(
    sync_fake: FakeDLQ, cls, kwargs: dict[str, Any]
):
    if "delete_all" in kwargs and "Retry" in cls.__name__:
        kwargs = {**{k: v for k, v in kwargs.items() if k != "delete_all"}, "retry_all": True}
    op = rendered(cls(task_id="t", **kwargs))
    op.execute(ti_context())
    assert sync_fake.seen, "the run sent its requests"
    sent_from = {value for seen in sync_fake.seen for name, value in seen.query if name == "fromDate"}
    assert sent_from == {str(OLD_MS) if kwargs.get("from_date") == OLD else "1790812800000"}
