"""An HTTP server that plays ClinicalTrials.gov API v2 and the WHO ICTRP portal.

``SimulatorServer(corpus)`` runs a ``ThreadingHTTPServer`` in a background thread
(HTTP/1.1, keep-alive) so tests and benchmarks talk to it over real sockets, with the
same URLs, shapes and misbehaviour as the real registries:

=============================================  ==============================================
``GET /api/v2/studies``                        search / batch (see :mod:`ctgov_api`)
``GET /api/v2/studies/{nctId}``                one study; 404 (text/plain) when unknown/deleted
``GET /api/v2/version``                        ``apiVersion`` + ``dataTimestamp``
``GET /api/int/studies/{nctId}?history=true``  the study plus ``history.changes``
``GET /api/int/studies/{nctId}/history/{v}``   ``{"studyVersion": v, "study": {...}}``
``GET /Trial2.aspx?TrialID=...``               WHO page, or the not-found page (HTTP 200)
``POST /_sim/advance?days=N``                  advance time; JSON list of events
``GET /_sim/events``                           every event so far
``GET|POST|DELETE /_sim/faults``               list / replace (JSON list) / clear fault rules
``POST /_sim/restore?id=...``                  bring a deleted trial back
``POST|DELETE /_sim/who-hold?id=...``           the WHO page keeps showing the trial as it is now /
                                               catches up (a stale WHO copy)
``GET|DELETE /_sim/stats``                     request counts per route (DELETE resets)
``GET /_sim/info``                             date, day, size, seed, URLs
=============================================  ==============================================

Errors of the CT.gov routes are ``text/plain`` messages, as the API's OpenAPI spec
declares (``errorMessage``); the WHO routes always answer 200 with HTML, as the portal
does.  Faults (:mod:`faults`) never apply to ``/_sim`` routes.
"""

from __future__ import annotations

import email.utils
import socket
import struct
import sys
import threading
import time
from collections import Counter
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from pipeline.simulator import render_who
from pipeline.simulator.corpus import DEFAULT_START, Corpus
from pipeline.simulator.ctgov_api import BadRequest, StudiesApi, split_ids
from pipeline.simulator.faults import CONTROL_TITLE_BYTES, SCRIPT_TITLE, FaultRule, FaultSet

JSON = "application/json"
HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"

Response = tuple[int, str, bytes, dict[str, str]]

