"""The per-component HTTP endpoint: Prometheus `/metrics`, `/healthz` and `/readyz`.

A thread with the standard library's HTTP server, so it works the same beside an asyncio
loop (ingest, Faust) and beside a blocking consumer loop (sinks).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


class HealthState:
    """What `/healthz` and `/readyz` answer; the component flips these as it runs."""

    def __init__(self) -> None:
        self.alive = True
        self.ready = False
        self.checks: dict[str, Callable[[], bool]] = {}

    def is_ready(self) -> tuple[bool, dict[str, bool]]:
        results = {name: bool(check()) for name, check in self.checks.items()}
        return self.ready and all(results.values()), results


def _handler_for(state: HealthState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif self.path.startswith("/healthz"):
                ok = state.alive
                self._send(200 if ok else 503, b"ok\n" if ok else b"dead\n")
            elif self.path.startswith("/readyz"):
                ok, results = state.is_ready()
                body = "".join(f"{k}: {'ok' if v else 'not ready'}\n" for k, v in results.items())
                body += "ready\n" if ok else "not ready\n"
                self._send(200 if ok else 503, body.encode())
            else:
                self._send(404, b"try /metrics, /healthz or /readyz\n")

        def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def serve_health(port: int, state: HealthState, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Starts the endpoint in a daemon thread; port 0 picks a free one (see `server_port`)."""
    server = ThreadingHTTPServer((host, port), _handler_for(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    return server
