"""Hostile peers on loopback ports: servers that answer one byte at a time, forever.

Each server runs in daemon threads of this process, answers only 127.0.0.1, and
stops itself: every connection ends after ``max_seconds`` at the latest, and
``close()`` (the context manager's exit) ends them all at once.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
import urllib.request


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class TrickleServer:
    """An HTTP server that sends its response headers one byte every ``interval`` seconds.

    ``trickle(request_line)`` decides per request: True trickles (and never finishes
    within ``max_seconds``); False relays the request to ``upstream`` (a base URL) and
    returns its answer whole.  ``requests`` records each request line, ``connections``
    counts the connections seen, ``open`` how many are being trickled right now.
    """

    def __init__(self, *, interval: float = 1.0, max_seconds: float = 60.0, upstream: str | None = None,
                 trickle=lambda line: True):
        self.interval = interval
        self.max_seconds = max_seconds
        self.upstream = upstream
        self.trickle = trickle
        self.requests: list[str] = []
        self.open = 0
        self.stopping = threading.Event()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.connection.settimeout(outer.max_seconds)
                while not outer.stopping.is_set():
                    try:
                        line = self.rfile.readline(65536).decode("latin-1").strip()
                    except OSError:
                        return
                    if not line:
                        return
                    length = 0
                    while True:
                        header = self.rfile.readline(65536).decode("latin-1")
                        if header in ("\r\n", "\n", ""):
                            break
                        if header.lower().startswith("content-length:"):
                            length = int(header.split(":", 1)[1])
                    if length:
                        self.rfile.read(length)
                    outer.requests.append(line)
                    if outer.trickle(line):
                        outer._trickle(self.connection)
                        return
                    outer._relay(self.wfile, line)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _trickle(self, conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n" + b"X-Padding: " + b"a" * 100_000
        end = time.monotonic() + self.max_seconds
        self.open += 1
        try:
            for i in range(len(head)):
                if self.stopping.is_set() or time.monotonic() > end:
                    return
                conn.sendall(head[i : i + 1])
                if self.stopping.wait(self.interval):
                    return
        except OSError:
            return  # the client gave up: what it should do
        finally:
            self.open -= 1

    def _relay(self, wfile, line: str) -> None:
        method, target, _ = line.split(" ", 2)
        with urllib.request.urlopen(self.upstream + target, timeout=10) as answer:
            body = answer.read()
            status = answer.status
            ctype = answer.headers.get("Content-Type", "text/html")
        wfile.write(
            f"HTTP/1.1 {status} OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        wfile.flush()

    def __enter__(self) -> "TrickleServer":
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
