"""
:func:`~airflow_qstash.exceptions.redact` and the exception types: the token is removed whole, mangled, or in
pieces of 12 characters or more; any ``Bearer``/``Basic`` credential is removed; ordinary text is left alone.
"""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_qstash.exceptions import (
    REDACTED,
    QStashActionConflict,
    QStashAPIError,
    QStashConnectionError,
    QStashError,
    QStashInputError,
    QStashRetryableError,
    QStashTransportError,
    redact,
)

TOKEN = "Zq7Xv9Kw2Jm4Rt8Yp3Lb6Nd1Hc5Gf0Ws"


def pieces(text: str, secret: str = TOKEN, size: int = 4) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1) if secret[i : i + size] in text]


# --------------------------------------------------------------------------- the whole token


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (TOKEN, REDACTED),
        (f"token {TOKEN} rejected", f"token {REDACTED} rejected"),
        (f"{TOKEN},{TOKEN}", f"{REDACTED},{REDACTED}"),
        (f'{{"error": "{TOKEN}"}}', f'{{"error": "{REDACTED}"}}'),
        (f"https://x.test/?t={TOKEN}&u=1", f"https://x.test/?t={REDACTED}&u=1"),
    ],
)
def test_the_whole_token_is_replaced(text, expected):
    assert redact(text, TOKEN) == expected


@pytest.mark.parametrize(
    "noise",
    ["\n", "\r\n", " ", "\t", "\\n", "\\r\\n", "\\t", "%0A", "%0d%0a", "%0D", " \n ", "\\n\n"],
)
@pytest.mark.parametrize("cuts", [(5,), (1, 31), (8, 16, 24), tuple(range(1, 32, 3))])
def test_a_token_mangled_by_line_breaks_or_escapes_is_replaced(noise, cuts):
    mangled, start = "", 0
    for cut in (*cuts, len(TOKEN)):
        mangled += TOKEN[start:cut] + (noise if cut < len(TOKEN) else "")
        start = cut
    text = f"server said: {mangled} (end)"
    redacted = redact(text, TOKEN)
    assert pieces(redacted) == []
    assert redacted.startswith("server said: ") and redacted.endswith(" (end)")
    assert REDACTED in redacted


@pytest.mark.parametrize("start", [0, 5, 10, 20, len(TOKEN) - 12])
@pytest.mark.parametrize("length", [12, 13, 20])
def test_a_fragment_of_twelve_characters_or_more_is_replaced(start, length):
    if start + length > len(TOKEN):
        length = len(TOKEN) - start
    fragment = TOKEN[start : start + length]
    redacted = redact(f"echo: {fragment}!", TOKEN)
    assert redacted == f"echo: {REDACTED}!"


def test_overlapping_and_separate_fragments_each_become_one_marker():
    text = f"a {TOKEN[:14]} b {TOKEN[10:30]} c {TOKEN[5:25]}{TOKEN[20:]} d"
    assert redact(text, TOKEN) == f"a {REDACTED} b {REDACTED} c {REDACTED} d"


# --------------------------------------------------------------------------- short tokens


@pytest.mark.parametrize("short", ["abc123", "Zq7Xv9Kw2Jm"])
def test_a_short_token_is_replaced_whole_and_mangled(short):
    assert redact(f"x {short} y", short) == f"x {REDACTED} y"
    assert redact(f"x {short[:3]}\n{short[3:]} y", short) == f"x {REDACTED} y"


def test_pieces_of_a_short_token_are_left_in_ordinary_text():
    # a token shorter than the fragment size is only recognised whole: its pieces are ordinary words
    assert redact("the abc team scored 123 points", "abc123") == "the abc team scored 123 points"


def test_a_token_with_regex_characters_matches_only_itself():
    token = "a.b*c+d?e(f)[g]{h}|i^$\\"
    assert redact(f"<{token}>", token) == f"<{REDACTED}>"
    assert redact("<aXbbbcddeXfXgXhXiX>", token) == "<aXbbbcddeXfXgXhXiX>"


# --------------------------------------------------------------------------- auth schemes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("authorization: bearer abc", "authorization: bearer ***"),
        ("BEARER abc", "BEARER ***"),
        ('{"auth": "Bearer abc.def"}', '{"auth": "Bearer ***"}'),
        ("auth=Bearer%20abc&x=1", "auth=Bearer ***&x=1"),
        ("auth=Bearer+abc&x=1", "auth=Bearer ***&x=1"),
        ("Basic dXNlcjpwYXNz", "Basic ***"),
        ("['Bearer abc', 'Bearer def']", "['Bearer ***', 'Bearer ***']"),
    ],
)
def test_any_credential_after_an_auth_scheme_is_replaced_without_a_secret(text, expected):
    assert redact(text) == expected
    assert redact(text, None) == expected
    assert redact(text, "") == expected


