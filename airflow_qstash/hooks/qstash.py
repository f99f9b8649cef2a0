"""
The QStash connection and the wire: base URL, auth, request encoding, retries and reading answers.

One implementation of each wire decision serves both transports: :class:`QStashHook` sends with
``requests`` (workers), :class:`QStashAsyncHook` with ``httpx`` (the triggerer). They share
:class:`QStashConnectionConfig` (connection reading), :func:`bulk_cancel_requests` (encoding),
:func:`read_answer` (status, rate-limit headers and error text) and :meth:`RetryPolicy.tenacity_kwargs`
(which failures are retried and how long to wait).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from airflow.providers.common.compat.sdk import AirflowException, BaseHook, mask_secret
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from airflow_qstash.filters import BulkCancelFilter, parse_count

if TYPE_CHECKING:
    import ssl

    import httpx

DEFAULT_BASE_URL = "https://qstash.upstash.io"
#: Regions QStash serves (the spec's ``servers`` enum); any other deployment takes a full base URL.
KNOWN_REGIONS = ("eu-central-1", "us-east-1")
BULK_CANCEL_PATH = "/v2/messages"
#: A cheap, read-only, authenticated call for the connection's Test button.
TEST_CONNECTION_PATH = "/v2/queues"
#: The longest request URL sent; longer ``message_ids`` lists are split across requests.
MAX_URL_LENGTH = 4096
USER_AGENT = "airflow-provider-qstash"

_REGION_RE = re.compile(r"^[a-z]{2}-[a-z]+-\d+$")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


class QStashError(AirflowException):
    """Base class of the errors this provider raises after talking to QStash."""


class QStashAPIError(QStashError):
    """
    QStash answered with an error status.

    :param http_status: the HTTP status.
    :param api_error: the ``error`` text of QStash's JSON answer (or the start of a non-JSON body).
    """

    def __init__(self, message: str, *, http_status: int | None = None, api_error: str | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.api_error = api_error


class QStashRetryableError(QStashAPIError):
    """A failure worth retrying: 429, 5xx, or a network error; ``wait`` is what QStash asked for, if it did."""

    def __init__(self, message: str, *, wait: float | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.wait = wait


class QStashTransportError(QStashRetryableError):
    """No answer: the connection failed, was dropped, or timed out."""


class QStashConnectionError(QStashError, ValueError):
    """The Airflow connection is missing something or holds a value the hook cannot use."""


# --------------------------------------------------------------------------- connection


@dataclass(frozen=True)
class RetryPolicy:
    """
    How failed requests are retried: 429 waits for QStash's reset header, 5xx and network errors back off
    exponentially with jitter; anything else fails at once.

    :param max_retries: retries after the first attempt.
    :param backoff_initial: first backoff in seconds, doubling up to ``backoff_max``.
    :param backoff_max: the longest backoff in seconds.
    :param max_rate_limit_wait: the longest wait for a rate-limit reset; a reset further away (a spent
        daily quota) fails at once instead of holding a worker for hours.
    """

    max_retries: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 20.0
    max_rate_limit_wait: float = 60.0

    def wait_seconds(self, retry_state: RetryCallState) -> float:
        """Seconds to wait before the next attempt: QStash's own reset if it gave one, else backoff."""
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, QStashRetryableError) and error.wait is not None:
            return error.wait + random.uniform(0, 0.1)
        return wait_exponential_jitter(initial=self.backoff_initial, max=self.backoff_max)(retry_state)

    def tenacity_kwargs(self, log: Any = None) -> dict[str, Any]:
        """Arguments for ``tenacity.Retrying`` / ``AsyncRetrying``: one retry decision for both transports."""

        def give_up(retry_state: RetryCallState) -> Any:
            error = retry_state.outcome.exception() if retry_state.outcome else None
            assert isinstance(error, QStashRetryableError)
            raise QStashAPIError(
                f"{error} (gave up after {retry_state.attempt_number} attempts)",
                http_status=error.http_status,
                api_error=error.api_error,
            ) from error

        def before_sleep(retry_state: RetryCallState) -> None:
            if log is not None and retry_state.next_action is not None:
                log.warning(
                    "QStash request failed (%s); retrying in %.2f s (attempt %d of %d).",
                    retry_state.outcome.exception() if retry_state.outcome else "?",
                    retry_state.next_action.sleep,
                    retry_state.attempt_number + 1,
                    self.max_retries + 1,
                )

        return {
            "retry": retry_if_exception_type(QStashRetryableError),
            "stop": stop_after_attempt(self.max_retries + 1),
            "wait": self.wait_seconds,
            "retry_error_callback": give_up,
            "before_sleep": before_sleep,
        }


