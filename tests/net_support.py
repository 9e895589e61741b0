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


def send_slowly(peer, conn: socket.socket, head: bytes | None = None) -> None:
    """Send ``head`` to ``conn`` (default: endless-looking response headers) a byte per ``peer.interval`` seconds
    (``peer``: a server with ``interval``, ``max_seconds``, ``stopping`` and an ``open`` count)."""
    head = head or b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n" + b"X-Padding: " + b"a" * 100_000
    end = time.monotonic() + peer.max_seconds
    peer.open += 1
    try:
        for i in range(len(head)):
            if peer.stopping.is_set() or time.monotonic() > end:
                return
            conn.sendall(head[i : i + 1])
            if peer.stopping.wait(peer.interval):
                return
    except OSError:
        return  # the client gave up: what it should do
    finally:
        peer.open -= 1


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class TrickleServer:
    """An HTTP server that sends its response headers one byte every ``interval`` seconds.

    ``trickle(request_line)`` decides per request: True trickles (and never finishes
    within ``max_seconds``); False relays the request to ``upstream`` (a base URL) and
    returns its answer whole.  ``requests`` records each request line, ``open`` how many are being trickled right now.
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
                        send_slowly(outer, self.connection)
                        return
                    outer._relay(self.wfile, line)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

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


class WebhookReceiver:
    """A webhook receiver that reads every POST whole, records it, then answers as told.

    ``limit``: bodies larger than this many bytes get 413 (read first, as web servers
    do).  ``statuses``: answers to give first, in order (then 200).  ``late``: seconds
    to wait after reading the body before answering (the answer arrives after the
    client gave up).  ``trickle``: answer one header byte a second, forever.  Every
    POST is in ``posts`` (with the status it got); ``accepted`` holds the 2xx ones.
    """

    def __init__(self, *, limit: int | None = None, statuses=(), late: float = 0.0, trickle: bool = False,
                 max_seconds: float = 60.0):
        self.limit = limit
        self.statuses = list(statuses)
        self.late = late
        self.trickle = trickle
        self.max_seconds = max_seconds
        self.posts: list[dict] = []
        self.open = 0
        self.stopping = threading.Event()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                import json

                self.connection.settimeout(outer.max_seconds)
                try:
                    line = self.rfile.readline(65536).decode("latin-1").strip()
                    headers = {}
                    while True:
                        header = self.rfile.readline(65536).decode("latin-1")
                        if header in ("\r\n", "\n", ""):
                            break
                        name, _, value = header.partition(":")
                        headers[name.strip().lower()] = value.strip()
                    body = self.rfile.read(int(headers.get("content-length", 0)))
                except OSError:
                    return
                if outer.trickle:
                    outer.posts.append({"line": line, "headers": headers, "body": json.loads(body), "status": None})
                    send_slowly(outer, self.connection)
                    return
                if outer.limit is not None and len(body) > outer.limit:
                    status = 413
                else:
                    status = outer.statuses.pop(0) if outer.statuses else 200
                outer.posts.append({"line": line, "headers": headers, "body": json.loads(body), "status": status,
                                    "size": len(body)})
                if outer.late and outer.stopping.wait(outer.late):
                    return
                try:
                    self.wfile.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
                except OSError:
                    pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.interval = 1.0

    @property
    def accepted(self) -> list[dict]:
        return [p for p in self.posts if p["status"] and 200 <= p["status"] < 300]

    def __enter__(self) -> "WebhookReceiver":
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


class TrickleSMTP:
    """An SMTP server that sends its greeting one byte every ``interval`` seconds, forever."""

    def __init__(self, *, interval: float = 0.5, max_seconds: float = 60.0):
        self.interval = interval
        self.max_seconds = max_seconds
        self.stopping = threading.Event()
        self.open = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                greeting = b"220 " + b"x" * 10_000 + b"\r\n"
                send_slowly(outer, self.request, greeting)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def __enter__(self) -> "TrickleSMTP":
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
