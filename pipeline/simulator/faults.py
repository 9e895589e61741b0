"""Fault rules: the ways real registries (and the network) misbehave, on demand.

A rule is a dict::

    {"match": "/api/v2/studies", "kind": "429", "count": 2, "retry_after": 3}

``match`` is a path prefix (of path + query string), or a regular expression searched
in it when it starts with ``^``; ``""`` matches every registry route (never ``/_sim``).
``trial`` restricts the rule to requests about that trial (the study path, the WHO
``TrialID`` or a ``filter.ids`` list containing it).  ``count`` is how many requests
the rule applies to (default: unlimited); ``skip`` lets that many matching requests
through first (e.g. fail the *second* page).  Rules are tried in order, the first that
matches applies, and counts decrement under a lock, so concurrent clients see exactly
``count`` faults.

Kinds and their parameters (what each simulates is in :data:`KINDS`):

* ``429`` (``retry_after`` seconds, default 1; ``retry_after_date: true`` sends the
  HTTP-date form), ``500``, ``502``, ``503`` (optional ``retry_after``), ``504``;
* ``reset`` (TCP RST, no response), ``timeout`` (``delay`` seconds, default 30, then the
  normal answer), ``slow_drip`` (``chunk`` bytes every ``interval`` seconds; defaults
  spread the body over ~2 s), ``truncate`` (``mode: "short"``: Content-Length of the
  whole body, half sent, connection closed; ``mode: "cut"``: a complete response of
  the first half of the body);
* ``invalid_json``, ``html_instead_of_json``, ``empty_200``, ``bot_check``,
  ``access_denied``, ``error_page`` (all HTTP 200), ``layout_change`` (WHO span ids
  renamed / CT.gov JSON keys renamed; ``mode: "empty_fields"``: WHO ids kept but most
  fields empty, only the ``keep`` span names, default title, status and ID, keep text);
* ``huge`` (``size`` bytes, default 50 MB, streamed; chunked unless
  ``content_length: true``), ``deep_json`` (``depth``, default 100,000 nested objects);
* ``wrong_trial``: the WHO page of another trial (``other``, default the next one in the
  corpus) for the one requested; on ClinicalTrials.gov, another study (``other``, default
  the next live NCT study not asked for) in place of the ``trial`` (of every study when
  no ``trial`` is given) in a ``/studies`` answer, for ``/studies/{id}`` and for a history
  version;
* ``paging_loop``: a ``/studies`` server that ignores ``pageToken``: every request gets
  the first page again, with a ``nextPageToken``: the same one (``mode: "same"``, the
  default, ``token`` to choose it), a new one each time (``mode: "fresh"``), or a new
  one each time on an empty page (``mode: "empty"``);
* ``redirect_loop``: a 302 whose Location is the request itself (a misconfigured proxy or
  captive portal);
* ``not_found``: the registry denies the trial exists while it does (a portal serving its
  not-found template for everything, a search index that lost records): the WHO
  not-found page, a ``/studies`` page without the ``trial`` (without any study when no
  ``trial`` is given), a 404 for one study;
* ``script_title`` (a title with ``<script>alert(1)</script>`` and SQL-looking text),
  ``control_chars`` (control characters and invalid UTF-8 bytes in a title;
  ``mode: "escaped"`` keeps the JSON valid, with ``\\u0000``-style escapes only).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

KINDS: dict[str, str] = {
    "429": "Too Many Requests with Retry-After",
    "500": "Internal Server Error",
    "502": "Bad Gateway",
    "503": "Service Unavailable",
    "504": "Gateway Timeout",
    "reset": "connection reset without a response",
    "timeout": "answer only after a delay",
    "slow_drip": "body sent a few bytes at a time",
    "truncate": "body shorter than announced, or cut in half",
    "invalid_json": "200 with malformed JSON",
    "html_instead_of_json": "200 with an HTML page on a JSON route",
    "empty_200": "200 with an empty body",
    "bot_check": "200 with a bot-check interstitial",
    "access_denied": "200 with an access-denied page",
    "error_page": "200 with an ASP.NET Server Error page",
    "layout_change": "200 with the page's ids (or JSON keys) renamed",
    "huge": "an enormous body",
    "deep_json": "JSON nested very deeply",
    "redirect_loop": "302 to the same URL, forever",
    "wrong_trial": "the page (or CT.gov study) of another trial (a cache mix-up)",
    "paging_loop": "/studies ignores pageToken: the first page again, with a nextPageToken, forever",
    "not_found": "the registry says it has no such trial (WHO not-found page, CT.gov study left out / 404)",
    "script_title": "a title with a script tag and SQL-looking text",
    "control_chars": "a title with control characters and invalid UTF-8",
}

SCRIPT_TITLE = "<script>alert(1)</script> Trial'); DROP TABLE snapshots;-- \"quoted\" & more"
CONTROL_TITLE_BYTES = b"Control \x00\x01\x07\x08\x1b[31mred\x1b[0m \x7f tab\tnew\nline \xff\xfe bad \xc3\x28 utf8 end"


@dataclass
class FaultRule:
    kind: str
    match: str = ""
    count: int | None = None
    trial: str | None = None
    skip: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    applied: int = 0
    _regex: re.Pattern[str] | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "FaultRule":
        if not isinstance(raw, dict):
            raise ValueError("a fault rule must be a JSON object")
        kind = str(raw.get("kind", ""))
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        match = str(raw.get("match", "") or "")
        count = raw.get("count")
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ValueError("count must be a non-negative integer")
        skip = raw.get("skip", 0)
        if not isinstance(skip, int) or skip < 0:
            raise ValueError("skip must be a non-negative integer")
        params = {k: v for k, v in raw.items() if k not in ("kind", "match", "count", "trial", "skip")}
        rule = cls(kind=kind, match=match, count=count, trial=raw.get("trial"), skip=skip, params=params)
        if match.startswith("^"):
            try:
                rule._regex = re.compile(match)
            except re.error as exc:
                raise ValueError(f"bad match regex: {exc}") from None
        return rule

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "match": self.match}
        if self.count is not None:
            out["count"] = self.count
        if self.trial:
            out["trial"] = self.trial
        if self.skip:
            out["skip"] = self.skip
        out.update(self.params)
        out["applied"] = self.applied
        return out

    def matches(self, target: str, trial_ids: Iterable[str]) -> bool:
        if self._regex is not None:
            if not self._regex.search(target):
                return False
        elif not target.startswith(self.match):
            return False
        if self.trial and self.trial not in trial_ids:
            return False
        return True


class FaultSet:
    """The active rules; :meth:`take` is atomic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def set(self, rules: list[dict[str, Any]]) -> list[FaultRule]:
        """Replace all rules (validated first: a bad list changes nothing)."""
        if not isinstance(rules, list):
            raise ValueError("faults must be a JSON list of rules")
        parsed = [FaultRule.from_dict(r) for r in rules]
        with self._lock:
            self._rules = parsed
        return parsed

    def add(self, rule: dict[str, Any]) -> FaultRule:
        parsed = FaultRule.from_dict(rule)
        with self._lock:
            self._rules.append(parsed)
        return parsed

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def take(self, target: str, trial_ids: Iterable[str] = ()) -> FaultRule | None:
        """The rule that applies to this request (consuming one of its count), or None."""
        ids = list(trial_ids)
        with self._lock:
            for rule in self._rules:
                if rule.count is not None and rule.count <= 0:
                    continue
                if not rule.matches(target, ids):
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                if rule.count is not None:
                    rule.count -= 1
                rule.applied += 1
                return rule
        return None
