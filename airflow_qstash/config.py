"""
The ``qstash`` connection read into what the wire needs: base URL, token, validated settings.

Every refusal here is a :class:`~airflow_qstash.errors.QStashConnectionError` raised when the connection
is read, before any request, and never shows any part of the token.
"""

from __future__ import annotations

import ipaddress
import json
import math
import random
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tenacity import RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from airflow_qstash.connection_fields import ALLOW_INSECURE_HTTP, NUMERIC_EXTRAS, PROXY
from airflow_qstash.errors import QStashAPIError, QStashConnectionError, QStashRetryableError

DEFAULT_BASE_URL = "https://qstash.upstash.io"
#: Regions QStash serves (the spec's ``servers`` enum); any other deployment takes a full base URL.
KNOWN_REGIONS = ("eu-central-1", "us-east-1")
USER_AGENT = "airflow-provider-qstash"

_REGION_RE = re.compile(r"^[a-z]{2}-[a-z]+-\d+$")


# --------------------------------------------------------------------------- retry policy


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
            return min(error.wait, self.max_rate_limit_wait) + random.uniform(0, 0.1)
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


# --------------------------------------------------------------------------- extras


def _read_extra_number(extra: Mapping[str, Any], key: str) -> Any:
    spec = NUMERIC_EXTRAS[key]
    value = extra.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):  # a cleared form field
        return spec.kind(spec.default)
    problem = f"Connection extra {key!r}={value!r} is not valid: give a finite {spec.kind.__name__} from "
    problem += f"{spec.minimum:g} to {spec.maximum:g}"
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if spec.kind is int:
            if not number.is_integer():
                raise ValueError
            number = int(number)
    except (TypeError, ValueError, OverflowError):
        raise QStashConnectionError(problem + ".") from None
    if not math.isfinite(number) or not spec.minimum <= number <= spec.maximum:
        raise QStashConnectionError(problem + ".")
    return number


def read_extra(raw: Any) -> dict[str, Any]:
    """
    The connection's extras as a dict: a dict as Airflow parsed it, or JSON text that parses to one (an
    extra stored as a JSON *string*, e.g. double-encoded by a secrets backend). Anything else is refused.
    """
    if raw is None or raw == "":
        return {}
    for _ in range(2):  # JSON text, or JSON text of JSON text (a double-encoded object)
        if not isinstance(raw, str):
            break
        try:
            raw = json.loads(raw)
        except ValueError:
            raise QStashConnectionError(
                'The connection\'s extra is text that is not JSON; give a JSON object such as {"timeout": 30}.'
            ) from None
    if not isinstance(raw, Mapping):
        raise QStashConnectionError(
            f"The connection's extra is a JSON {type(raw).__name__}, not an object; give a JSON object such "
            'as {"timeout": 30}.'
        )
    return dict(raw)


def _read_bool(extra: Mapping[str, Any], key: str) -> bool:
    value = extra.get(key, False)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise QStashConnectionError(f"Connection extra {key!r}={value!r} is not valid: give true or false.")


