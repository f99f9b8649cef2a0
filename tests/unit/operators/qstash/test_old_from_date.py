"""
#17.2 on the bulk cancel: ``from_date="2000-01-01"`` alone cancelled the whole account without cancel_all. A
``from_date`` older than QStash's longest message delay selects every message, so alone it is no filter.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from tests.support.bulk_cancel_task import make_op, rendered, ti_context

# The task starts 2024-06-01T12:00:00.123Z (tests.support.bulk_cancel_task.TASK_START).
RECENT_MS = 1_704_067_200_000  # 2024-01-01: inside the last 365 days


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("from_date", ["2000-01-01", "2023-05-01T00:00:00Z", "{{ params.since }}"])
def test_an_old_from_date_alone_is_refused_before_any_request_or_deferral(
    qstash,
    requests_mock,
    no_deferral,
    deferrable: bool,
    from_date: str,
):
    qstash(pending=5)
    op = rendered(make_op(from_date=from_date, deferrable=deferrable), params={"since": "2000-01-01"})
    with pytest.raises(AirflowFailException) as info:
        op.execute(ti_context())
    message = str(info.value)
    assert (
        "is older than anything QStash keeps (no QStash message waits longer than 365 days, its longest delay)"
        in message
    )
    assert "a from_date within the last 365 days, or set cancel_all=True" in message
    assert requests_mock.call_count == 0
    assert no_deferral == []


@pytest.mark.parametrize(
    ("kwargs", "from_ms"),
    [
        pytest.param({"from_date": "2000-01-01", "labels": "billing"}, "946684800000", id="with-a-label"),
        pytest.param({"from_date": "2000-01-01", "cancel_all": True}, "946684800000", id="with-cancel-all"),
        pytest.param({"from_date": "2024-01-01"}, str(RECENT_MS), id="recent-alone"),
    ],
)
def test_an_old_from_date_with_another_filter_or_cancel_all_is_sent_as_given(
    qstash,
    requests_mock,
    kwargs: dict[str, Any],
    from_ms: str,
):
    qstash(pending=3)
    op = rendered(make_op(**kwargs))
    assert op.execute(ti_context())["cancelled"] == 3
    assert {dict(parse(r))["fromDate"] for r in requests_mock.request_history} == {from_ms}


def parse(request: Any) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl, urlsplit

    return parse_qsl(urlsplit(request.url).query)