# --------------------------------------------------------------------------- no false positives


@pytest.mark.parametrize(
    "text",
    [
        "QStash DELETE /v2/messages failed with 400: invalid fromDate",
        "QStash DELETE /v2/messages failed with 401: invalid token. Check the token in the connection's password.",
        "invalid token provided",
        "Token expired at 12:00",
        "the token is missing",
        "token: required",
        "token=abc",
        "Authorization header missing",
        "https://qstash.upstash.io/v2/messages?label=a&async=true",
        '{"error": "label too long", "cursor": "1700000000000-0"}',
        "12345678901234567890 is not a valid messageId",
        "",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert redact(text, TOKEN) == text
    assert redact(text) == text


def test_text_that_resembles_the_token_is_left_alone():
    near = TOKEN[:11] + "!" + TOKEN[12:23] + "!"  # no 12-character run of the token
    assert redact(near, TOKEN) == near


# --------------------------------------------------------------------------- exception types


def test_a_connection_error_is_an_input_refusal_of_the_one_tree():
    """One tree, no double inheritance: a connection mistake is an input refusal (a ValueError for hook
    users); the operators fail the task without retries for it (tests/unit/operators/_common/test_shared.py)."""
    error = QStashConnectionError("no token")
    assert isinstance(error, QStashInputError)
    assert isinstance(error, ValueError)
    assert isinstance(error, QStashError)
    assert not isinstance(error, AirflowFailException)


def test_the_exception_tree_is_one_tree():
    from airflow_qstash import exceptions

    classes = [v for v in vars(exceptions).values() if isinstance(v, type) and issubclass(v, Exception)]
    ours = [c for c in classes if c.__module__ == exceptions.__name__]
    assert {c.__name__ for c in ours} == {
        "QStashError",
        "QStashInputError",
        "QStashConnectionError",
        "QStashAPIError",
        "QStashRetryableError",
        "QStashTransportError",
        "QStashActionConflict",
        "QStashRunIncomplete",
        "DLQEndpointsMissing",
    }
    assert all(issubclass(c, QStashError) for c in ours)
    # one base each, except the input refusal, which is also a ValueError for hook users
    assert all(len(c.__bases__) == 1 for c in ours if c is not QStashInputError)
    assert QStashInputError.__bases__ == (QStashError, ValueError)


@pytest.mark.parametrize(
    "error_type", [QStashAPIError, QStashRetryableError, QStashTransportError, QStashActionConflict]
)
def test_an_answer_error_leaves_airflow_s_retries_available(error_type):
    error = error_type("failed")
    assert isinstance(error, AirflowException)
    assert not isinstance(error, AirflowFailException)
    assert isinstance(error, QStashAPIError)


def test_only_transient_failures_are_retryable():
    assert issubclass(QStashTransportError, QStashRetryableError)
    assert not issubclass(QStashActionConflict, QStashRetryableError)
    assert not issubclass(QStashConnectionError, QStashAPIError)


def test_error_attributes():
    error = QStashRetryableError("429", wait=2.5, http_status=429, api_error="slow down")
    assert (error.wait, error.http_status, error.api_error, str(error)) == (2.5, 429, "slow down", "429")
    plain = QStashAPIError("x")
    assert (plain.http_status, plain.api_error) == (None, None)


# --------------------------------------------------------------------------- one test's secrets are its own


def test_a_token_remembered_in_a_test_is_redacted_in_it():
    from airflow_qstash import exceptions

    exceptions.remember_secret("remembered-by-one-test-0001")
    assert "remembered-by-one-test-0001" in exceptions._remembered
    assert exceptions.redact("echo remembered-by-one-test-0001") == f"echo {exceptions.REDACTED}"


def test_the_next_test_starts_without_it():
    """The suite forgets remembered tokens after each test (tests/conftest.py): hundreds left by the input
    properties made every later redaction slower and could redact a later test's text."""
    from airflow_qstash import exceptions

    assert "remembered-by-one-test-0001" not in exceptions._remembered


def test_many_remembered_tokens_are_each_redacted_whole_mangled_and_in_pieces():
    """With more tokens than a search per piece serves, the one pass over the text finds every kind of echo."""
    from airflow_qstash import exceptions

    tokens = [f"tok-{index:02d}-abcdefghijklmnopqrstuvwxyz-{index:02d}" for index in range(20)]
    for token in tokens:
        exceptions.remember_secret(token)
    assert len(exceptions._pieces(frozenset(tokens))) > exceptions._FEW_PIECES
    whole, mangled, piece = tokens[3], "\\n".join(tokens[7]), tokens[11][5:19]
    text = exceptions.redact(f"a {whole} b {mangled} c {piece} d")
    assert not any(token in text for token in tokens)
    assert text == f"a {exceptions.REDACTED} b {exceptions.REDACTED} c {exceptions.REDACTED} d"
