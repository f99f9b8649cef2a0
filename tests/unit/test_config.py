"""
Reading a ``qstash`` connection without Airflow's connection machinery: the token check, the extras (finite,
in range, named when refused), the base URL (regions, loopback-only ``http://``), and the retry policy.
"""

from __future__ import annotations

import json
import math
import string
import traceback
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from tenacity import RetryCallState, Retrying

from airflow_qstash.config import (
    DEFAULT_BASE_URL,
    KNOWN_REGIONS,
    NUMERIC_EXTRAS,
    QStashConnectionConfig,
    RetryPolicy,
    check_token,
    read_extra,
    resolve_base_url,
)
from airflow_qstash.exceptions import (
    QStashActionConflict,
    QStashAPIError,
    QStashConnectionError,
    QStashInputError,
    QStashRetryableError,
    QStashTransportError,
)

TOKEN = "Zq7Xv9Kw2Jm4Rt8Yp3Lb6Nd1Hc5Gf0Ws"


def connection(**fields: Any) -> SimpleNamespace:
    """A stand-in for an Airflow connection: what ``from_connection`` reads."""
    return SimpleNamespace(
        **{"conn_id": "qstash_test", "password": TOKEN, "host": "https://qstash.test", "port": None, "extra": None}
        | fields
    )


def pieces(text: str, secret: str, size: int = 4) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1) if secret[i : i + size] in text]


# --------------------------------------------------------------------------- the token


def test_a_token_of_every_visible_ascii_character_is_accepted():
    token = string.ascii_letters + string.digits + string.punctuation
    assert check_token(token, "c") == token


@pytest.mark.parametrize("padding", [" ", "\n", "\r\n", "\t", "\u00a0"])
def test_surrounding_white_space_is_trimmed(padding):
    assert check_token(f"{padding}{TOKEN}{padding}", "c") == TOKEN


@pytest.mark.parametrize("raw", [None, "", "   ", "\n", 12345, b"token", ["token"]])
def test_a_missing_token_names_the_connection_and_the_field(raw):
    with pytest.raises(QStashConnectionError) as info:
        check_token(raw, "qstash_prod")
    assert "Connection 'qstash_prod' has no QStash token" in str(info.value)
    assert "password" in str(info.value)


@pytest.mark.parametrize(
    ("char", "kind"),
    [
        ("\n", "a line break"),
        ("\r", "a line break"),
        ("\t", "white space"),
        (" ", "white space"),
        ("\u00a0", "white space"),
        ("\u2028", "white space"),
        ("\u200b", "a non-latin-1 character (ZERO WIDTH SPACE)"),
        ("\ufeff", "a non-latin-1 character (ZERO WIDTH NO-BREAK SPACE)"),
        ("€", "a non-latin-1 character (EURO SIGN)"),
        ("😀", "a non-latin-1 character (GRINNING FACE)"),
        ("é", "a character that cannot go in an HTTP header (U+00E9)"),
        ("\x00", "a character that cannot go in an HTTP header (U+0000)"),
        ("\x7f", "a character that cannot go in an HTTP header (U+007F)"),
        ("\x85", "white space"),
    ],
)
@pytest.mark.parametrize("position", [1, 17, len(TOKEN)])
def test_a_token_character_that_cannot_be_a_header_is_named_with_its_position(char, kind, position):
    token = TOKEN[: position - 1] + char + TOKEN[position - 1 :]
    with pytest.raises(QStashConnectionError) as info:
        check_token(f"x{token}x", "qstash_bad")  # not at the edges, where it would be trimmed
    message = str(info.value)
    assert f"has {kind} at position {position + 1} of {len(token) + 2}" in message
    assert "the token is the cause" in message
    assert "'qstash_bad'" in message
    assert pieces(message, token) == []
    assert isinstance(info.value, QStashInputError)  # an input refusal: operators fail without retries


def test_only_the_first_bad_character_is_named():
    with pytest.raises(QStashConnectionError, match="a line break at position 4 of"):
        check_token("abc\ndef\tghi", "c")


# --------------------------------------------------------------------------- extras


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, {}),
        ("", {}),
        ({"timeout": 5}, {"timeout": 5}),
        ('{"timeout": 5}', {"timeout": 5}),
        (json.dumps('{"timeout": 5}'), {"timeout": 5}),
        ("{}", {}),
    ],
)
def test_read_extra(raw, expected):
    assert read_extra(raw) == expected