def read_proxy(extra: Mapping[str, Any]) -> str | None:
    """
    The ``proxy`` extra: ``http(s)://[user:password@]host[:port][/]``, or ``None`` when blank. Refused: any
    other scheme, a path, query or fragment, white space. The refusal never shows the value (it may hold
    a password).
    """
    value = extra.get(PROXY)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    problem = "Connection extra 'proxy' is not valid: give an http:// or https:// proxy URL such as "
    problem += "'http://proxy.example:3128' (scheme, optional user:password@, host and port; nothing more)"
    if not isinstance(value, str) or any(char.isspace() or not char.isprintable() for char in value.strip()):
        raise QStashConnectionError(problem + ".")
    parts = urlsplit(value.strip())
    try:
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise QStashConnectionError(problem + "; its port is not a number.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise QStashConnectionError(problem + f"; found the scheme {parts.scheme or '(none)'!r} or no host.")
    if parts.path not in ("", "/"):
        raise QStashConnectionError(problem + "; it has a path.")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise QStashConnectionError(problem + "; it has a query or fragment.")
    return value.strip().rstrip("/")


# --------------------------------------------------------------------------- token and base URL


def check_token(raw: Any, conn_id: str) -> str:
    """
    The token, stripped of surrounding white space, or a refusal that names the position and kind of a
    character that cannot travel in an HTTP header: never any part of the token itself.
    """
    token = raw.strip() if isinstance(raw, str) else ""
    if not token:
        raise QStashConnectionError(
            f"Connection {conn_id!r} has no QStash token: put it in the connection's password "
            "(labelled 'QStash token' in the UI)."
        )
    for index, char in enumerate(token):
        if "\x21" <= char <= "\x7e":
            continue
        if char in "\r\n":
            kind = "a line break"
        elif char.isspace():
            kind = "white space"
        elif ord(char) > 0xFF:
            kind = f"a non-latin-1 character ({unicodedata.name(char, f'U+{ord(char):04X}')})"
        else:
            kind = f"a character that cannot go in an HTTP header (U+{ord(char):04X})"
        raise QStashConnectionError(
            f"The QStash token of connection {conn_id!r} has {kind} at position {index + 1} of {len(token)}: "
            "the token is the cause. Copy it again from the Upstash console into the connection's password."
        )
    return token


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def resolve_base_url(host: str | None, port: int | None = None, *, allow_insecure_http: bool = False) -> str:
    """
    The API base URL for a connection's host field.

    Empty: ``https://qstash.upstash.io``; a known region id (``eu-central-1``): that region's URL; a full
    ``http(s)://`` URL: used as it is (a local emulator); a bare host name: ``https://host[:port]``
    (``http`` for loopback names). ``http://`` to anything but a loopback host (127.0.0.0/8, ``::1``,
    ``localhost``) would send the token in clear text: refused unless ``allow_insecure_http``.
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
        hostname = urlsplit(f"//{host}").hostname or ""
        scheme = "http" if _is_loopback(hostname) else "https"
        host = f"{scheme}://{host}{f':{port}' if port else ''}"
    parts = urlsplit(host)
    try:
        parts.port  # noqa: B018 - raises ValueError for a malformed port
        if parts.netloc.endswith(":") or "@" in parts.netloc:  # an empty port, or credentials in the URL
            raise ValueError
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise QStashConnectionError(
            f"Host {host!r} is not a region id or a base URL such as 'https://qstash.upstash.io' or "
            "'http://127.0.0.1:8787' (the local emulator)."
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname) and not allow_insecure_http:
        raise QStashConnectionError(
            f"Host {host!r} uses http:// to a host that is not loopback: the token would travel in clear "
            'text. Use https://, or set the connection extra "allow_insecure_http": true if that is meant.'
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
    poll_interval_max: float = 10.0
    #: The ``proxy`` extra (may carry a password): kept out of ``repr``.
    proxy: str | None = field(default=None, repr=False)

    @classmethod
    def from_connection(cls, conn: Any, extra: Any = None) -> QStashConnectionConfig:
        """
        Read a ``qstash`` connection: password = token, host = region or base URL, extras = settings.

        Extras (see :data:`NUMERIC_EXTRAS`): ``timeout`` (total seconds per request attempt, default 30),
        ``max_retries`` (5), ``backoff_initial`` (0.5), ``backoff_max`` (20), ``max_rate_limit_wait`` (60),
        ``poll_interval_max`` (10), ``allow_insecure_http`` (false), ``proxy`` (none: see
        :func:`read_proxy`; never used for ``http://`` or loopback hosts).

        :param conn: the Airflow connection.
        :param extra: its extras when already read (the async path reads them off the event loop).
        """
        token = check_token(conn.password, conn.conn_id)
        extras = read_extra(conn.extra if extra is None else extra)
        numbers = {key: _read_extra_number(extras, key) for key in NUMERIC_EXTRAS}
        return cls(
            conn_id=conn.conn_id,
            base_url=resolve_base_url(
                conn.host, conn.port, allow_insecure_http=_read_bool(extras, ALLOW_INSECURE_HTTP)
            ),
            token=token,
            timeout=numbers["timeout"],
            retry=RetryPolicy(
                max_retries=numbers["max_retries"],
                backoff_initial=numbers["backoff_initial"],
                backoff_max=numbers["backoff_max"],
                max_rate_limit_wait=numbers["max_rate_limit_wait"],
            ),
            poll_interval_max=numbers["poll_interval_max"],
            proxy=read_proxy(extras),
        )

    @property
    def headers(self) -> dict[str, str]:
        """Request headers; the only place the token goes."""
        return {"Authorization": f"Bearer {self.token}", "User-Agent": USER_AGENT}


__all__ = [
    "DEFAULT_BASE_URL",
    "KNOWN_REGIONS",
    "NUMERIC_EXTRAS",
    "QStashConnectionConfig",
    "RetryPolicy",
    "check_token",
    "read_extra",
    "resolve_base_url",
]
