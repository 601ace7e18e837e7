"""Serving the viewer: a listening socket made first (so port 0 gives a free port whose number
is known before the server starts, and a browser that connects at once waits in the backlog
instead of being refused), then uvicorn on it until Ctrl-C."""

from __future__ import annotations

import socket

from fastapi import FastAPI


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on (host, port); port 0 picks a free one (see `getsockname()`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Serve `app` on `sock` until interrupted (uvicorn handles SIGINT and SIGTERM)."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