def test_read_extra_returns_a_copy():
    raw = {"timeout": 5}
    read_extra(raw)["timeout"] = 9
    assert raw == {"timeout": 5}


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("[1, 2]", "a JSON list, not an object"),
        ([1, 2], "a JSON list, not an object"),
        ("5", "a JSON int, not an object"),
        (5, "a JSON int, not an object"),
        ("true", "a JSON bool, not an object"),
        (json.dumps(json.dumps(json.dumps({"timeout": 5}))), "a JSON str, not an object"),
        ("timeout=5", "text that is not JSON"),
        ("{'timeout': 5}", "text that is not JSON"),
    ],
)
def test_read_extra_refuses_what_is_not_an_object(raw, fragment):
    with pytest.raises(QStashConnectionError) as info:
        read_extra(raw)
    assert fragment in str(info.value)
    assert '{"timeout": 30}' in str(info.value)


BAD_VALUES = [
    float("nan"),
    float("inf"),
    float("-inf"),
    "nan",
    "NaN",
    "inf",
    "-Infinity",
    "1e400",
    10**400,
    -1,
    "-1",
    "abc",
    "",
    True,
    False,
    [5],
    {"value": 5},
]


@pytest.mark.parametrize("value", [pytest.param(v, id=repr(v)[:20]) for v in BAD_VALUES if v != ""])
@pytest.mark.parametrize("key", list(NUMERIC_EXTRAS))
def test_a_numeric_extra_must_be_a_finite_number_in_range(key, value):
    with pytest.raises(QStashConnectionError) as info:
        QStashConnectionConfig.from_connection(connection(), extra={key: value})
    spec = NUMERIC_EXTRAS[key]
    assert f"Connection extra {key!r}=" in str(info.value)
    assert f"give a finite {spec.kind.__name__} from {spec.minimum:g} to {spec.maximum:g}" in str(info.value)


@pytest.mark.parametrize("key", list(NUMERIC_EXTRAS))
def test_the_bounds_of_each_numeric_extra(key):
    spec = NUMERIC_EXTRAS[key]
    for inside in (spec.minimum, spec.maximum, str(spec.maximum)):
        config = QStashConnectionConfig.from_connection(connection(), extra={key: inside})
        assert _value(config, key) == spec.minimum or _value(config, key) == spec.maximum
        assert isinstance(_value(config, key), spec.kind)
    step = 1 if spec.kind is int else spec.minimum / 2 or 0.5
    for outside in (spec.minimum - step, spec.maximum + step):
        with pytest.raises(QStashConnectionError, match=repr(key)):
            QStashConnectionConfig.from_connection(connection(), extra={key: outside})


@pytest.mark.parametrize("key", list(NUMERIC_EXTRAS))
@pytest.mark.parametrize("cleared", [None, "", "  "])
def test_a_cleared_numeric_extra_is_its_default(key, cleared):
    config = QStashConnectionConfig.from_connection(connection(), extra={key: cleared})
    assert _value(config, key) == NUMERIC_EXTRAS[key].default


@pytest.mark.parametrize(("value", "expected"), [(2, 2), (2.0, 2), ("3", 3), (" 4 ", 4)])
def test_an_integer_extra_takes_whole_numbers_only(value, expected):
    config = QStashConnectionConfig.from_connection(connection(), extra={"max_retries": value})
    assert config.retry.max_retries == expected
    assert type(config.retry.max_retries) is int


@pytest.mark.parametrize("value", [2.5, "2.5", "1e1000"])
def test_an_integer_extra_refuses_fractions(value):
    with pytest.raises(QStashConnectionError, match="'max_retries'"):
        QStashConnectionConfig.from_connection(connection(), extra={"max_retries": value})


def test_every_extra_is_read_into_the_config():
    config = QStashConnectionConfig.from_connection(
        connection(),
        extra={
            "timeout": "7.5",
            "max_retries": 2,
            "backoff_initial": 0.25,
            "backoff_max": 4,
            "max_rate_limit_wait": 30,
            "poll_interval_max": 2.5,
        },
    )
    assert (config.timeout, config.poll_interval_max) == (7.5, 2.5)
    assert config.retry == RetryPolicy(max_retries=2, backoff_initial=0.25, backoff_max=4.0, max_rate_limit_wait=30.0)
    assert all(math.isfinite(value) for value in (config.timeout, config.poll_interval_max))


def test_the_extra_is_read_from_the_connection_when_not_given():
    config = QStashConnectionConfig.from_connection(connection(extra=json.dumps({"timeout": 9})))
    assert config.timeout == 9.0


def _value(config: QStashConnectionConfig, key: str) -> Any:
    return getattr(config.retry, key) if hasattr(config.retry, key) else getattr(config, key)


