"""
The requests (:mod:`airflow_qstash.protocol.calls`): the one id splitter, which measures the URL as sent,
and the filter query that must fit one URL.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.protocol.calls import filter_requests, split_ids
from airflow_qstash.protocol.endpoints import BULK_CANCEL, MAX_URL_LENGTH
from airflow_qstash.protocol.messages import bulk_cancel_requests

BASE_URL = "https://qstash.test"


def _ids(n, width=28):
    return [f"msg_{i:0{width}d}" for i in range(n)]


def _url(path, part):
    return f"{BASE_URL}{path}?{urlencode(part)}"


def test_split_ids_measures_the_url_as_sent_to_the_character():
    ids = _ids(3)
    exact = len(_url("/v2/messages", [("messageIds", i) for i in ids] + [("count", "500")]))
    fits = split_ids("messageIds", ids, [("count", "500")], BASE_URL, "/v2/messages", reserve=MAX_URL_LENGTH - exact)
    assert fits == [[*(("messageIds", i) for i in ids), ("count", "500")]]
    parts = split_ids(
        "messageIds", ids, [("count", "500")], BASE_URL, "/v2/messages", reserve=MAX_URL_LENGTH - exact + 1
    )
    assert len(parts) == 2


@pytest.mark.parametrize("reserve", [0, 1000, 3700])
def test_split_ids_makes_disjoint_parts_in_order_that_fit_with_the_params(reserve):
    ids = _ids(2000)
    params = [("count", "100"), ("async", "true")]
    parts = split_ids("messageIds", ids, params, BASE_URL, "/v2/messages", reserve=reserve)
    assert len(parts) > 1
    for part in parts:
        assert part[-2:] == params
        assert len(_url("/v2/messages", part)) <= MAX_URL_LENGTH - reserve
    assert [value for part in parts for name, value in part if name == "messageIds"] == ids


def test_split_ids_counts_percent_encoding():
    ids = [f"ü/{i:04d}&" for i in range(300)]  # each id grows from 8 to 16 characters when encoded
    parts = split_ids("messageIds", ids, (), BASE_URL, "/v2/messages", reserve=MAX_URL_LENGTH - 500)
    assert all(len(_url("/v2/messages", part)) <= 500 for part in parts)
    assert [value for part in parts for _, value in part] == ids


def test_split_ids_keeps_at_most_max_ids_a_part_and_no_ids_make_no_parts():
    assert [len(part) for part in split_ids("dlqIds", [f"d{i}" for i in range(25)], (), BASE_URL, "/v2/dlq", 10)] == [
        10,
        10,
        5,
    ]
    assert split_ids("dlqIds", [], (), BASE_URL, "/v2/dlq", 10) == []


def test_split_ids_refuses_one_id_longer_than_a_url_naming_the_argument():
    with pytest.raises(QStashInputError, match=r"message_ids value .xxx.*too long"):
        split_ids("messageIds", ["short", "x" * 5000], (), BASE_URL, "/v2/messages", what="message_ids")


def test_filter_requests_refuses_filters_that_do_not_fit_one_url():
    bulk_filter = BulkCancelFilter.build(labels=[f"label-{i}-" + "y" * 40 for i in range(100)])
    with pytest.raises(QStashInputError, match="more than the 4096"):
        filter_requests(bulk_filter, BASE_URL, "/v2/messages")


def test_both_callers_use_the_one_splitter():
    """The bulk cancel's message ids and the DLQ's ids are split by :func:`split_ids`, nowhere else."""
    from airflow_qstash.protocol import dlq

    assert "split_message_ids" not in vars(BulkCancelFilter)
    assert not hasattr(dlq, "_split_ids") and not hasattr(dlq, "dlq_multi_requests")
    ids = _ids(1500)
    assert bulk_cancel_requests(BulkCancelFilter.build(message_ids=ids), 500, BASE_URL) == split_ids(
        "messageIds", ids, [("count", "500")], BASE_URL, BULK_CANCEL.path
    )
