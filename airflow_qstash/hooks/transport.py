"""
The two transports' plumbing: a ``requests`` session that never follows redirects and holds every attempt
to one total deadline (through a proxy too), the ``httpx`` client's TLS context built once per process, the
one proxy decision both transports follow, and reading an answer's body up to
:data:`~airflow_qstash.protocol.answers.MAX_ANSWER_BYTES`.

``requests`` applies its timeout per socket read, so a server that trickles a byte a second would hold a
worker for ever. :class:`DeadlineAdapter` gives each attempt an absolute deadline: every read (a proxy's
``CONNECT`` answer, status line, headers, body) waits at most until then, whatever the server trickles.

Neither transport reads the environment on its own (``trust_env`` is off): ``.netrc`` would replace the
``Authorization`` header, and an environment proxy would receive clear-text (``http://``) requests,
token included. :func:`proxy_for` makes the proxy decision once for both: the connection's ``proxy``
extra, else ``HTTPS_PROXY``/``ALL_PROXY`` (honouring ``NO_PROXY``), and never for an ``http://`` or a
loopback base URL.
"""

from __future__ import annotations

import io
import ipaddress
import os
import socket
import threading
import time
import urllib.request
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

if TYPE_CHECKING:
    import ssl

    import httpx

_attempt = threading.local()


class _DeadlineReader(io.RawIOBase):
    """A socket's read side that raises ``TimeoutError`` once the attempt's deadline has passed."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        # A real SocketIO: it holds a reference on the socket, so http.client closing the connection after a
        # "Connection: close" answer does not close the descriptor under the body still being read.
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()

    def readinto(self, buffer: Any) -> int | None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request's total deadline passed while reading the answer")
        previous = self._sock.gettimeout()
        self._sock.settimeout(remaining if previous is None else min(previous, remaining))
        try:
            return self._raw.readinto(buffer)
        finally:
            self._sock.settimeout(previous)


class _DeadlineSocket:
    """A socket whose ``makefile`` reads through :class:`_DeadlineReader`; everything else is the socket's."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _DeadlineConnectionMixin:
    sock: Any

    def _tunnel(self) -> None:
        """A proxy's ``CONNECT`` answer is read under the attempt's deadline too (a trickling proxy)."""
        deadline = getattr(_attempt, "deadline", None)
        real = self.sock
        if deadline is None or real is None:
            return super()._tunnel()  # type: ignore[misc, no-any-return]
        self.sock = _DeadlineSocket(real, deadline)
        try:
            return super()._tunnel()  # type: ignore[misc, no-any-return]
        finally:
            self.sock = real

    def getresponse(self) -> Any:
        deadline = getattr(_attempt, "deadline", None)
        real = self.sock
        if deadline is None or real is None:
            return super().getresponse()  # type: ignore[misc]
        wrapped = _DeadlineSocket(real, deadline)
        self.sock = wrapped
        try:
            return super().getresponse()  # type: ignore[misc]
        finally:
            if self.sock is wrapped:
                self.sock = real


class _DeadlineHTTPConnection(_DeadlineConnectionMixin, HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineConnectionMixin, HTTPSConnection):
    pass


class _DeadlineHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """
    An ``HTTPAdapter`` whose requests end by ``timeout`` seconds after they start, however slowly the server
    answers; redirects are never followed (the session passes ``allow_redirects=False`` as well).
    """

    _POOLS = {"http": _DeadlineHTTPConnectionPool, "https": _DeadlineHTTPSConnectionPool}

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self._POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """The proxy's pool manager, with the same deadline-keeping pools as the direct one."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(self._POOLS)
        return manager

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        timeout = kwargs.get("timeout")
        total = timeout[1] if isinstance(timeout, tuple) else timeout
        _attempt.deadline = None if total is None else time.monotonic() + float(total)
        try:
            return super().send(request, *args, **kwargs)
        finally:
            _attempt.deadline = None


class _NoRedirectSession(requests.Session):
    """A session for which no answer is a redirect: nothing to follow, and no ``TooManyRedirects`` on a 3xx."""

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() == "localhost" or hostname.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def proxy_for(base_url: str, explicit: str | None) -> str | None:
    """
    The proxy every request to ``base_url`` goes through, or ``None`` (direct); one decision for both
    transports.

    Never for an ``http://`` base URL (a proxy would read the token in clear) or a loopback host (the
    local emulator; a proxy cannot reach the worker's own loopback anyway). Else the connection's
    ``proxy`` extra (``explicit``), else the environment's ``HTTPS_PROXY``/``ALL_PROXY`` unless
    ``NO_PROXY`` covers the host.
    """
    parts = urlsplit(base_url)
    hostname = parts.hostname or ""
    if parts.scheme != "https" or _is_loopback(hostname):
        return None
    if explicit:
        return explicit
    environment = urllib.request.getproxies_environment()
    proxy = environment.get("https") or environment.get("all")
    if not proxy or urllib.request.proxy_bypass_environment(parts.netloc, environment):  # type: ignore[attr-defined]
        return None
    proxy = str(proxy).strip()
    return proxy if "://" in proxy else f"http://{proxy}"  # "proxy:3128", as curl and requests read it


def _ca_bundle() -> str | bool:
    """What ``requests`` verifies with when it trusts the environment: ``REQUESTS_CA_BUNDLE``, else certifi."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def new_session(headers: dict[str, str], proxy: str | None = None) -> requests.Session:
    """
    A session carrying ``headers``, with :class:`DeadlineAdapter` on both schemes and no redirects; it reads
    nothing from the environment but the CA bundle (no ``.netrc``, no proxy variables: see :func:`proxy_for`).

    :param proxy: the proxy of every ``https://`` request (from :func:`proxy_for`), or ``None``.
    """
    session = _NoRedirectSession()
    session.trust_env = False
    session.verify = _ca_bundle()
    session.headers.update(headers)
    session.proxies = {"https": proxy} if proxy else {}
    adapter = DeadlineAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class AnswerTooLarge(Exception):
    """An answer's body is larger than the cap: ``declared`` is its ``Content-Length``, if it gave one."""

    def __init__(self, declared: int | None) -> None:
        super().__init__(declared)
        self.declared = declared


def _check_declared(headers: Any, limit: int) -> None:
    from airflow_qstash.protocol.answers import declared_length

    declared = declared_length(headers)
    if declared is not None and declared > limit:
        raise AnswerTooLarge(declared)


def read_body(response: requests.Response, limit: int) -> bytes:
    """
    A streamed ``requests`` answer's (decoded) body, at most ``limit`` bytes; more raises
    :class:`AnswerTooLarge` after reading at most one chunk past the cap. The caller closes the response.
    """
    _check_declared(response.headers, limit)
    body = bytearray()
    for chunk in response.iter_content(chunk_size=65_536):
        body += chunk
        if len(body) > limit:
            raise AnswerTooLarge(None)
    return bytes(body)


async def aread_body(response: httpx.Response, limit: int) -> bytes:
    """:func:`read_body` for a streamed ``httpx`` answer."""
    _check_declared(response.headers, limit)
    body = bytearray()
    async for chunk in response.aiter_bytes(65_536):
        body += chunk
        if len(body) > limit:
            raise AnswerTooLarge(None)
    return bytes(body)


@cache
def default_ssl_context() -> ssl.SSLContext:
    """
    httpx's default TLS context (certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), built once per process.

    Building one reads the CA bundle from disk (tens of ms of blocking work); an ``httpx.AsyncClient``
    made without ``verify=`` builds its own, so every trigger would stall the triggerer's event loop once.
    """
    import httpx

    return httpx.create_ssl_context()