# --------------------------------------------------------------------------- base URL


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        (None, None, DEFAULT_BASE_URL),
        ("", None, DEFAULT_BASE_URL),
        ("  ", None, DEFAULT_BASE_URL),
        ("eu-central-1", None, "https://qstash-eu-central-1.upstash.io"),
        ("us-east-1", 8080, "https://qstash-us-east-1.upstash.io"),
        ("https://qstash.example.com/", None, "https://qstash.example.com"),
        ("EU-CENTRAL-1", None, "https://qstash-eu-central-1.upstash.io"),
        ("  Us-East-1 ", None, "https://qstash-us-east-1.upstash.io"),
        ("HTTPS://qstash.example.com", None, "https://qstash.example.com"),
        ("http://localhost:8080/", None, "http://localhost:8080"),
        ("qstash.example.com", None, "https://qstash.example.com"),
        ("qstash.example.com", 8443, "https://qstash.example.com:8443"),
        ("localhost", 8080, "http://localhost:8080"),
        ("127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("127.0.0.5:9000", None, "http://127.0.0.5:9000"),
        ("[::1]:8080", None, "http://[::1]:8080"),
        ("http://127.0.0.1:8080", None, "http://127.0.0.1:8080"),
        ("http://127.0.0.5:8080", None, "http://127.0.0.5:8080"),
        ("http://[::1]:8080", None, "http://[::1]:8080"),
        ("http://localhost:8080", None, "http://localhost:8080"),
        ("http://LOCALHOST:8080", None, "http://LOCALHOST:8080"),
    ],
)
def test_resolve_base_url(host, port, expected):
    assert resolve_base_url(host, port) == expected


@pytest.mark.parametrize(
    "host",
    [
        "http://qstash.example.com",
        "http://10.1.2.3",
        "http://[2001:db8::1]",
        "http://localhost.example.com",
        "http://127.0.0.1.example.com",
        "http://0.0.0.0",
        "http://[::]:8080",
    ],
)
def test_http_to_a_host_that_is_not_loopback_is_refused_unless_allowed(host):
    with pytest.raises(QStashConnectionError, match="clear text") as info:
        resolve_base_url(host)
    assert '"allow_insecure_http": true' in str(info.value)
    assert resolve_base_url(host, allow_insecure_http=True) == host


@pytest.mark.parametrize(
    ("host", "found"),
    [
        ("ftp://qstash.test", "has the scheme 'ftp'"),
        ("https://", "has no host name"),
        ("http://127.0.0.1:/", "has a port that is not a number"),
        ("http://127.0.0.1:notaport", "has a port that is not a number"),
        ("http://127.0.0.1:99999", "has a port that is not a number"),
        ("https://qstash.test/?x=1", "has the path '/?x=1'"),
        ("https://qstash.test#frag", "has a fragment ('#')"),
        ("https://qstash.test/prefix", "has the path '/prefix'"),
        ("https://qstash.test//", "has the path '//'"),
        ("https://qstash_.test$", "has the host name"),
        ("http://[nothex]:8080", "or a malformed [IPv6] address"),
    ],
)
def test_a_malformed_base_url_is_refused_naming_what_was_found(host, found):
    with pytest.raises(QStashConnectionError) as info:
        resolve_base_url(host, allow_insecure_http=True)
    assert found in str(info.value)
    assert "scheme, host and port only" in str(info.value)


@pytest.mark.parametrize(
    ("host", "tail"),
    [
        ("https://qstash.upstash.io/v2/messages#", "'/v2/messages#'"),
        ("https://qstash.upstash.io/v2/messages?", "'/v2/messages?'"),
        ("https://qstash.upstash.io#", "'#'"),
        ("https://qstash.upstash.io?", "'?'"),
        ("https://qstash.upstash.io/#", "'/#'"),
        ("http://127.0.0.1:8080/v2/dlq#", "'/v2/dlq#'"),
        ("127.0.0.1:8080?", "'?'"),
        ("qstash.upstash.io/v2/messages", "'/v2/messages'"),
    ],
)
def test_a_base_url_that_would_swallow_the_api_path_is_refused(host, tail):
    """#17.1: with '...#' or '...?' cancel_message(id) reached DELETE /v2/messages and cancelled everything."""
    with pytest.raises(QStashConnectionError) as info:
        resolve_base_url(host)
    assert f"remove {tail}" in str(info.value)


