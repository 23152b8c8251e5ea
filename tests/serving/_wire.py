"""A raw HTTP/1.1 client over one keep-alive socket: exact bytes out (hostile headers included,
which client libraries refuse or normalise), responses parsed back (Content-Length or chunked).

``Wire(port)``; ``wire.send(request(...))`` then ``wire.response()``; several requests may be
written at once (pipelining) and their responses read in order.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

Header = tuple[bytes, bytes]


def request(method: str, path: str, headers: Sequence[Header] = (), body: bytes = b"") -> bytes:
    """One HTTP/1.1 request; ``Host`` is added unless given, ``Content-Length`` when there is a body."""
    lines = [f"{method} {path} HTTP/1.1".encode("latin-1")]
    names = {name.lower() for name, _ in headers}
    if b"host" not in names:
        lines.append(b"host: 127.0.0.1")
    lines += [name + b": " + value for name, value in headers]
    if body or method in ("POST", "PUT"):
        lines.append(b"content-length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@dataclass
class Response:
    status: int
    headers: list[Header] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        values = [v for k, v in self.headers if k.lower() == name]
        return values[-1] if values else None

    def without(self, *names: bytes) -> tuple[int, list[Header], bytes]:
        """Status, headers (lower-cased, in order) less ``names``, body: what two servers must agree on."""
        drop = {n.lower() for n in names}
        return self.status, [(k.lower(), v) for k, v in self.headers if k.lower() not in drop], self.body


class Wire:
    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self.closed = False

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True
        self.sock.close()

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            self.closed = True
            return False
        self._buf += chunk
        return True

    def _until(self, marker: bytes) -> bytes:
        while marker not in self._buf:
            if not self._fill():
                raise ConnectionError(f"closed while waiting for {marker!r}")
        head, _, self._buf = self._buf.partition(marker)
        return head

    def _exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._fill():
                raise ConnectionError("closed mid-body")
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def head(self) -> Response:
        """Status line and headers of the next response (the body is left to read)."""
        status_line, *lines = self._until(b"\r\n\r\n").split(b"\r\n")
        headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(b":") for line in lines)]
        return Response(int(status_line.split(b" ")[1]), headers)

    def chunk(self) -> bytes | None:
        """The next chunk of a chunked body; ``None`` at its end."""
        size = int(self._until(b"\r\n").split(b";")[0], 16)
        data = self._exactly(size)
        self._exactly(2)
        return data if size else None

    def response(self, method: str = "GET") -> Response:
        """The next whole response."""
        res = self.head()
        encoding = (res.header(b"transfer-encoding") or b"").lower()
        length = res.header(b"content-length")
        if method == "HEAD" or res.status in (204, 304) or 100 <= res.status < 200:
            pass
        elif encoding == b"chunked":
            parts = []
            while (part := self.chunk()) is not None:
                parts.append(part)
            res.body = b"".join(parts)
        elif length is not None:
            res.body = self._exactly(int(length))
        else:  # delimited by the connection closing
            while self._fill():
                pass
            res.body, self._buf = self._buf, b""
        if (res.header(b"connection") or b"").lower() == b"close":
            self.close()
        return res
