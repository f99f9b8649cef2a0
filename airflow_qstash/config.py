"""
The ``qstash`` connection read into what the wire needs: base URL, token, validated settings.

Every refusal here is a :class:`~airflow_qstash.exceptions.QStashConnectionError` raised when the connection
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

from tenacity import RetryCallState, retry_if_exception_type, stop_after_attempt

from airflow_qstash.connection_fields import ALLOW_INSECURE_HTTP, NUMERIC_EXTRAS, PROXY
from airflow_qstash.exceptions import (
    QStashAPIError,
    QStashConnectionError,
    QStashInputError,
    QStashRetryableError,
    redact,
    remember_secret,
)
from airflow_qstash.inputs import parse_bool

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
        return self.backoff_seconds(retry_state.attempt_number)

    def backoff_seconds(self, attempt_number: int) -> float:
        """
        The backoff after failed attempt ``attempt_number`` (1 for the first): ``backoff_initial`` doubled
        per attempt, plus up to one second of jitter, at most ``backoff_max``.

        Computed here rather than by ``tenacity.wait_exponential_jitter``, whose ``initial`` argument is
        deprecated (a warning in the log of every retry) and whose ``multiplier`` older tenacity lacks.
        """
        exponent = min(max(attempt_number - 1, 0), 64)  # 2**64 seconds is already far past any backoff_max
        return max(0.0, min(self.backoff_initial * 2.0**exponent + random.uniform(0, 1), self.backoff_max))

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
    """A boolean extra, read by the one boolean reader; missing or ``null`` is false."""
    value = extra.get(key)
    try:
        return parse_bool(value, key, default=False)
    except QStashInputError:
        raise QStashConnectionError(f"Connection extra {key!r}={value!r} is not valid: give true or false.") from None


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


#: A scheme whose ``://`` lost a character: ``http//host``, ``http:/host``, ``https:host``, ``http:://host``.
_SCHEME_RE = re.compile(r"^(https?)([:/]+)", re.IGNORECASE)
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$")
_EXAMPLES = "such as 'https://qstash.upstash.io', 'eu-central-1' or 'http://127.0.0.1:8787' (the local emulator)"


def _refuse(found: str, change: str) -> QStashConnectionError:
    return QStashConnectionError(
        f"The connection's host {found}, so it is not a region id or a base URL of scheme, host and port only "
        f"({_EXAMPLES}): {change}"
    )


def _near_localhost(hostname: str) -> bool:
    """Whether ``hostname`` is one or two typing slips from ``localhost`` (``locahost``, ``localhsot``)."""
    name = hostname.lower()
    if name == "localhost" or not 6 <= len(name) <= 12:
        return False
    previous = list(range(len("localhost") + 1))
    for i, char in enumerate(name, 1):
        current = [i]
        for j, target in enumerate("localhost", 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != target)))
        previous = current
    return previous[-1] <= 2


def localhost_typo_hint(hostname: str) -> str:
    """A sentence pointing at ``localhost`` when ``hostname`` looks like a slip of it, else ``""``."""
    if _near_localhost(hostname):
        return f" {hostname!r} looks like a typo of 'localhost': fix the host's spelling."
    return ""


def resolve_base_url(host: str | None, port: int | None = None, *, allow_insecure_http: bool = False) -> str:
    """
    The API base URL for a connection's host field: ``scheme://host[:port]``, nothing else.

    Empty: ``https://qstash.upstash.io``; a known region id, in any case (``eu-central-1``): that region's
    URL; a full ``http(s)://host[:port]`` URL, with at most a trailing ``/``: that (a local emulator); a bare
    host name: ``https://host[:port]`` (``http`` for loopback names). Refused, naming what was found and
    what to change: a path, a ``?`` or ``#`` (even empty: the API path appended to such a base is a query or
    fragment, and ``cancel_message(id)`` would reach ``DELETE /v2/messages``, which cancels everything),
    user info (``user@``), white space, a scheme missing its ``://`` (``http//127.0.0.1:8787``), and
    ``http://`` to anything but a loopback host (127.0.0.0/8, ``::1``, ``localhost``), which would send the
    token in clear text, unless ``allow_insecure_http``.
    """
    text = (host or "").strip()
    if not text:
        return DEFAULT_BASE_URL
    if any(char.isspace() or not char.isprintable() for char in text):
        raise _refuse(f"{text!r} contains white space or a control character", "remove it.")
    if _REGION_RE.match(text.lower()):
        region = text.lower()
        if region not in KNOWN_REGIONS:
            raise QStashConnectionError(
                f"Unknown QStash region {text!r}; known regions are {', '.join(KNOWN_REGIONS)}. "
                "For another deployment put its full base URL (https://...) in the host field."
            )
        return f"https://qstash-{region}.upstash.io"
    typo = _SCHEME_RE.match(text)
    if typo and typo.group(2) != "://":
        scheme = typo.group(1).lower()
        fixed = f"{scheme}://{text[typo.end() :]}"
        raise _refuse(
            f"{text!r} starts with {text[: typo.end()]!r}, not {scheme + '://'!r} (a missing ':' or '/'?)",
            f"write {fixed!r}.",
        )
    if "://" in text:
        scheme, rest = text.split("://", 1)
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise _refuse(f"{text!r} has the scheme {scheme!r}", "use https:// (or http:// for a loopback emulator).")
    else:
        scheme, rest = "", text
    cut = min((rest.index(char) for char in "/?#" if char in rest), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:  # never echoed: what stands before '@' may be a password
        raise _refuse("has user info before an '@'", "remove it; the token goes in the connection's password.")
    if tail not in ("", "/"):
        what = {"?": "a query ('?')", "#": "a fragment ('#')"}.get(tail[0], f"the path {tail!r}")
        raise _refuse(
            f"{text!r} has {what} after the host and port",
            f"remove {tail!r}: the provider adds the API paths itself (/v2/...), so anything after the host "
            "would change which endpoint a request reaches.",
        )
    if not authority:
        raise _refuse(f"{text!r} has no host name", "give the host after the scheme.")
    try:
        parts = urlsplit(f"//{authority}")
        url_port = parts.port
        if authority.endswith(":"):
            raise ValueError
    except ValueError:
        found = f"{text!r} has a port that is not a number from 1 to 65535, or a malformed [IPv6] address"
        raise _refuse(found, "fix it.") from None
    hostname = parts.hostname or ""
    if authority.startswith("["):
        try:
            ipaddress.IPv6Address(hostname)
        except ValueError:
            raise _refuse(f"{text!r} has a bracketed host that is not an IPv6 address", "fix it.") from None
    elif not _HOSTNAME_RE.match(hostname):
        raise _refuse(f"{text!r} has the host name {hostname!r}", "give a host name or IP address.")
    if port and url_port is None and not scheme:
        authority = f"{authority}:{port}"
    if not scheme:
        scheme = "http" if _is_loopback(hostname) else "https"
    base = f"{scheme}://{authority}"
    if scheme == "http" and not _is_loopback(hostname) and not allow_insecure_http:
        if _near_localhost(hostname):
            raise QStashConnectionError(
                f"The connection's host {text!r} names {hostname!r}, which looks like a typo of 'localhost': fix "
                "the spelling. (http:// goes only to a loopback host, and this one is not.)"
            )
        raise QStashConnectionError(
            f"Host {text!r} uses http:// to a host that is not loopback: the token would travel in clear "
            'text. Use https://, or set the connection extra "allow_insecure_http": true if that is meant.'
        )
    return base


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
        # Remembered before anything else is read: a token pasted into the host or an extra by mistake is then
        # redacted from the refusal that names that field (QStashError redacts what it remembers).
        remember_secret(token)
        try:
            return cls._read(conn, token, extra)
        except QStashConnectionError as err:
            # A token too short to remember is still never echoed; the chain would quote the original text.
            raise QStashConnectionError(redact(str(err), token)) from None

    @classmethod
    def _read(cls, conn: Any, token: str, extra: Any) -> QStashConnectionConfig:
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
