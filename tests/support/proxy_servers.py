"""
Test servers for issue 17 item 7 (proxies) and item 6 (the answer size cap), all on 127.0.0.1 and bounded.

:class:`ForwardProxy` is a tiny HTTP proxy: ``CONNECT host:port`` opens a tunnel to one upstream port on
127.0.0.1 (whatever host was asked for), any other request is recorded and answered 502. It keeps every
request head it received, so a test sees exactly what a proxy would have read (a clear-text request's
``Authorization`` header included). :class:`TLSLoopbackServer` is :class:`~tests.support.loopback.
LoopbackServer` behind TLS with a throw-away certificate for :data:`PROXIED_HOST`. :class:`StreamingServer`
answers one status line and then sends body bytes as fast as the client reads them, up to a bound.
"""

from __future__ import annotations

import datetime as dt
import select
import socket
import ssl
import time
from pathlib import Path
from typing import Any

from tests.support.loopback import READ_LIMIT, READ_TIMEOUT, LoopbackServer, ThreadedServer

#: The host name the client asks for through the proxy (never resolved: the proxy maps it to 127.0.0.1).
PROXIED_HOST = "qstash.proxy.test"
#: The longest a tunnel stays open.
TUNNEL_LIFETIME = 30.0


def write_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed CA certificate for :data:`PROXIED_HOST` and its key, as PEM files in ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PROXIED_HOST)])
    # pinned validity around a fixed past instant plus a long span: no dependence on today's date
    not_before = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=365 * 70))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(PROXIED_HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "proxied.pem", directory / "proxied.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class TLSLoopbackServer(LoopbackServer):
    """A :class:`LoopbackServer` that speaks TLS with the certificate of :func:`write_certificate`."""

    def __init__(self, respond: Any, cert_path: Path, key_path: Path) -> None:
        super().__init__(respond)
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(cert_path, key_path)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(READ_TIMEOUT)
        try:
            wrapped = self._tls.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        super()._serve(wrapped)


class _Threaded(ThreadedServer):
    """A :class:`~tests.support.loopback.ThreadedServer` whose connections are closed after serving, errors ignored."""

    def _connection(self, conn: socket.socket) -> None:
        with conn:
            try:
                self._serve(conn)
            except OSError:
                return

    @staticmethod
    def _read_head(conn: socket.socket) -> bytes:
        conn.settimeout(READ_TIMEOUT)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < READ_LIMIT:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


class ForwardProxy(_Threaded):
    """
    An HTTP proxy on 127.0.0.1 that tunnels every ``CONNECT`` to ``127.0.0.1:upstream_port`` and answers
    any other request 502. ``heads`` holds every request head it received, in order.
    """

    def __init__(self, upstream_port: int, trickle_connect: float | None = None) -> None:
        super().__init__()
        self.upstream_port = upstream_port
        #: the pause between single bytes of the ``CONNECT`` answer, or ``None`` to send it at once
        self.trickle_connect = trickle_connect
        self.heads: list[bytes] = []
        self.url = f"http://127.0.0.1:{self.port}"

    def _serve(self, conn: socket.socket) -> None:
        head = self._read_head(conn)
        if not head:
            return
        with self._lock:
            self.heads.append(head)
        if not head.startswith(b"CONNECT "):
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=READ_TIMEOUT) as upstream:
            answer = b"HTTP/1.1 200 Connection established\r\nX-Padding: " + b"p" * 40 + b"\r\n\r\n"
            if self.trickle_connect is None:
                conn.sendall(answer)
            else:
                for index in range(len(answer)):
                    if self._stop.wait(self.trickle_connect):
                        return
                    conn.sendall(answer[index : index + 1])
            self._pipe(conn, upstream)

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        ends = time.monotonic() + TUNNEL_LIFETIME
        peers = {client: upstream, upstream: client}
        while not self._stop.is_set() and time.monotonic() < ends:
            readable, _, _ = select.select(list(peers), [], [], 0.05)
            for sock in readable:
                data = sock.recv(65_536)
                if not data:
                    return
                peers[sock].sendall(data)

    @property
    def connects(self) -> list[str]:
        """The ``host:port`` of every ``CONNECT`` received."""
        return [head.split(b" ", 2)[1].decode() for head in self.heads if head.startswith(b"CONNECT ")]


class StreamingServer(_Threaded):
    """
    Answers every request with ``head`` and then body bytes in 64 KiB chunks as fast as the client takes
    them, until the client hangs up or ``bound`` bytes were sent. ``sent`` is the body bytes sent in all.
    """

    def __init__(self, head: bytes, bound: int) -> None:
        super().__init__()
        self.head = head
        self.bound = bound
        self.sent = 0
        self.base_url = f"http://127.0.0.1:{self.port}"

    def _serve(self, conn: socket.socket) -> None:
        if not self._read_head(conn):
            return
        conn.sendall(self.head)
        chunk = b"[" + b"1," * 32_767 + b"1"
        while self.sent < self.bound and not self._stop.is_set():
            conn.sendall(chunk)
            with self._lock:
                self.sent += len(chunk)
