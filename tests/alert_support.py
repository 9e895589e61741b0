"""Helpers for the alerting tests: stored changes made through the real store, local servers."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pipeline.diff import content_hash, diff_records
from pipeline.record import empty_record
from pipeline.plan import Update
from pipeline.store import Store

LONG_OLD = (
    "Adults aged 18 to 65 years with a confirmed diagnosis of type 2 diabetes mellitus for at least six months "
    "before screening, on a stable dose of metformin, and able to give written informed consent."
)
LONG_NEW = LONG_OLD.replace("18 to 65", "18 to 75").replace("six months", "twelve months")


def record(trial_id: str, source: str = "ctgov", **fields):
    r = empty_record(trial_id, source, "ClinicalTrials.gov" if source == "ctgov" else "ChiCTR")
    r.update({"public_title": f"Trial {trial_id}", "recruitment_status": "recruiting", "target_size": 100})
    r.update(fields)
    return r


def save(store: Store, old, new, *, backfilled: bool = False, run_id=None, when=None) -> list[dict]:
    """Store ``new`` as the next version after ``old`` (None: first sighting) through save_update."""
    changes = diff_records(old, new) if old is not None else []
    outcome = "new" if old is None else "changed"
    store.save_update(
        Update(new["trial_id"], new["source"], outcome, record=new, content_hash=content_hash(new), raw=b"{}",
               raw_format="json", new_snapshot=True, changes=changes, backfilled=backfilled, detected_at=when),
        run_id,
    )
    return changes


def fail(store: Store, trial_id: str, source: str = "ctgov", error: str = "HTTP 503") -> None:
    store.save_update(Update(trial_id, source, "failed", error=error), None)


def populate(store: Store) -> None:
    """Three trials with changes of several kinds, one backfilled, one hostile title."""
    a0 = record("NCT01000001")
    a1 = record("NCT01000001", recruitment_status="completed", target_size=120,
                public_title="<script>alert('x')</script> & friends")
    b0 = record("NCT01000002", inclusion_criteria=LONG_OLD, countries=["China"])
    b1 = record("NCT01000002", inclusion_criteria=LONG_NEW, countries=["China", "Japan"])
    c0 = record("ChiCTR2100045397", "who", secondary_ids=["X1"])
    c1 = record("ChiCTR2100045397", "who", secondary_ids=["X1", "X2"])
    d0 = record("NCT01000003")
    d1 = record("NCT01000003", recruitment_status="terminated")
    for old, new in ((None, a0), (None, b0), (None, c0), (None, d0)):
        save(store, old, new)
    save(store, d0, d1, backfilled=True, when="2020-01-01T00:00:00Z")
    save(store, a0, a1)
    save(store, b0, b1)
    save(store, c0, c1)


def event(store: Store, trial_id: str, source: str, kind: str, field: str, summary: str, *,
          resolved: bool = False, significance: str = "status", when: str | None = None) -> None:
    """Store a change-log event the way the cross-registry checks write one: kind ``discrepancy``
    (``field``: the compared field) or ``flag`` (``field``: the flag's kind), whose ``new`` (raised)
    or ``old`` (resolved) is an object with a human ``summary``."""
    from pipeline.clock import utcnow
    from pipeline.store.trials import insert_changes

    body = {"summary": summary, "detail": {"ctgov": "completed", "who": "recruiting"}}
    change = {"field": field, "old": body if resolved else None, "new": None if resolved else body,
              "significance": significance, "kind": kind}
    with store.conn:
        insert_changes(store.conn, trial_id, source, None, None, [change], when or utcnow(), False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HookServer:
    """A webhook receiver on a loopback port: records each POST, answers from a queue of statuses."""

    def __init__(self, statuses=()):
        self.requests: list[dict] = []
        self.statuses = list(statuses)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = outer.statuses.pop(0) if outer.statuses else 200
                if status == 200:
                    outer.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": json.loads(body or b"null")}
                    )
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
