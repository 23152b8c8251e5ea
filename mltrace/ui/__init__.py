"""``mltrace ui``: a local, read-only web view of slow requests, drift and lineage.

```python
from mltrace.query import open_source
from mltrace.ui import create_app, serve

serve(open_source("local://mltrace-demo.db"), port=8765)   # blocks until Ctrl-C
```

Pages: ``/`` (overview of a service), ``/slow``, ``/traces/{trace_id}``, ``/drift``,
``/lineage/{trace_id}``; JSON: ``/api/slow``, ``/api/stats``, ``/api/traces/{trace_id}``,
``/api/lineage/{trace_id}``, ``/api/drift``, each exactly what the matching ``mltrace ... --json``
prints for the same options given as query parameters. Needs Jinja2 and uvicorn
(``pip install 'mltrace-serving[ui]'``); importing :mod:`mltrace` does not import this package.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._errors import MLTraceError

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..query import TraceSource

__all__ = ["create_app", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def _require() -> None:
    missing = []
    for module in ("jinja2", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise MLTraceError(f"mltrace ui needs {' and '.join(missing)}: pip install 'mltrace-serving[ui]'")


def create_app(
    source: TraceSource, *, service: str | None = None, allowed_hosts: list[str] | None = None, profile: Any = None
) -> Starlette:
    """The web application over an open trace source (see :func:`mltrace.ui._app.create_app`)."""
    _require()
    from ._app import create_app as build

    return build(source, service=service, allowed_hosts=allowed_hosts, profile=profile)


def bind(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one, read it from ``getsockname()``)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise MLTraceError(f"cannot listen on {host}:{port} ({exc.strerror}); pass --port 0 for a free port") from None
    sock.listen(128)
    return sock


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(
    source: TraceSource,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    service: str | None = None,
    profile: Any = None,
    announce: Callable[[str], Any] | None = None,
) -> None:
    """Serve the UI over ``source`` until interrupted (Ctrl-C or SIGTERM); ``announce(url)`` is
    called once the socket listens (default: print the address)."""
    _require()
    import uvicorn

    loopback = host in ("127.0.0.1", "localhost", "::1")
    app = create_app(source, service=service, allowed_hosts=None if loopback else ["*"], profile=profile)
    sock = bind(host, port)
    url = address(sock)
    if announce is None:
        print(f"mltrace ui: {source.url} at {url} (Ctrl-C to stop)", flush=True)
    else:
        announce(url)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        sys.stdout.flush()
