"""
The two transports' plumbing: a ``requests`` session that never follows redirects and holds every attempt
to one total deadline, and the ``httpx`` client's TLS context built once per process.

``requests`` applies its timeout per socket read, so a server that trickles a byte a second would hold a
worker for ever. :class:`DeadlineAdapter` gives each attempt an absolute deadline: every read (status
line, headers, body) waits at most until then, whatever the server trickles.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from functools import cache
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

if TYPE_CHECKING:
    import ssl

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

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _DeadlineHTTPConnectionPool,
            "https": _DeadlineHTTPSConnectionPool,
        }

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


def new_session(headers: dict[str, str]) -> requests.Session:
    """A session carrying ``headers``, with :class:`DeadlineAdapter` on both schemes and no redirects."""
    session = _NoRedirectSession()
    session.headers.update(headers)
    adapter = DeadlineAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@cache
def default_ssl_context() -> ssl.SSLContext:
    """
    httpx's default TLS context (certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), built once per process.

    Building one reads the CA bundle from disk (tens of ms of blocking work); an ``httpx.AsyncClient``
    made without ``verify=`` builds its own, so every trigger would stall the triggerer's event loop once.
    """
    import httpx

    return httpx.create_ssl_context()