@pytest.mark.parametrize("host", ["https://user:pw@qstash.test", "https://@qstash.test", "user:s3cr3t@127.0.0.1:8080"])
def test_user_info_in_the_host_is_refused_without_echoing_it(host):
    with pytest.raises(QStashConnectionError, match="user info before an '@'") as info:
        resolve_base_url(host, allow_insecure_http=True)
    assert "pw" not in str(info.value) and "s3cr3t" not in str(info.value)


@pytest.mark.parametrize(
    "host", ["https://qstash .test", "https://qstash.test\n/x", "eu-central-1\tx", "http://127.0.0.1:80\x00"]
)
def test_white_space_or_a_control_character_inside_the_host_is_refused(host):
    with pytest.raises(QStashConnectionError, match="white space or a control character"):
        resolve_base_url(host)


@pytest.mark.parametrize(
    ("host", "fixed"),
    [
        ("http//127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https//qstash.upstash.io", "https://qstash.upstash.io"),
        ("http:/127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https:/qstash.upstash.io", "https://qstash.upstash.io"),
        ("http:127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http:://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("HTTP///localhost:8080", "http://localhost:8080"),
    ],
)
def test_a_scheme_that_lost_a_character_is_refused_naming_the_fix(host, fixed):
    """#21.4: 'http//127.0.0.1:8080' became the host 'http' and was retried for ~20 s."""
    with pytest.raises(QStashConnectionError) as info:
        resolve_base_url(host)
    assert f"write {fixed!r}" in str(info.value)
    assert "a missing ':' or '/'?" in str(info.value)


@pytest.mark.parametrize(
    "host", ["http://locahost:8080", "http://localhst", "http://lcoalhost:8080", "http://LOCALHOTS"]
)
def test_a_near_miss_of_localhost_over_http_points_at_the_typo(host):
    """#21.4: 'locahost' was pointed at allow_insecure_http, which would send the token in clear text."""
    with pytest.raises(QStashConnectionError, match="looks like a typo of 'localhost'") as info:
        resolve_base_url(host)
    assert "allow_insecure_http" not in str(info.value)


@pytest.mark.parametrize("host", ["httpbin.org", "https.example.com", "http-proxy.internal:8443"])
def test_a_bare_host_that_starts_with_http_is_not_a_scheme_typo(host):
    assert resolve_base_url(host) == f"https://{host}"


@pytest.mark.parametrize("region", ["xx-north-9", "eu-central-2", "ap-southeast-1"])
def test_an_unknown_region_lists_the_known_ones(region):
    with pytest.raises(QStashConnectionError) as info:
        resolve_base_url(region)
    assert f"Unknown QStash region {region!r}" in str(info.value)
    assert all(known in str(info.value) for known in KNOWN_REGIONS)
    assert isinstance(info.value, QStashInputError)  # an input refusal: operators fail without retries


@pytest.mark.parametrize(("allow", "allowed"), [(True, True), ("true", True), ("False", False), (None, False)])
def test_allow_insecure_http_is_read_from_the_extras(allow, allowed):
    conn = connection(host="http://qstash.internal")
    if allowed:
        assert QStashConnectionConfig.from_connection(conn, extra={"allow_insecure_http": allow}).base_url == (
            "http://qstash.internal"
        )
    else:
        with pytest.raises(QStashConnectionError, match="clear text"):
            QStashConnectionConfig.from_connection(conn, extra={"allow_insecure_http": allow})


@pytest.mark.parametrize("allow", ["yes", 1, 0, [], "1"])
def test_an_unreadable_allow_insecure_http_is_refused(allow):
    with pytest.raises(QStashConnectionError, match="'allow_insecure_http'"):
        QStashConnectionConfig.from_connection(connection(), extra={"allow_insecure_http": allow})


# --------------------------------------------------------------------------- the config object


def test_the_token_goes_only_into_the_authorization_header():
    config = QStashConnectionConfig.from_connection(connection(password=f" {TOKEN}\n"))
    assert config.headers == {"Authorization": f"Bearer {TOKEN}", "User-Agent": "airflow-provider-qstash"}
    assert TOKEN not in repr(config)
    assert TOKEN not in str(config)


# --------------------------------------------------------------------------- retry policy


def _outcome(error: BaseException, attempt: int = 1) -> RetryCallState:
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(error), error, None))
    return state


def test_a_rate_limit_wait_from_qstash_is_taken_plus_a_little_jitter():
    policy = RetryPolicy(max_rate_limit_wait=60)
    for _ in range(20):
        assert 3.0 <= policy.wait_seconds(_outcome(QStashRetryableError("429", wait=3.0))) <= 3.1


def test_a_rate_limit_wait_is_capped_at_max_rate_limit_wait():
    policy = RetryPolicy(max_rate_limit_wait=5)
    assert 5.0 <= policy.wait_seconds(_outcome(QStashRetryableError("429", wait=500.0))) <= 5.1