CTGOV_SHELL = b"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>ClinicalTrials.gov</title>
<base href="/"><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="styles.css"></head>
<body><ctg-root></ctg-root><noscript>Please enable JavaScript to continue using this application.</noscript>
<script src="runtime.js" type="module"></script><script src="main.js" type="module"></script></body></html>
"""


def _nginx_page(code: int, reason: str) -> bytes:
    return (f"<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1>"
            f"</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n").encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], owner: "SimulatorServer"):
        self.owner = owner
        self.stopping = threading.Event()
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(addr, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    # Headers and body go out in two writes; with Nagle's algorithm on, the body
    # waits for the client's delayed ACK (~40 ms on loopback) on every keep-alive
    # request, which would make the simulator, not trialwatch, the bottleneck.
    disable_nagle_algorithm = True
    server: _Server

    # ------------------------------------------------------------------ plumbing
    def setup(self) -> None:
        super().setup()
        with self.server.conns_lock:
            self.server.conns.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        with self.server.conns_lock:
            self.server.conns.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, BrokenPipeError, TimeoutError, OSError):
            self.close_connection = True

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, ctype: str, body: bytes, headers: dict[str, str] | None = None,
              *, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.server.owner._count_bytes(len(body))

    # ------------------------------------------------------------------ dispatch
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        params = parse_qs(parts.query, keep_blank_values=True)
        if path.startswith("/_sim/") or path == "/_sim":
            owner._count("control")
            status, ctype, body, headers = owner._control(method, path, params, self._body())
            self._send(status, ctype, body, headers)
            return
        if method != "GET":
            self._body()
            owner._count("other")
            self._send(405, TEXT, b"Method Not Allowed", {"Allow": "GET"})
            return
        route, trial_ids, produce = owner._route(path, params)
        owner._count(route)
        rule = owner.faults.take(self.path, trial_ids) if route != "other" else None
        if rule is None:
            status, ctype, body, headers = produce()
            owner._count_status(status)
            self._send(status, ctype, body, headers)
            return
        owner._count_fault(rule.kind)
        self._fault(rule, route, trial_ids, produce)

    # ------------------------------------------------------------------ faults
    def _fault(self, rule: FaultRule, route: str, trial_ids: list[str], produce: Callable[[], Response]) -> None:
        owner = self.server.owner
        k = rule.kind
        p = rule.params
        who = route.startswith("who")
        if k == "429":
            self._send(429, HTML if who else TEXT, b"Too Many Requests", self._retry_after(p, default=1))
        elif k in ("500", "502", "503", "504"):
            code = int(k)
            reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
                      504: "Gateway Time-out"}[code]
            body = render_who.server_error_page() if who and code == 500 else _nginx_page(code, reason)
            headers = self._retry_after(p, default=None) if "retry_after" in p or "retry_after_date" in p else {}
            self._send(code, HTML, body, headers)
        elif k == "reset":
            self._reset()
        elif k == "timeout":
            if self.server.stopping.wait(float(p.get("delay", 30))):
                self.close_connection = True
                return
            self._send(*self._produce(produce))
        elif k == "slow_drip":
            status, ctype, body, headers = produce()
            self._drip(status, ctype, body, headers, p)
        elif k == "truncate":
            status, ctype, body, headers = produce()
            half = max(1, len(body) // 2)
            if p.get("mode", "short") == "cut":
                self._send(status, ctype, body[:half], headers)
            else:
                self._send(status, ctype, body[:half], headers, length=len(body))
                self.wfile.flush()
                self.close_connection = True
        elif k == "invalid_json":
            status, ctype, body, headers = produce()
            if ctype == JSON and body.endswith(b"}"):
                body = body[:-1] + b",}"
            else:
                body = b'{"studies": [{"protocolSection": {"identificationModule": {"nctId": ,}}]'
            self._send(200, JSON, body)
        elif k == "html_instead_of_json":
            self._send(200, HTML, CTGOV_SHELL)
        elif k == "empty_200":
            self._send(200, HTML if who else JSON, b"")
        elif k == "bot_check":
            self._send(200, HTML, render_who.bot_check_page())
        elif k == "access_denied":
            self._send(200, HTML, render_who.access_denied_page())
        elif k == "error_page":
            self._send(200, HTML, render_who.server_error_page())
        elif k == "layout_change":
            status, ctype, body, headers = produce()
            if ctype == JSON:
                for a, b in ((b'"protocolSection"', b'"protocol"'), (b'"identificationModule"', b'"identification"'),
                             (b'"statusModule"', b'"status"'), (b'"designModule"', b'"design"')):
                    body = body.replace(a, b)
            elif p.get("mode") == "empty_fields":
                body = render_who.fields_emptied(body, keep=p.get("keep"))
            else:
                body = render_who.layout_changed(body)
            self._send(status, ctype, body, headers)
        elif k == "huge":
            self._huge(who, int(p.get("size", 50 * 1024 * 1024)), bool(p.get("content_length", False)))
        elif k == "deep_json":
            depth = int(p.get("depth", 100_000))
            self._send(200, JSON, b'{"a":' * depth + b"1" + b"}" * depth)
        elif k == "wrong_trial" and who:
            ids = owner.corpus.ids
            asked = trial_ids[0] if trial_ids else ""
            other = p.get("other") or (ids[(ids.index(asked) + 1) % len(ids)] if asked in ids else ids[0])
            self._send(200, HTML, owner.corpus.who_page(str(other)), {"Cache-Control": "private"})
        elif k == "wrong_trial":
            self._send(*owner._wrong_study(route, trial_ids, produce, rule))
        elif k == "paging_loop":
            self._send(*owner._paging_loop(route, self.path, produce, rule))
        elif k == "redirect_loop":
            self._send(302, TEXT, b"Found", {"Location": self.path})
        elif k == "not_found":
            self._send(*owner._not_found(route, trial_ids, produce, rule))
        elif k in ("script_title", "control_chars"):
            self._send(*owner._title_fault(k, route, trial_ids, produce, rule))
        else:  # pragma: no cover - FaultRule validates kinds
            self._send(500, TEXT, f"unhandled fault {k}".encode())

    def _produce(self, produce: Callable[[], Response]) -> Response:
        return produce()

    @staticmethod
    def _retry_after(p: dict[str, Any], default: float | None) -> dict[str, str]:
        seconds = p.get("retry_after", default)
        if seconds is None:
            return {}
        if p.get("retry_after_date"):
            return {"Retry-After": email.utils.formatdate(time.time() + float(seconds), usegmt=True)}
        return {"Retry-After": str(int(seconds)) if float(seconds).is_integer() else str(seconds)}

    def _reset(self) -> None:
        conn = self.connection
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.rfile.close()
        except OSError:
            pass
        try:
            conn.close()
        except OSError:
            pass
        self.close_connection = True

    def _drip(self, status: int, ctype: str, body: bytes, headers: dict[str, str], p: dict[str, Any]) -> None:
        interval = float(p.get("interval", 0.05))
        chunk = int(p.get("chunk", max(16, len(body) // 40 + 1)))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()
        for i in range(0, len(body), chunk):
            self.wfile.write(body[i:i + chunk])
            self.wfile.flush()
            if self.server.stopping.wait(interval):
                self.close_connection = True
                return

    def _huge(self, who: bool, size: int, content_length: bool) -> None:
        if who:
            head, tail = b"<html><body><form><span id=\"DataList3_ctl01_Public_titleLabel\">", b"</span></form></body></html>"
            ctype = HTML
        else:
            head, tail = b'{"protocolSection":{"descriptionModule":{"briefSummary":"', b'"}},"hasResults":false}'
            ctype = JSON
        fill = max(0, size - len(head) - len(tail))
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if content_length:
            self.send_header("Content-Length", str(len(head) + fill + len(tail)))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        block = b"x" * (1 << 20)

        def emit(data: bytes) -> None:
            if content_length:
                self.wfile.write(data)
            else:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        try:
            emit(head)
            left = fill
            while left > 0:
                if self.server.stopping.is_set():
                    self.close_connection = True
                    return
                n = min(left, len(block))
                emit(block[:n])
                left -= n
            emit(tail)
            if not content_length:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True


class SimulatorServer:
    """Both registries over HTTP, backed by one :class:`Corpus`.  A context manager."""

    def __init__(self, corpus: Corpus | None = None, host: str = "127.0.0.1", port: int = 0):
        self.corpus = corpus if corpus is not None else Corpus()
        self.host = host
        self.port = port
        self.faults = FaultSet()
        self.api = StudiesApi(self.corpus)
        self._stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "SimulatorServer":
        if self._httpd is not None:
            return self
        self._httpd = _Server((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"trialwatch-simulator:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd = self._httpd
        if httpd is None:
            return
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with httpd.conns_lock:
            conns = list(httpd.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> "SimulatorServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ctgov_url(self) -> str:
        return self.base_url + "/api/v2"

    @property
    def who_url(self) -> str:
        return self.base_url

    # ------------------------------------------------------------------ in-process control
    def advance(self, days: int = 1) -> list[dict[str, Any]]:
        return self.corpus.advance(days)

    def restore(self, trial_id: str) -> dict[str, Any]:
        return self.corpus.restore(trial_id)

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        self.faults.set(rules)

    def add_fault(self, rule: dict[str, Any]) -> None:
        self.faults.add(rule)

    def clear_faults(self) -> None:
        self.faults.clear()

    def stats(self) -> dict[str, Any]:
        with self._stats_lock:
            snap = dict(self._stats)
        out: dict[str, Any] = {"requests": {}, "status": {}, "faults": {}}
        for key, n in snap.items():
            group, _, name = key.partition(":")
            if group in out:
                out[group][name] = n
            else:
                out[key] = n
        return out

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._stats.clear()

    def _count(self, route: str) -> None:
        with self._stats_lock:
            self._stats["requests:" + route] += 1

    def _count_status(self, status: int) -> None:
        with self._stats_lock:
            self._stats[f"status:{status}"] += 1

    def _count_fault(self, kind: str) -> None:
        with self._stats_lock:
            self._stats["faults:" + kind] += 1

    def _count_bytes(self, n: int) -> None:
        with self._stats_lock:
            self._stats["bytes_sent"] += n

    def _count_studies(self, n: int) -> None:
        with self._stats_lock:
            self._stats["studies_served"] += n

    # ------------------------------------------------------------------ routes
    def _route(self, path: str, params: dict[str, list[str]]) -> tuple[str, list[str], Callable[[], Response]]:
        """(route name for stats, trial IDs concerned, response producer)."""
        c = self.corpus
        segs = [s for s in path.split("/") if s]
        low = [s.lower() for s in segs]
        if low[:3] == ["api", "v2", "studies"] and len(segs) == 3:
            ids: list[str] = []
            if "filter.ids" in params:
                try:
                    ids = split_ids(params["filter.ids"][-1])
                except BadRequest:
                    ids = []
            return "ctgov.studies", ids, lambda: self._list(params)
        if low[:3] == ["api", "v2", "studies"] and len(segs) == 4:
            tid = segs[3].upper()
            return "ctgov.study", [tid], lambda: self._study(tid, params)
        if low == ["api", "v2", "version"]:
            return "ctgov.version", [], lambda: (200, JSON, orjson.dumps(c.version_info()), {})
        if low[:3] == ["api", "int", "studies"] and len(segs) == 4:
            tid = segs[3].upper()
            return "ctgov.history", [tid], lambda: self._history(tid, params)
        if low[:3] == ["api", "int", "studies"] and len(segs) == 6 and low[4] == "history":
            tid = segs[3].upper()
            return "ctgov.history_version", [tid], lambda: self._history_version(tid, segs[5])
        if low == ["trial2.aspx"]:
            tid = ""
            for k, v in params.items():
                if k.lower() == "trialid":
                    tid = v[-1].strip()
            return "who.trial", [tid], lambda: (200, HTML, c.who_page(tid), {"Cache-Control": "private"})
        if not segs:
            return "other", [], lambda: (200, TEXT, self._index(), {})
        return "other", [], lambda: (404, TEXT, b"Not Found", {})

    def _index(self) -> bytes:
        return (f"trialwatch registry simulator ({self.corpus.size} trials, seed {self.corpus.seed}, "
                f"sim date {self.corpus.date})\nClinicalTrials.gov API: {self.ctgov_url}\n"
                f"WHO portal: {self.who_url}/Trial2.aspx?TrialID=<id>\nControl: {self.base_url}/_sim/info\n").encode()

    def _list(self, params: dict[str, list[str]]) -> Response:
        try:
            body, ids = self.api.list_studies(params)
        except BadRequest as exc:
            return 400, TEXT, str(exc).encode(), {}
        self._count_studies(len(ids))
        return 200, JSON, body, {}

    def _study(self, tid: str, params: dict[str, list[str]]) -> Response:
        t = self.corpus.live(tid)
        if t is None or not t.is_nct:
            return 404, TEXT, f"Study {tid} not found".encode(), {}
        paths = None
        if "fields" in params:
            try:
                paths = self.api.parse_fields(params["fields"][-1])
            except BadRequest as exc:
                return 400, TEXT, str(exc).encode(), {}
        self._count_studies(1)
        return 200, JSON, self.api.study_bytes_for(t, paths), {}

    def _history(self, tid: str, params: dict[str, list[str]]) -> Response:
        want = params.get("history", ["false"])[-1].lower() == "true"
        body = self.corpus.study_with_history_bytes(tid) if want else self.corpus.study_bytes(tid)
        if body is None:
            return 404, TEXT, f"Study {tid} not found".encode(), {}
        return 200, JSON, body, {}

    def _history_version(self, tid: str, raw: str) -> Response:
        if not raw.isdigit():
            return 400, TEXT, f"invalid version {raw[:20]!r}".encode(), {}
        data = self.corpus.history_version(tid, int(raw))
        if data is None:
            return 404, TEXT, f"Study {tid} version {raw} not found".encode(), {}
        return 200, JSON, orjson.dumps(data), {}

    def _not_found(self, route: str, trial_ids: list[str], produce: Callable[[], Response],
                   rule: FaultRule) -> Response:
        """The registry's "no such trial" answer for a trial that exists."""
        if route.startswith("who"):
            return 200, HTML, render_who.not_found_page(trial_ids[0] if trial_ids else ""), {}
        if route == "ctgov.study":
            return 404, TEXT, f"Study {trial_ids[0]} not found".encode(), {}
        status, ctype, body, headers = produce()
        if route != "ctgov.studies" or status != 200 or ctype != JSON:
            return status, ctype, body, headers
        doc = orjson.loads(body)
        doc["studies"] = [
            s for s in doc.get("studies", [])
            if rule.trial and s.get("protocolSection", {}).get("identificationModule", {}).get("nctId") != rule.trial
        ]
        return 200, JSON, orjson.dumps(doc), headers

    def _other_study(self, asked: str, exclude: list[str], rule: FaultRule) -> dict[str, Any] | None:
        """The study served in place of ``asked`` (``other``, or the next live NCT study not asked for)."""
        c = self.corpus
        other = rule.params.get("other")
        if not other:
            ids = c.ids
            start = ids.index(asked) + 1 if asked in ids else 0
            for i in range(len(ids)):
                candidate = ids[(start + i) % len(ids)]
                t = c.live(candidate)
                if candidate != asked and candidate not in exclude and t is not None and t.is_nct:
                    other = candidate
                    break
        t = c.live(str(other)) if other else None
        return orjson.loads(self.api.study_bytes_for(t, None)) if t is not None else None

    def _wrong_study(self, route: str, trial_ids: list[str], produce: Callable[[], Response],
                     rule: FaultRule) -> Response:
        """A CT.gov answer about another study than the one asked for."""
        status, ctype, body, headers = produce()
        if status != 200 or ctype != JSON or route not in ("ctgov.studies", "ctgov.study", "ctgov.history_version"):
            return status, ctype, body, headers
        doc = orjson.loads(body)
        if route == "ctgov.history_version":
            other = self._other_study(trial_ids[0] if trial_ids else "", trial_ids, rule)
            return 200, JSON, orjson.dumps({**doc, "study": other or doc.get("study")}), headers
        studies = doc.get("studies", []) if route == "ctgov.studies" else [doc]
        for i, study in enumerate(studies):
            nct = study.get("protocolSection", {}).get("identificationModule", {}).get("nctId")
            if rule.trial and nct != rule.trial:
                continue
            other = self._other_study(str(nct), trial_ids, rule)
            if other is not None:
                studies[i] = other
        out = {**doc, "studies": studies} if route == "ctgov.studies" else studies[0]
        return 200, JSON, orjson.dumps(out), headers

    def _paging_loop(self, route: str, path: str, produce: Callable[[], Response], rule: FaultRule) -> Response:
        """``/studies`` ignoring ``pageToken``: the first page again, always with a next token."""
        if route != "ctgov.studies":
            return produce()
        params = parse_qs(urlsplit(path).query, keep_blank_values=True)
        params.pop("pageToken", None)
        status, ctype, body, headers = self._list(params)
        if status != 200 or ctype != JSON:
            return status, ctype, body, headers
        doc = orjson.loads(body)
        mode = rule.params.get("mode", "same")
        if mode == "empty":
            doc["studies"] = []
        doc["nextPageToken"] = str(rule.params.get("token", "LOOP")) if mode == "same" else f"loop{rule.applied}"
        return 200, JSON, orjson.dumps(doc), headers

    def _title_fault(self, kind: str, route: str, trial_ids: list[str], produce: Callable[[], Response],
                     rule: FaultRule) -> Response:
        """A normal response whose (first or ``trial``) record carries a hostile title."""
        status, ctype, body, headers = produce()
        placeholder = "\u2063TITLE\u2063"
        title = str(rule.params.get("title", SCRIPT_TITLE)) if kind == "script_title" else placeholder
        raw_mode = kind == "control_chars" and rule.params.get("mode", "raw") == "raw"
        if kind == "control_chars" and not raw_mode:
            title = CONTROL_TITLE_BYTES.decode("utf-8", "replace")
        if route.startswith("who"):
            t = self.corpus.live(trial_ids[0]) if trial_ids else None
            if t is None:
                return status, ctype, body, headers
            view = dict(self.corpus.who_view(t))
            view["public_title"] = title
            view["scientific_title"] = title
            page = render_who.trial_page(view)
            if kind == "script_title" and rule.params.get("escaped", True) is False:
                page = page.replace(render_who._e(title).encode(), SCRIPT_TITLE.encode())
            if raw_mode:
                page = page.replace(placeholder.encode(), CONTROL_TITLE_BYTES)
            return 200, HTML, page, headers
        if ctype != JSON or status != 200:
            return status, ctype, body, headers
        doc = orjson.loads(body)
        studies = doc["studies"] if "studies" in doc else [doc]
        target = None
        for s in studies:
            ident = s.get("protocolSection", {}).get("identificationModule", {})
            if target is None or (rule.trial and ident.get("nctId") == rule.trial):
                target = ident
        if target is not None:
            target["briefTitle"] = title
            target["officialTitle"] = title
        out = orjson.dumps(doc)
        if raw_mode:
            out = out.replace(placeholder.encode(), CONTROL_TITLE_BYTES)
        return 200, JSON, out, headers

    # ------------------------------------------------------------------ control API
    def _control(self, method: str, path: str, params: dict[str, list[str]], body: bytes) -> Response:
        name = path[len("/_sim/"):].strip("/")
        try:
            if name == "advance" and method == "POST":
                days = int(params.get("days", ["1"])[-1])
                return 200, JSON, orjson.dumps(self.advance(days)), {}
            if name == "events" and method == "GET":
                with self.corpus.lock:
                    events = list(self.corpus.events)
                return 200, JSON, orjson.dumps(events), {}
            if name == "faults":
                if method == "GET":
                    return 200, JSON, orjson.dumps(self.faults.snapshot()), {}
                if method == "POST":
                    rules = orjson.loads(body or b"[]")
                    if isinstance(rules, dict):
                        rules = rules.get("rules", [rules] if "kind" in rules else [])
                    self.faults.set(rules)
                    return 200, JSON, orjson.dumps(self.faults.snapshot()), {}
                if method == "DELETE":
                    self.faults.clear()
                    return 200, JSON, b"[]", {}
            if name == "who-hold" and method in ("POST", "DELETE"):
                tid = params.get("id", [""])[-1]
                change = self.corpus.hold_who if method == "POST" else self.corpus.release_who
                return 200, JSON, orjson.dumps(change(tid)), {}
            if name == "restore" and method == "POST":
                tid = params.get("id", [""])[-1]
                return 200, JSON, orjson.dumps(self.restore(tid)), {}
            if name == "stats":
                if method == "DELETE":
                    self.reset_stats()
                return 200, JSON, orjson.dumps(self.stats()), {}
            if name == "info" and method == "GET":
                c = self.corpus
                return 200, JSON, orjson.dumps({
                    "size": c.size, "seed": c.seed, "start": c.start.isoformat(), "date": c.date.isoformat(),
                    "day": c.day, "change_rate": c.change_rate, "nct": len(c.nct_trials),
                    "who_only": c.size - len(c.nct_trials), "base_url": self.base_url,
                    "ctgov_url": self.ctgov_url, "who_url": self.who_url}), {}
        except KeyError as exc:
            return 404, TEXT, f"unknown trial {exc.args[0]!r}".encode(), {}
        except (ValueError, orjson.JSONDecodeError) as exc:
            return 400, TEXT, str(exc).encode(), {}
        return 404, TEXT, f"no control route {method} {path}".encode(), {}


def serve(host: str = "127.0.0.1", port: int = 8765, size: int = 200, seed: int = 1,
          change_rate: float = 0.0, start: date = DEFAULT_START) -> None:
    """Run the simulator in the foreground until interrupted (``trialwatch simulate``)."""
    corpus = Corpus(size=size, seed=seed, start=start, change_rate=change_rate)
    server = SimulatorServer(corpus, host=host, port=port).start()
    print(f"trialwatch simulator: {size} trials (seed {seed}, change rate {change_rate}), sim date {corpus.date}",
          flush=True)
    print(f"  ClinicalTrials.gov API: {server.ctgov_url}", flush=True)
    print(f"  WHO ICTRP portal:       {server.who_url}/Trial2.aspx?TrialID={corpus.ids[0]}", flush=True)
    print(f"  control:                POST {server.base_url}/_sim/advance?days=1  |  GET {server.base_url}/_sim/info",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping simulator", file=sys.stderr, flush=True)
    finally:
        server.stop()
