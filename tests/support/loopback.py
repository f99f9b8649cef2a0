"""
A tiny scripted HTTP server on 127.0.0.1 for the tests that need real sockets: redirects (does the client
send a second request?) and total deadlines (a server that trickles its answer a byte at a time).

Mocks cannot show either: requests-mock and ``httpx.MockTransport`` sit above the socket, so they cannot
trickle, and they answer whatever URL a redirect would lead to without anyone noticing. This server counts
every request that reaches it, and each answer is sent the way its :class:`Reply` says.

Everything is bounded: each connection is read for at most :data:`READ_LIMIT` bytes and
:data:`READ_TIMEOUT` seconds, a trickle stops as soon as the server is closed, and :meth:`LoopbackServer.close`
waits at most :data:`JOIN_TIMEOUT` seconds for the threads.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

READ_LIMIT = 65_536
READ_TIMEOUT = 5.0
JOIN_TIMEOUT = 5.0


@dataclass(frozen=True)
class Received:
    """One request as the server read it."""

    method: str
    target: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Reply:
    """
    What to answer. ``trickle`` is the pause (seconds) between single bytes of the ``head`` (status line and
    headers) or of the ``body``; the other part is sent at once.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    trickle: Literal["head", "body"] | None = None
    pause: float = 0.2

    def head_bytes(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} Scripted"]
        headers = {"Content-Length": str(len(self.body)), "Connection": "close", **self.headers}
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ThreadedServer:
    """
    Accepts connections on an ephemeral port of 127.0.0.1 and hands each to :meth:`_connection` on its own
    daemon thread; :meth:`close` (or leaving the ``with`` block) waits at most :data:`JOIN_TIMEOUT` seconds.
    The base of :class:`LoopbackServer` and of the proxy and streaming servers in ``proxy_servers``.
    """

    #: The prefix of the accepting and serving threads' names (``None``: Python's default names).
    thread_name: str | None = None

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]

    def _named(self, part: str) -> str | None:
        return None if self.thread_name is None else f"{self.thread_name}-{part}"

    def __enter__(self) -> Self:
        accept = threading.Thread(target=self._accept_loop, name=self._named("accept"), daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, end every trickle, and wait (bounded) for the threads."""
        self._stop.set()
        self._listener.close()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=self._connection, args=(conn,), name=self._named("conn"), daemon=True)
            with self._lock:
                self._threads.append(worker)
            worker.start()

    def _connection(self, conn: socket.socket) -> None:
        """Serve one accepted connection (on its own thread)."""
        self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


class LoopbackServer(ThreadedServer):
    """
    Answers every request with ``respond(received)``, one connection at a time per thread, on an ephemeral
    port of 127.0.0.1. Use as a context manager.

    :param respond: the reply for a request (it may look at what was received, e.g. the path).
    """

    thread_name = "loopback"

    def __init__(self, respond: Callable[[Received], Reply]) -> None:
        super().__init__()
        self._respond = respond
        self.requests: list[Received] = []
        #: How many replies were sent in full (a client that gave up early leaves this below the requests).
        self.completed = 0
        self.base_url = f"http://127.0.0.1:{self.port}"

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            received = self._read_request(conn)
            if received is None:
                return
            with self._lock:
                self.requests.append(received)
            reply = self._respond(received)
            head, body = reply.head_bytes(), reply.body
            try:
                if reply.trickle == "head":
                    self._trickle(conn, head + body, reply.pause)
                elif reply.trickle == "body":
                    conn.sendall(head)
                    self._trickle(conn, body, reply.pause)
                else:
                    conn.sendall(head + body)
            except OSError:  # the client gave up and closed its end, or the server was closed mid-trickle
                return
            with self._lock:
                self.completed += 1

    def _trickle(self, conn: socket.socket, data: bytes, pause: float) -> None:
        for index in range(len(data)):
            if self._stop.wait(pause):
                raise OSError("server closed")
            conn.sendall(data[index : index + 1])

    @staticmethod
    def _read_request(conn: socket.socket) -> Received | None:
        conn.settimeout(READ_TIMEOUT)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < READ_LIMIT:
                chunk = conn.recv(4096)
                if not chunk:
                    return None
                data += chunk
        except OSError:
            return None
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        request_line, *header_lines = head.split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Received(method, target, headers)
