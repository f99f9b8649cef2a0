"""
The token never appears in text the provider builds (issue 11 items 6 and 7), on both hooks.

A token that cannot travel in an HTTP header is refused when the connection is read, naming the position
and kind of the bad character and showing no piece of the token. A server that echoes the token back (in an
error body, a non-JSON 2xx, a ``Location``; plain, broken over lines, JSON- or percent-escaped, or as
``Bearer <anything>``) gets it redacted from every exception text and log line.

These tests use their own token, made of mixed-case letters and digits, so that "no piece of four
characters or more appears" is a meaningful check: no English word or URL in a message shares one.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from airflow_qstash.exceptions import QStashAPIError, QStashConnectionError, QStashInputError
from airflow_qstash.filters import BulkCancelFilter
from tests.doubles.fake_qstash import Answer, HookClient, use_connection
from tests.support.token_pieces import SECRET, assert_no_piece, pieces

#: Another credential a server may echo after an auth scheme.
OTHER_CREDENTIAL = "xQ3vT8-otherCred.k9W"
LABELS = BulkCancelFilter.build(labels="a")


@pytest.fixture
def echo_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    return use_connection(monkeypatch, conn_id="qstash_echo", token=SECRET)


# --------------------------------------------------------------------------- a token that cannot be a header


BAD_TOKENS = [
    pytest.param(f"{SECRET[:8]}\n{SECRET[8:]}", 9, "a line break", id="newline"),
    pytest.param(f"{SECRET[:8]}\r{SECRET[8:]}", 9, "a line break", id="carriage-return"),
    pytest.param(f"{SECRET[:8]}\r\n{SECRET[8:]}", 9, "a line break", id="crlf"),
    pytest.param(f"{SECRET[:12]}\u200b{SECRET[12:]}", 13, "ZERO WIDTH SPACE", id="zero-width-space"),
    pytest.param(f"{SECRET[:8]}\t{SECRET[8:]}", 9, "white space", id="tab"),
    pytest.param(f"{SECRET[:8]} {SECRET[8:]}", 9, "white space", id="space"),
    pytest.param(f"{SECRET[:8]}\u00a0{SECRET[8:]}", 9, "white space", id="no-break-space"),
    pytest.param(f"{SECRET[:20]}é{SECRET[20:]}", 21, "U+00E9", id="e-acute-latin-1"),
    pytest.param(f"{SECRET[:20]}€{SECRET[20:]}", 21, "EURO SIGN", id="euro-non-latin-1"),
    pytest.param(f"{SECRET[:5]}\x7f{SECRET[5:]}", 6, "U+007F", id="delete"),
    pytest.param(f"{SECRET[:5]}\x00{SECRET[5:]}", 6, "U+0000", id="nul"),
]


@pytest.mark.parametrize(("token", "position", "kind"), BAD_TOKENS)
def test_a_token_that_cannot_be_a_header_is_refused_when_the_connection_is_read(
    client: HookClient, monkeypatch, token, position, kind
):
    conn_id = use_connection(monkeypatch, conn_id="qstash_bad", token=token)
    with pytest.raises(QStashConnectionError) as info:
        client.read_config(conn_id)
    message = str(info.value)
    assert f"position {position} of {len(token)}" in message
    assert kind in message
    assert "the token is the cause" in message
    assert "'qstash_bad'" in message
    assert isinstance(info.value, QStashInputError)  # an input refusal: operators fail without retries
    assert_no_piece(info.value, token)
    # and nothing is sent with it
    with pytest.raises(QStashConnectionError):
        client.run("bulk_cancel_by_filter", LABELS, conn_id=conn_id)
    assert client.server.sent == []


@pytest.mark.parametrize("padding", [" ", "\n", "\r\n", "\t ", " \n"])
def test_white_space_around_the_token_is_trimmed_not_sent(client, monkeypatch, padding):
    conn_id = use_connection(monkeypatch, conn_id="qstash_padded", token=f"{padding}{SECRET}{padding}")
    client.server.route("DELETE", "/v2/messages", Answer(202, {"actionId": "act_1"}))
    assert client.read_config(conn_id).token == SECRET
    client.run("bulk_cancel_by_filter", LABELS, conn_id=conn_id)
    assert client.server.sent[0].headers["authorization"] == f"Bearer {SECRET}"


# --------------------------------------------------------------------------- a server that echoes the token

ECHOES = [
    pytest.param({"json": {"error": f"invalid token {SECRET}"}}, id="json-plain"),
    pytest.param({"text": f"Unauthorized: {SECRET} is not valid"}, id="text-plain"),
    pytest.param({"text": f"bad token {SECRET[:10]}\n{SECRET[10:20]}\r\n{SECRET[20:]} rejected"}, id="line-breaks"),
    pytest.param({"text": f'{{"error": "bad token {SECRET[:10]}\\n{SECRET[10:]}"}}'}, id="json-escaped-newline"),
    pytest.param({"text": f"<pre>token={SECRET[:10]}\\n{SECRET[10:]}</pre>"}, id="text-backslash-n"),
    pytest.param({"text": f"token={SECRET[:16]}%0A{SECRET[16:]}"}, id="percent-escaped-newline"),
    pytest.param({"text": f"header was Authorization: Bearer {SECRET}"}, id="bearer-ours"),
    pytest.param({"json": {"error": f"header was 'Bearer {SECRET[:6]}'"}}, id="bearer-truncated"),
    pytest.param({"json": {"error": f"expected Bearer {OTHER_CREDENTIAL}"}}, id="bearer-other"),
    pytest.param({"text": f"auth=bearer%20{OTHER_CREDENTIAL}&x=1"}, id="bearer-url-encoded"),
]


@pytest.mark.parametrize("echo", ECHOES)
@pytest.mark.parametrize("status", [400, 401, 403, 404, 412, 500, 503])
def test_an_error_answer_that_echoes_the_token_is_redacted(client, echo_conn, status, echo):
    client.server.route("DELETE", "/v2/messages", Answer(status, **echo))
    client.server.route("GET", "/v2/bulkActions", Answer(200, {"bulkActions": []}))
    with pytest.raises(QStashAPIError) as info:
        client.run("bulk_cancel_by_filter", LABELS, conn_id=echo_conn)
    assert_no_piece(info.value)
    assert OTHER_CREDENTIAL not in str(info.value)
    assert str(status) in str(info.value)


@pytest.mark.parametrize("echo", ECHOES)
def test_a_2xx_answer_that_is_not_json_is_redacted(client, echo_conn, echo):
    body = echo.get("text") or json.dumps(echo["json"])
    client.server.route("DELETE", "/v2/messages", Answer(200, text=f"<html>{body}</html>"))
    with pytest.raises(QStashAPIError, match="not JSON") as info:
        client.run("bulk_cancel_by_filter", LABELS, conn_id=echo_conn)
    assert_no_piece(info.value)
    assert OTHER_CREDENTIAL not in str(info.value)


@pytest.mark.parametrize(
    "location",
    [
        pytest.param(f"https://login.example/?token={SECRET}", id="query"),
        pytest.param(f"https://login.example/{SECRET[:12]}%0A{SECRET[12:]}", id="percent-newline"),
        pytest.param(f"https://login.example/?auth=Bearer%20{OTHER_CREDENTIAL}", id="bearer-other"),
        pytest.param(f"https://login.example/?auth=Bearer+{SECRET}", id="bearer-plus"),
    ],
)
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_location_that_carries_the_token_is_redacted(client, echo_conn, status, location):
    client.server.route("DELETE", "/v2/messages", Answer(status, headers={"Location": location}))
    with pytest.raises(QStashAPIError) as info:
        client.run("bulk_cancel_by_filter", LABELS, conn_id=echo_conn)
    assert_no_piece(info.value)
    assert OTHER_CREDENTIAL not in str(info.value)
    assert "https://login.example/" in str(info.value)
    assert len(client.server.sent) == 1


@pytest.mark.parametrize("offset", [150, 185, 190, 195, 199])
@pytest.mark.parametrize("form", ["text", "json"])
def test_a_token_cut_by_the_message_length_limit_leaves_no_piece(client, echo_conn, form, offset):
    """Truncating a long body must not leave a piece of the token too short to be recognised as one."""
    if form == "text":
        answer = Answer(400, text="x" * offset + SECRET + " trailing text")
    else:  # QStash's ``error`` text is kept to 500 characters
        answer = Answer(400, {"error": "x" * (offset + 300) + SECRET + " trailing text"})
    client.server.route("DELETE", "/v2/messages", answer)
    with pytest.raises(QStashAPIError) as info:
        client.run("bulk_cancel_by_filter", LABELS, conn_id=echo_conn)
    assert_no_piece(info.value)


@pytest.mark.parametrize("offset", [250, 290, 295])
def test_a_token_cut_from_a_long_location_leaves_no_piece(client, echo_conn, offset):
    location = "https://login.example/" + "p" * (offset - len("https://login.example/")) + SECRET
    client.server.route("DELETE", "/v2/messages", Answer(302, headers={"Location": location}))
    with pytest.raises(QStashAPIError) as info:
        client.run("bulk_cancel_by_filter", LABELS, conn_id=echo_conn)
    assert_no_piece(info.value)


def test_a_far_rate_limit_reset_message_is_redacted(client, echo_conn):
    headers = {"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(time.time()) + 6 * 3600)}
    client.server.route("DELETE", "/v2/messages", Answer(429, {"error": f"quota of {SECRET} spent"}, headers=headers))
    with pytest.raises(QStashAPIError, match="max_rate_limit_wait") as info:
        client.run("bulk_cancel_by_filter", LABELS, conn_id=echo_conn)
    assert_no_piece(info.value)


def test_retry_warnings_do_not_carry_an_echoed_token(client, echo_conn, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    client.server.route(
        "DELETE",
        "/v2/messages",
        Answer(503, {"error": f"upstream saw Bearer {SECRET}"}),
        Answer(503, text=f"{SECRET[:9]}\n{SECRET[9:]}"),
        Answer(202, {"actionId": "act_1"}),
    )
    client.run("bulk_cancel_by_filter", LABELS, conn_id=echo_conn)
    captured = capsys.readouterr()
    logged = caplog.text + "\n".join(record.getMessage() for record in caplog.records) + captured.out + captured.err
    assert "retrying" in logged  # the warnings were captured, so the check below is not vacuous
    assert pieces(logged, SECRET) == []


def test_a_connection_error_names_no_piece_of_the_token(client, monkeypatch):
    conn_id = use_connection(monkeypatch, conn_id="qstash_echo", token=SECRET, host="xx-north-9")
    with pytest.raises(QStashConnectionError) as info:
        client.read_config(conn_id)
    assert_no_piece(info.value)
