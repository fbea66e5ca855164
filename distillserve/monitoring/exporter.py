"""``/metrics`` for processes without an HTTP server of their own (the distiller)."""

from __future__ import annotations

from prometheus_client import start_http_server


def serve_metrics(port: int, host: str = "127.0.0.1") -> int:
    """Serve every metric of this process on ``http://host:port/metrics`` from a daemon thread.

    ``port=0`` picks a free port; the port actually bound is returned.
    """
    server, _ = start_http_server(port, addr=host)
    return int(server.server_port)
