"""#21.5: every retry logged tenacity's "The 'initial' parameter is deprecated" warning; no retry warns now."""

from __future__ import annotations

import warnings

from airflow_qstash.protocol.calls import Call
from airflow_qstash.protocol.endpoints import BULK_CANCEL
from tests.doubles.fake_qstash import Answer


def test_a_retried_request_emits_no_warning(client):
    client.server.route(
        "DELETE",
        "/v2/messages",
        Answer(503, {"error": "busy"}),
        Answer(502, {"error": "busy"}),
        Answer(200, {"cancelled": 1}),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert client.run("send", Call(BULK_CANCEL, (("label", "a"),))) == {"cancelled": 1}
    assert len(client.server.calls()) == 3
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []
