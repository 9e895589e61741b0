"""A toy third registry, defined entirely here: what adding a registry to trialwatch takes.

Its API is one endpoint, ``GET /trials/{id}``: the trial as JSON (``{"id", "title",
"status", "conditions"}``), or 404 when the registry has no such trial.  It watches
ISRCTN IDs.  :class:`ToySource` implements :class:`pipeline.sources.base.Source`;
:class:`ToyServer` serves the API on a loopback port (real sockets, a thread).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import quote, unquote

import orjson

from pipeline.errors import FetchError, ParseError
from pipeline.record import Record, empty_record
from pipeline.sources.base import COMMON_DEFAULTS, Fetched, raw_bytes

NAME = "toy"


class ToySource:
    name = NAME
    label = "Toy Registry"
    parser_version = 1
    defaults = {**COMMON_DEFAULTS, "base_url": "http://127.0.0.1:9", "requests_per_second": 1.0}
    schedule = "0 5 * * *"
    extra_fields = ("toy_colour",)
    queries = None
    history = None
    results_due = False
    copies_others = False
    updated_field = "last_updated"
    updated_word = "last updated"
    live_formats = ("json",)

    def watches(self, trial_id: str) -> bool:
        return trial_id.startswith("ISRCTN")

    def registry_url(self, trial_id: str) -> str:
        return f"https://toy.example/trials/{quote(trial_id, safe='')}"

    def fetch(
        self, client, trial_ids: Iterable[str], *, should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[Fetched]:
        for trial_id in trial_ids:
            if should_stop():
                return
            try:
                response = client.get(f"{client.source.base_url}/trials/{trial_id}", trial_id=trial_id)
            except FetchError as exc:
                yield Fetched(trial_id, NAME, "failed", error=f"FetchError: {exc}")
                continue
            if response.status == 404:
                yield Fetched(trial_id, NAME, "missing")
            else:
                yield Fetched(trial_id, NAME, "found", payload=response.body, raw_format="json")

    def normalize(self, trial_id: str, payload: Any) -> Record | None:
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"toy registry: invalid JSON ({exc})") from None
        record = empty_record(doc["id"], NAME, self.label)
        record["public_title"] = doc.get("title")
        record["recruitment_status"] = doc.get("status")
        record["conditions"] = list(doc.get("conditions") or [])
        record["toy_colour"] = doc.get("colour")
        return record

    def reparse(self, trial_id: str, raw: bytes | None, raw_format: str | None) -> Record | None:
        return self.normalize(trial_id, raw) if raw is not None else None

    def raw_bytes(self, payload: Any) -> bytes:
        return raw_bytes(payload)

    def extract(self, body: bytes, trial_id: str | None) -> Any:
        return self.normalize(trial_id or "", body)

    def check(self, client, trial_ids) -> str:
        trial_id = next(iter(trial_ids), "ISRCTN00000000")
        response = client.get(f"{client.source.base_url}/trials/{trial_id}", trial_id=trial_id)
        return f"answered HTTP {response.status} for {trial_id}"


class ToyServer:
    """The toy registry's API on ``http://127.0.0.1:<free port>``; ``trials`` is its data."""

    def __init__(self, trials: dict[str, dict]):
        self.trials = trials
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                trial_id = unquote(self.path.rpartition("/")[2])
                doc = server.trials.get(trial_id) if self.path.startswith("/trials/") else None
                body = json.dumps({"id": trial_id, **doc}).encode() if doc is not None else b'{"error": "not found"}'
                self.send_response(200 if doc is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="toy-registry", daemon=True)

    def __enter__(self) -> ToyServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