def test_without_a_wait_from_qstash_the_backoff_is_exponential_and_capped():
    policy = RetryPolicy(backoff_initial=1, backoff_max=3)
    waits = [policy.wait_seconds(_outcome(QStashTransportError("dropped"), attempt)) for attempt in (1, 2, 3, 4)]
    assert 1 <= waits[0] <= 2
    assert 2 <= waits[1] <= 3
    assert waits[2] == waits[3] == 3


def _retrying_run(policy: RetryPolicy, errors: Sequence[BaseException | None]) -> tuple[Any, int, list[float]]:
    recorded: list[float] = []
    pending = iter(errors)
    attempts = 0
    for attempt in Retrying(sleep=recorded.append, **policy.tenacity_kwargs()):
        with attempt:
            attempts += 1
            error = next(pending)
            if error is not None:
                raise error
            return "ok", attempts, recorded
    raise AssertionError("unreachable")


def test_retryable_errors_are_retried_until_success():
    policy = RetryPolicy(max_retries=3, backoff_initial=0, backoff_max=0)
    result = _retrying_run(policy, [QStashRetryableError("503"), QStashTransportError("dropped"), None])
    assert result[:2] == ("ok", 3)
    assert len(result[2]) == 2


@pytest.mark.parametrize(
    "error",
    [QStashAPIError("400", http_status=400), QStashActionConflict("412", http_status=412), ValueError("bad")],
    ids=type,
)
def test_other_errors_are_not_retried(error):
    policy = RetryPolicy(max_retries=3, backoff_initial=0, backoff_max=0)
    with pytest.raises(type(error)):
        _retrying_run(policy, [error, None])


@pytest.mark.parametrize("max_retries", [0, 2])
def test_giving_up_raises_a_plain_api_error_that_keeps_the_status(max_retries):
    policy = RetryPolicy(max_retries=max_retries, backoff_initial=0, backoff_max=0)
    last = QStashRetryableError("failed with 503: busy", http_status=503, api_error="busy")
    with pytest.raises(QStashAPIError) as info:
        _retrying_run(policy, [QStashRetryableError("503")] * max_retries + [last])
    assert type(info.value) is QStashAPIError  # not retryable any more: a caller must not retry it again
    assert str(info.value) == f"failed with 503: busy (gave up after {max_retries + 1} attempts)"
    assert (info.value.http_status, info.value.api_error) == (503, "busy")
    assert info.value.__cause__ is last


def test_a_retried_call_emits_no_warning():
    """#21.5: every retry logged tenacity's "The 'initial' parameter is deprecated" warning."""
    import warnings

    policy = RetryPolicy(max_retries=3, backoff_initial=0.5, backoff_max=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _retrying_run(policy, [QStashRetryableError("503"), QStashTransportError("dropped"), None])
    assert result[:2] == ("ok", 3)
    assert [str(w.message) for w in caught] == []


def test_the_backoff_doubles_from_backoff_initial_with_at_most_a_second_of_jitter():
    policy = RetryPolicy(backoff_initial=0.5, backoff_max=1000)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0)]:
        for _ in range(20):
            assert base <= policy.backoff_seconds(attempt) <= base + 1
    assert RetryPolicy(backoff_initial=3600, backoff_max=20).backoff_seconds(10_000) == 20


@pytest.mark.parametrize("short", [False, True], ids=["remembered-token", "token-too-short-to-remember"])
@pytest.mark.parametrize(
    ("field", "place"),
    [
        ("host", "https://qstash.test?token={token}"),
        ("host", "https://{token}@qstash.test"),
        ("host", "https://qstash.test/{token}"),
        ("extra", '{{"timeout": "{token}"}}'),
    ],
)
def test_a_token_pasted_into_the_host_or_an_extra_is_refused_without_echoing_it(field: str, place: str, short: bool):
    token = "sk_tiny9" if short else "sk_" + "Q7wE2rT9yU4iO1pA6sD3fG8h"
    values = {"host": "https://qstash.test", "extra": "{}"}
    values[field] = place.format(token=token)
    conn = SimpleNamespace(conn_id="qstash_default", password=token, port=None, **values)
    with pytest.raises(QStashConnectionError) as err:
        QStashConnectionConfig.from_connection(conn)
    assert token not in str(err.value)
    # Nor in the traceback a task log prints (a chained original would quote it).
    assert token not in "".join(traceback.format_exception(err.value))
    assert field in str(err.value) or "extra" in str(err.value)
