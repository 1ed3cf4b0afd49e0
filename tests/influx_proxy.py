"""An HTTP proxy in front of the real InfluxDB that answers some requests itself, as a faulty
proxy or load balancer between a hall's collector and its database would (a 408 time-out, a
503), and passes everything else through unchanged."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

# (method, path without its query) -> what to answer instead of InfluxDB (a status, with a JSON
# error of the proxy's own, or a status and body), or None to pass the request on
Fault = Callable[[str, str], int | tuple[int, bytes] | None]


PROXY_ERROR = b'{"error":"answered by the proxy"}'


class InfluxProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fault: Fault = lambda _method, _path: None
        self.answered: list[tuple[str, str, int]] = []  # what the proxy answered itself
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._pass("GET")

            def do_POST(self) -> None:
                self._pass("POST")

            def _pass(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.partition("?")[0]
                answer = proxy.fault(method, path)
                if answer is not None:
                    status, reply = answer if isinstance(answer, tuple) else (answer, PROXY_ERROR)
                    proxy.answered.append((method, path, status))
                    self._reply(status, reply)
                    return
                headers = {"Content-Type": self.headers.get("Content-Type", "")}
                resp = requests.request(
                    method, proxy.upstream + self.path, data=body or None, headers=headers,
                    timeout=10,
                )  # fmt: skip
                self._reply(resp.status_code, resp.content)

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@contextmanager
def influx_proxy(upstream: str) -> Iterator[InfluxProxy]:
    proxy = InfluxProxy(upstream)
    thread = threading.Thread(target=proxy._server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy._server.shutdown()
        proxy._server.server_close()
