"""
An id never leaves its path segment (issue 11 item 2), on both hooks: ids that URL normalisation would
collapse (``.``, ``..``, also percent-encoded or behind a slash) and empty ids are refused before any
request; every other id travels as exactly one percent-encoded segment.
"""

from __future__ import annotations

import string
from urllib.parse import quote, unquote

import pytest

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.hooks.qstash import QStashHook
from tests.doubles.fake_qstash import Answer

#: Ids that would reach another path (``/v2/messages/``, ``/v2/``, the bulk endpoint) or no id at all.
COLLAPSING_IDS = [".", "..", " . ", "./.", "a/..", "%2e%2e", ".%2E", "../x", "a\\..", "%2E"]
EMPTY_IDS = ["", "  ", "\t", None]

#: Each id-taking hook method, the collection its path lives under, and the argument name.
METHODS = {
    "cancel_message": ("/v2/messages/", "message_id"),
    "get_bulk_action": ("/v2/bulkActions/", "action_id"),
}

_SEGMENT_CHARS = set(string.ascii_letters + string.digits + "-._~%")


@pytest.mark.parametrize("bad_id", COLLAPSING_IDS)
@pytest.mark.parametrize("method", list(METHODS))
def test_a_dot_segment_id_is_refused_before_any_request(client, method, bad_id):
    with pytest.raises(QStashInputError, match="dot segment"):
        client.run(method, bad_id)
    assert client.server.sent == []


@pytest.mark.parametrize("bad_id", EMPTY_IDS)
@pytest.mark.parametrize("method", list(METHODS))
def test_an_empty_id_is_refused_before_any_request(client, method, bad_id):
    with pytest.raises(QStashInputError, match="is empty"):
        client.run(method, bad_id)
    assert client.server.sent == []


@pytest.mark.parametrize("bad_id", ["", ".."])
@pytest.mark.parametrize("method", list(METHODS))
def test_a_refused_id_names_the_argument_to_change(client, method, bad_id):
    _, argument = METHODS[method]
    with pytest.raises(QStashInputError) as info:
        client.run(method, bad_id)
    assert str(info.value).startswith(argument), str(info.value)


@pytest.mark.parametrize(
    "an_id",
    ["msg_1", "a/b", "a?b#c", "50%", "a b", "ünï 🚀", "..a", "a..", ".a", "...", "%2F", "%", "a;b=c", "a\\b"],
)
@pytest.mark.parametrize("method", list(METHODS))
def test_any_other_id_travels_as_exactly_one_percent_encoded_segment(client, method, an_id):
    collection, _ = METHODS[method]
    client.server.route(
        "DELETE" if method == "cancel_message" else "GET",
        collection + quote(an_id, safe=""),
        Answer(202, {"cancelled": 1}) if method == "cancel_message" else Answer(200, _action(an_id)),
    )
    client.run(method, an_id)
    assert len(client.server.sent) == 1
    path = client.server.sent[0].path
    assert path.startswith(collection)
    segment = path[len(collection) :]
    assert segment and "/" not in segment
    assert set(segment) <= _SEGMENT_CHARS  # nothing a client or proxy could reinterpret
    assert unquote(segment) == an_id  # and it decodes back to the id, whole
    assert client.server.sent[0].query == ""


def test_cancel_message_answers_what_qstash_answered(client):
    client.server.route("DELETE", "/v2/messages/msg_1", Answer(202, {"cancelled": 1}))
    assert client.run("cancel_message", "msg_1") == {"cancelled": 1}


@pytest.mark.parametrize("ids", [[".."], ["m1", "."], ["%2e%2e"], ["a/.."], ["m1", " "]])
def test_dot_segment_or_blank_ids_inside_message_ids_are_refused(qstash_conn, requests_mock, ids):
    requests_mock.delete(f"{qstash_conn}/v2/messages", json={"cancelled": 1000})
    with pytest.raises(QStashInputError, match="message_ids"):
        QStashHook().bulk_cancel(message_ids=ids)
    assert requests_mock.call_count == 0


def _action(action_id: str) -> dict[str, object]:
    return {"actionId": action_id, "state": "IN_PROGRESS", "total": 1, "processed": 0, "filter": {}}