def _extra_number(extra: Mapping[str, Any], key: str, default: float, kind: type, minimum: float) -> Any:
    value = default if extra.get(key) is None else extra[key]  # a cleared form field is stored as null
    try:
        number = kind(value)
        if isinstance(value, bool) or number < minimum:
            raise ValueError
    except (TypeError, ValueError):
        raise QStashConnectionError(
            f"Connection extra {key!r}={value!r} is not valid: give a {kind.__name__} >= {minimum}."
        ) from None
    return number


def resolve_base_url(host: str | None, port: int | None = None) -> str:
    """
    The API base URL for a connection's host field.

    Empty: ``https://qstash.upstash.io``; a known region id (``eu-central-1``): that region's URL; a full
    ``http(s)://`` URL: used as it is (a local emulator); a bare host name: ``https://host[:port]``
    (``http`` for loopback names).
    """
    host = (host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_BASE_URL
    if _REGION_RE.match(host):
        if host not in KNOWN_REGIONS:
            raise QStashConnectionError(
                f"Unknown QStash region {host!r}; known regions are {', '.join(KNOWN_REGIONS)}. "
                "For another deployment put its full base URL (https://...) in the host field."
            )
        return f"https://qstash-{host}.upstash.io"
    if "://" not in host:
        scheme = "http" if urlsplit(f"//{host}").hostname in _LOOPBACK_HOSTS else "https"
        host = f"{scheme}://{host}{f':{port}' if port else ''}"
    parts = urlsplit(host)
    try:
        parts.port  # noqa: B018 - raises ValueError for a malformed port
        if parts.netloc.endswith(":"):  # an empty port: 'https://' or 'https:/host' read as the host 'https'
            raise ValueError
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise QStashConnectionError(
            f"Host {host!r} is not a region id or a base URL such as 'https://qstash.upstash.io' or "
            "'http://127.0.0.1:8080'."
        )
    return host


@dataclass(frozen=True)
class QStashConnectionConfig:
    """Everything the wire needs from an Airflow connection; the token is kept out of ``repr``."""

    conn_id: str
    base_url: str
    token: str = field(repr=False)
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_connection(cls, conn: Any) -> QStashConnectionConfig:
        """
        Read a ``qstash`` connection: password = token, host = region or base URL, extras = settings.

        Extras: ``timeout`` (seconds per request, default 30), ``max_retries`` (5), ``backoff_initial``
        (0.5), ``backoff_max`` (20), ``max_rate_limit_wait`` (60).
        """
        token = (conn.password or "").strip()
        if not token:
            raise QStashConnectionError(
                f"Connection {conn.conn_id!r} has no QStash token: put it in the connection's password "
                "(labelled 'QStash token' in the UI)."
            )
        mask_secret(token)
        extra = conn.extra_dejson or {}
        defaults = RetryPolicy()
        return cls(
            conn_id=conn.conn_id,
            base_url=resolve_base_url(conn.host, conn.port),
            token=token,
            timeout=_extra_number(extra, "timeout", 30.0, float, 0.001),
            retry=RetryPolicy(
                max_retries=_extra_number(extra, "max_retries", defaults.max_retries, int, 0),
                backoff_initial=_extra_number(extra, "backoff_initial", defaults.backoff_initial, float, 0),
                backoff_max=_extra_number(extra, "backoff_max", defaults.backoff_max, float, 0),
                max_rate_limit_wait=_extra_number(extra, "max_rate_limit_wait", defaults.max_rate_limit_wait, float, 0),
            ),
        )

    @property
    def headers(self) -> dict[str, str]:
        """Request headers; the only place the token goes."""
        return {"Authorization": f"Bearer {self.token}", "User-Agent": USER_AGENT}


# --------------------------------------------------------------------------- encoding and answers


def bulk_cancel_requests(
    bulk_filter: BulkCancelFilter, count: int | None, base_url: str
) -> list[list[tuple[str, str]]]:
    """
    The query of each ``DELETE /v2/messages`` request one bulk cancel needs, in the spec's names.

    Usually one; a long ``message_ids`` list is split so no URL exceeds :data:`MAX_URL_LENGTH`.
    """
    count_param = [] if count is None else [("count", str(parse_count(count)))]
    room = MAX_URL_LENGTH - len(base_url) - len(BULK_CANCEL_PATH) - len("?&count=500")
    return [part.to_query_params() + count_param for part in bulk_filter.split_message_ids(room)]


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def rate_limit_wait(headers: Mapping[str, str], now: float) -> float | None:
    """
    Seconds until QStash lets the caller try again, from a 429's headers; ``None`` if it did not say.

    The burst window (``Burst-RateLimit-*``) is preferred when it is the one spent, then the daily one
    (``RateLimit-*``), then ``Retry-After``. Reset headers are Unix seconds.
    """
    candidates = [
        (_header_number(headers, f"{prefix}RateLimit-Remaining"), _header_number(headers, f"{prefix}RateLimit-Reset"))
        for prefix in ("Burst-", "")
    ]
    resets = [reset for remaining, reset in candidates if reset is not None and remaining == 0]
    resets = resets or [reset for _, reset in candidates if reset is not None]
    if resets:
        return max(0.0, resets[0] - now)
    retry_after = _header_number(headers, "Retry-After")
    return max(0.0, retry_after) if retry_after is not None else None


def _api_error_text(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"]
    return body.strip()[:200] or "(empty body)"


def read_answer(method: str, path: str, status: int, headers: Mapping[str, str], body: str, policy: RetryPolicy) -> Any:
    """
    Read one answer: the parsed JSON of a 2xx, or the right error.

    429 and 5xx raise :class:`QStashRetryableError` (with QStash's reset wait for a 429); a reset further
    away than ``policy.max_rate_limit_wait`` and every other status raise :class:`QStashAPIError` with the
    status and QStash's ``error`` text.
    """
    if 200 <= status < 300:
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except ValueError:
            raise QStashAPIError(
                f"QStash {method} {path} answered {status} with a body that is not JSON: {body[:200]!r}",
                http_status=status,
            ) from None
    api_error = _api_error_text(body)
    message = f"QStash {method} {path} failed with {status}: {api_error}"
    if status == 429:
        wait = rate_limit_wait(headers, time.time())
        if wait is not None and wait > policy.max_rate_limit_wait:
            raise QStashAPIError(
                f"{message}. The rate limit resets in {wait:.0f} s, later than max_rate_limit_wait="
                f"{policy.max_rate_limit_wait:g} s (a spent daily quota?); run again after the reset.",
                http_status=status,
                api_error=api_error,
            )
        raise QStashRetryableError(message, wait=wait, http_status=status, api_error=api_error)
    if status >= 500:
        raise QStashRetryableError(message, http_status=status, api_error=api_error)
    hint = {401: " Check the token in the connection's password.", 404: " Check the connection's host."}
    if status in hint and not message.endswith("."):
        message += "."
    raise QStashAPIError(message + hint.get(status, ""), http_status=status, api_error=api_error)


def read_cancelled(answer: Any) -> int:
    """The ``cancelled`` count of a bulk cancel's JSON answer."""
    cancelled = answer.get("cancelled") if isinstance(answer, dict) else None
    if isinstance(cancelled, bool) or not isinstance(cancelled, int) or cancelled < 0:
        raise QStashAPIError(f"QStash's bulk cancel answer has no valid 'cancelled' count: {answer!r:.200}")
    return cancelled


def _message_path(message_id: str) -> str:
    from urllib.parse import quote

    if not isinstance(message_id, str) or not message_id.strip():
        raise ValueError(
            "message_id is empty: DELETE /v2/messages/ with no id would be the bulk endpoint, which "
            "cancels every message. Give the id of the message to cancel."
        )
    return f"{BULK_CANCEL_PATH}/{quote(message_id.strip(), safe='')}"


# --------------------------------------------------------------------------- hooks


class _QStashHookBase(BaseHook):
    """What both transports share: the connection type and its id, and a repr without secrets."""

    conn_name_attr = "qstash_conn_id"
    default_conn_name = "qstash_default"
    conn_type = "qstash"
    hook_name = "Upstash QStash"

    def __init__(self, qstash_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.qstash_conn_id = qstash_conn_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(qstash_conn_id={self.qstash_conn_id!r})"


def _no_answer(method: str, path: str, base_url: str, err: Exception) -> QStashTransportError:
    return QStashTransportError(f"QStash {method} {path}: no answer from {base_url} ({type(err).__name__})")


class QStashHook(_QStashHookBase):
    """
    Talks to Upstash QStash's REST API over ``requests``.

    The ``qstash`` connection holds the token in its password and a region id (``eu-central-1``) or a
    base URL (``http://127.0.0.1:8080`` for the local emulator) in its host; an empty host is
    ``https://qstash.upstash.io``. One ``requests.Session`` is kept per hook.

    :param qstash_conn_id: the Airflow connection to use.
    """

    #: How the hook sleeps between retries; tests replace it to record the waits.
    sleep: Callable[[float], None] = staticmethod(time.sleep)

    @cached_property
    def config(self) -> QStashConnectionConfig:
        """The connection, read once (and the token masked in logs)."""
        return QStashConnectionConfig.from_connection(self.get_connection(self.qstash_conn_id))

    @cached_property
    def session(self) -> requests.Session:
        """One keep-alive session per hook, carrying the auth header."""
        session = requests.Session()
        session.headers.update(self.config.headers)
        return session

    def close(self) -> None:
        """Close the HTTP session, if one was opened."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    def request(
        self, method: str, path: str, params: list[tuple[str, str]] | None = None, *, policy: RetryPolicy | None = None
    ) -> Any:
        """Send one API call with the retry policy; return the parsed JSON answer."""
        config = self.config
        policy = policy or config.retry
        for attempt in Retrying(sleep=self.sleep, **policy.tenacity_kwargs(self.log)):
            with attempt:
                try:
                    response = self.session.request(
                        method, config.base_url + path, params=params, timeout=config.timeout
                    )
                except (requests.ConnectionError, requests.Timeout) as err:
                    raise _no_answer(method, path, config.base_url, err) from err
                return read_answer(method, path, response.status_code, response.headers, response.text, policy)
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def bulk_cancel_by_filter(self, bulk_filter: BulkCancelFilter, count: int | None = None) -> int:
        """
        Cancel up to ``count`` messages the filter selects; return how many QStash cancelled.

        :param bulk_filter: a validated filter.
        :param count: messages per request, 1..500; ``None`` lets QStash cancel all that match.
        """
        return sum(
            read_cancelled(self.request("DELETE", BULK_CANCEL_PATH, params))
            for params in bulk_cancel_requests(bulk_filter, count, self.config.base_url)
        )

    def bulk_cancel(
        self,
        *,
        message_ids: str | list[str] | None = None,
        url_groups: str | list[str] | None = None,
        queue_names: str | list[str] | None = None,
        urls: str | list[str] | None = None,
        hosts: str | list[str] | None = None,
        paths: str | list[str] | None = None,
        labels: str | list[str] | None = None,
        flow_control_keys: str | list[str] | None = None,
        schedule_ids: str | list[str] | None = None,
        caller_ips: str | list[str] | None = None,
        from_date: Any = None,
        to_date: Any = None,
        count: int | None = None,
        cancel_all: bool = False,
    ) -> int:
        """
        Send one bulk cancel (``DELETE /v2/messages``) and return the number of messages cancelled.

        Each list filter takes a string or a list of strings (values ORed; filters ANDed). Dates take a
        datetime (naive = UTC), an ISO-8601 string or Unix milliseconds and go out as Unix milliseconds,
        both bounds inclusive. Refused before anything is sent (``ValueError``): no filter at all unless
        ``cancel_all=True`` (QStash would cancel every message), ``message_ids`` with other filters,
        ``from_date`` after ``to_date``, a ``count`` outside 1..500, an unreadable date.
        """
        bulk_filter = BulkCancelFilter.build(
            cancel_all=cancel_all,
            message_ids=message_ids,
            url_groups=url_groups,
            queue_names=queue_names,
            urls=urls,
            hosts=hosts,
            paths=paths,
            labels=labels,
            flow_control_keys=flow_control_keys,
            schedule_ids=schedule_ids,
            caller_ips=caller_ips,
            from_date=from_date,
            to_date=to_date,
        )
        return self.bulk_cancel_by_filter(bulk_filter, count)  # count is checked while encoding, before sending

    def cancel_message(self, message_id: str) -> None:
        """Cancel one message (``DELETE /v2/messages/{id}``); an empty id is refused."""
        self.request("DELETE", _message_path(message_id))

    def test_connection(self) -> tuple[bool, str]:
        """Check the token and base URL with one read-only call (``GET /v2/queues``), without retries."""
        try:
            self.request("GET", TEST_CONNECTION_PATH, policy=RetryPolicy(max_retries=0))
        except (QStashError, ValueError) as err:
            return False, str(err)
        return True, f"Connected to QStash at {self.config.base_url}."


@cache
def _default_ssl_context() -> ssl.SSLContext:
    """
    httpx's default TLS context (certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), built once per process.

    Building one reads the CA bundle from disk (tens of ms of blocking work); an ``httpx.AsyncClient``
    made without ``verify=`` builds its own, so every trigger would stall the triggerer's event loop once.
    """
    import httpx

    return httpx.create_ssl_context()


class QStashAsyncHook(_QStashHookBase):
    """
    The same wire over ``httpx`` for the triggerer: same encoding, answers and retry policy as
    :class:`QStashHook`, with nothing blocking on the event loop.

    :param qstash_conn_id: the Airflow connection to use.
    """

    def __init__(self, qstash_conn_id: str = _QStashHookBase.default_conn_name, **kwargs: Any) -> None:
        super().__init__(qstash_conn_id, **kwargs)
        self._config: QStashConnectionConfig | None = None
        self._client: httpx.AsyncClient | None = None

    async def get_config(self) -> QStashConnectionConfig:
        """Read the connection the async way, once."""
        if self._config is None:
            conn = await self.aget_connection(self.qstash_conn_id)
            self._config = QStashConnectionConfig.from_connection(conn)
        return self._config

    async def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            config = await self.get_config()
            verify = await asyncio.to_thread(_default_ssl_context)
            self._client = httpx.AsyncClient(
                base_url=config.base_url, headers=config.headers, timeout=config.timeout, verify=verify
            )
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client, if one was opened."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def request(
        self, method: str, path: str, params: list[tuple[str, str]] | None = None, *, policy: RetryPolicy | None = None
    ) -> Any:
        """Send one API call with the retry policy; return the parsed JSON answer."""
        import httpx

        client = await self._get_client()
        config = await self.get_config()
        policy = policy or config.retry
        async for attempt in AsyncRetrying(**policy.tenacity_kwargs(self.log)):
            with attempt:
                try:
                    response = await client.request(method, path, params=params)  # type: ignore[arg-type]
                except httpx.TransportError as err:
                    raise _no_answer(method, path, config.base_url, err) from err
                return read_answer(method, path, response.status_code, response.headers, response.text, policy)
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def bulk_cancel_by_filter(self, bulk_filter: BulkCancelFilter, count: int | None = None) -> int:
        """Cancel up to ``count`` messages the filter selects; return how many QStash cancelled."""
        config = await self.get_config()
        total = 0
        for params in bulk_cancel_requests(bulk_filter, count, config.base_url):
            total += read_cancelled(await self.request("DELETE", BULK_CANCEL_PATH, params))
        return total
