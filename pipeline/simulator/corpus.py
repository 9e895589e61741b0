"""A deterministic, changing corpus of clinical trials behind both simulated registries.

``Corpus(size, seed, start)`` makes ``size`` trials: NCT trials (``NCT9`` + 7 digits,
served by the ClinicalTrials.gov simulator *and* the WHO portal simulator) and ~20 %
WHO-only trials of other registries (ChiCTR, ISRCTN, CTRI, IRCT, DRKS, ANZCTR).  The
order of :attr:`Corpus.ids` is the corpus order: the first 8 are NCT trials, index 8 is
a ChiCTR trial, then one WHO-only trial every five.  Scripted day-1 changes address
trials by that order.

Why it is built the way it is:

* Profiles (state) of every trial are made up front, cheaply; the heavy content is
  built on demand from each trial's own seed (see :mod:`studygen`), so 20,000 trials are
  ready in well under a second and 100,000 in a few.
* Serving is byte splicing: a study is ``protocolSection`` bytes (cached per state),
  an optional shared results section, the derived section with today's
  ``versionHolder`` spliced in, and ``hasResults``.  The daily ``versionHolder`` noise
  therefore never invalidates anything.
* State is copy-on-write: an event builds a new state dict and swaps it in; caches
  remember which state object they were built from, so a reader racing an advance can
  never store a stale cache entry.  All mutation happens under :attr:`lock`.

Simulated time: :meth:`advance` moves the date by whole days.  Day 1 applies the
scripted changes (see :meth:`_scripted_day1`); ``change_rate`` applies random changes
to ``round(change_rate * n)`` live trials outside the first 12 per day.  Every change
sets ``lastUpdatePostDate`` to the sim date and appends a history version.  Deleted
trials vanish from every route until :meth:`restore`.  Noise that must never read as
a change: ``derivedSection.miscInfoModule.versionHolder`` is the sim date for every
study, every day; WHO's "Last refreshed on" moves every 7 days.

Events are dicts ``{"trial_id", "source", "kind", "field", "old", "new", "day",
"date"}`` (+ ``why_stopped`` / ``country`` / ``scripted`` where relevant).  ``field``
names the normalized-record field (pipeline/record.py) the change shows up in;
``old``/``new`` are the primary source's raw values (CT.gov codes for NCT trials, the
portal's wording for WHO-only ones).  ``source`` is ``"both"`` when an NCT trial's
WHO page shows the change too, ``"ctgov"`` when it does not (dates, say), ``"who"``
for WHO-only trials.

Size of the study JSON (seed 1, 20,000 trials = 16,001 NCT studies; median 20.9 KB,
mean 46 KB, max 485 KB; the real fixtures span 7-151 KB plus 369 and 505 KB)::

    <10 KB      7.1 %  ###
    10-20 KB   39.8 %  ####################
    20-30 KB   24.1 %  ############
    30-60 KB   16.5 %  ########
    60-150 KB   7.6 %  ####   (results section)
    300-500 KB  4.9 %  ##     (large results section)

Building: ``Corpus(size=20000)`` 0.5 s; serializing all 16,001 studies the first
time 3.9 s (cached afterwards: 370 MB).
"""

from __future__ import annotations

import random
import threading
from datetime import date, timedelta
from typing import Any, Iterable

import orjson

from pipeline.simulator import studygen as G
from pipeline.simulator import words as W
from pipeline.simulator.results import ResultsPool

DEFAULT_START = date(2026, 1, 5)
WHO_ONLY_REGISTRIES = ("ChiCTR", "ISRCTN", "CTRI", "IRCT", "DRKS", "ANZCTR")

#: Statuses of the first 12 trials (the scripted ones), by corpus index.
SCRIPTED_STATUSES = {
    0: "RECRUITING", 1: "RECRUITING", 2: "ACTIVE_NOT_RECRUITING", 3: "COMPLETED",
    4: "RECRUITING", 5: "ACTIVE_NOT_RECRUITING", 6: "RECRUITING", 7: "COMPLETED",
    8: "RECRUITING", 9: "RECRUITING", 10: "NOT_YET_RECRUITING", 11: "COMPLETED",
}

#: Random change kinds and their weights (applicability is checked per trial).
CHANGE_WEIGHTS = (("status", 25), ("enrollment", 20), ("date", 18), ("outcome", 12),
                  ("site", 13), ("withdrawn", 5), ("deleted", 3))
STATUS_MOVES: dict[str, tuple[tuple[str, int], ...]] = {
    "NOT_YET_RECRUITING": (("RECRUITING", 1),),
    "RECRUITING": (("ACTIVE_NOT_RECRUITING", 50), ("COMPLETED", 20), ("TERMINATED", 15), ("SUSPENDED", 15)),
    "ENROLLING_BY_INVITATION": (("ACTIVE_NOT_RECRUITING", 1),),
    "ACTIVE_NOT_RECRUITING": (("COMPLETED", 75), ("TERMINATED", 25)),
    "SUSPENDED": (("RECRUITING", 60), ("TERMINATED", 40)),
    "UNKNOWN": (("COMPLETED", 1),),
}


def who_only_id(registry: str, k: int) -> str:
    """The ``k``-th (0-based) synthetic ID of a WHO-only registry; valid per trial_ids."""
    n = k + 1
    return {
        "ChiCTR": f"ChiCTR24{n:08d}",
        "ISRCTN": f"ISRCTN9{n:07d}",
        "CTRI": f"CTRI/2024/{k % 12 + 1:02d}/{n:06d}",
        "IRCT": f"IRCT2024{n:08d}N1",
        "DRKS": f"DRKS9{n:07d}",
        "ANZCTR": f"ACTRN12624{n:09d}",
    }[registry]


def corpus_ids(size: int) -> list[tuple[str, str]]:
    """``(trial_id, registry)`` in corpus order."""
    out, nct, who = [], 0, 0
    for i in range(size):
        if i >= 8 and i % 5 == 3:
            reg = WHO_ONLY_REGISTRIES[who % len(WHO_ONLY_REGISTRIES)]
            out.append((who_only_id(reg, who), reg))
            who += 1
        else:
            nct += 1
            out.append((f"NCT9{nct:07d}", "ClinicalTrials.gov"))
    return out


class Trial:
    """One trial: identity, static profile, current state, history and caches."""

    __slots__ = ("index", "trial_id", "registry", "is_nct", "static", "state0", "state",
                 "versions", "deleted", "search", "_proto", "_derived", "_who")

    def __init__(self, index: int, trial_id: str, registry: str, state: dict[str, Any], static: dict[str, Any]):
        self.index = index
        self.trial_id = trial_id
        self.registry = registry
        self.is_nct = registry == "ClinicalTrials.gov"
        self.static = static
        self.state0 = state
        self.state = state
        self.versions: list[tuple[str, dict[str, Any]]] | None = None
        self.deleted = False
        self.search: tuple[str, str, str, str] | None = None
        self._proto: tuple[dict[str, Any], bytes] | None = None
        self._derived: bytes | None = None
        self._who: tuple[dict[str, Any], str, bytes] | None = None

    @property
    def has_results(self) -> bool:
        return self.static["tier"] != "normal" and bool(self.state.get("results_post"))

    def __repr__(self) -> str:
        return f"<Trial {self.index} {self.trial_id} {self.state['status']}{' deleted' if self.deleted else ''}>"


class Corpus:
    """The simulated registries' shared data set.  Thread-safe; see module docstring."""

    def __init__(
        self,
        size: int = 12,
        seed: int = 1,
        start: date = DEFAULT_START,
        *,
        change_rate: float = 0.0,
        cache_limit: int = 2 << 30,
    ):
        if size < 1:
            raise ValueError("corpus size must be at least 1")
        self.size = size
        self.seed = seed
        self.start = start
        self.change_rate = change_rate
        self.cache_limit = cache_limit
        self.day = 0
        self.lock = threading.RLock()
        self.generation = 0  # bumps on every change (list caches key on it)
        self.last_change = start
        self.events: list[dict[str, Any]] = []
        # trial ID -> (state, last refreshed) the WHO portal keeps showing (hold_who / release_who)
        self.who_held: dict[str, tuple[dict[str, Any], date]] = {}
        self.results = ResultsPool(seed)
        self._cached_bytes = 0
        self.trials: list[Trial] = []
        self._by_id: dict[str, Trial] = {}
        for i, (tid, reg) in enumerate(corpus_ids(size)):
            forced = SCRIPTED_STATUSES.get(i)
            state, static = G.make_profile(seed, i, start, status=forced,
                                           tier="normal" if forced else None)
            t = Trial(i, tid, reg, state, static)
            self.trials.append(t)
            self._by_id[tid] = t
        self.nct_trials = [t for t in self.trials if t.is_nct]

    # ------------------------------------------------------------------ identity
    @property
    def date(self) -> date:
        """The simulated date (``start`` + days advanced)."""
        return self.start + timedelta(days=self.day)

    @property
    def ids(self) -> list[str]:
        return [t.trial_id for t in self.trials]

    @property
    def nct_ids(self) -> list[str]:
        return [t.trial_id for t in self.nct_trials]

    @property
    def who_only_ids(self) -> list[str]:
        return [t.trial_id for t in self.trials if not t.is_nct]

    def get(self, trial_id: str) -> Trial | None:
        """The trial (deleted or not), or None for an ID the corpus never had."""
        return self._by_id.get(trial_id) or self._by_id.get(trial_id.strip().upper())

    def live(self, trial_id: str) -> Trial | None:
        """The trial if it exists and is not deleted."""
        t = self.get(trial_id)
        return None if t is None or t.deleted else t

    @property
    def version_holder(self) -> str:
        return self.date.isoformat()

    @property
    def last_refreshed(self) -> date:
        """WHO's "Last refreshed on": the portal refreshes weekly (noise)."""
        return self.start + timedelta(days=7 * (self.day // 7))

    def version_info(self) -> dict[str, str]:
        """Body of ``/api/v2/version``: ``dataTimestamp`` moves when data changed."""
        return {"apiVersion": "2.0.3", "dataTimestamp": f"{self.last_change.isoformat()}T09:00:00"}

    # ------------------------------------------------------------------ content
    def content(self, t: Trial) -> dict[str, Any]:
        """The trial's unchanging content, rebuilt from its seed (not kept: memory)."""
        c = G.build_content(self.seed, t.index, t.trial_id, t.registry, t.static, t.state0)
        if t.search is None:
            t.search = _search_text(c)
        return c

    def protocol(self, t: Trial, state: dict[str, Any] | None = None) -> dict[str, Any]:
        """``protocolSection`` of ``t`` in ``state`` (default: current)."""
        return G.assemble_protocol(self.content(t), state or t.state)

    def _proto_bytes(self, t: Trial) -> tuple[bytes, bytes]:
        """(protocolSection bytes, derivedSection body bytes) of the current state.

        Cached on the trial, keyed by the state object, while the corpus-wide byte
        budget (``cache_limit``) allows; past it, rebuilt on every request."""
        state = t.state
        cached = t._proto
        derived = t._derived
        if cached is not None and cached[0] is state and derived is not None:
            return cached[1], derived
        content = self.content(t)
        data = orjson.dumps(G.assemble_protocol(content, state))
        if derived is None:
            derived = orjson.dumps(content["derived"])[1:-1]
            if self._cached_bytes + len(derived) <= self.cache_limit:
                t._derived = derived
                self._cached_bytes += len(derived)
        if self._cached_bytes + len(data) <= self.cache_limit:
            old = t._proto
            t._proto = (state, data)
            self._cached_bytes += len(data) - (len(old[1]) if old else 0)
        return data, derived

    @property
    def cached_bytes(self) -> int:
        """Bytes held by the serialization caches (approximate under concurrency)."""
        return self._cached_bytes

    def warm(self) -> None:
        """Build and cache every live NCT study now (benchmarks: keep generation out of timings)."""
        for t in self.nct_trials:
            if not t.deleted:
                self._proto_bytes(t)

    def study_parts(self, t: Trial) -> list[bytes]:
        """The byte pieces of a full study object (join them, or write them in turn)."""
        proto, derived = self._proto_bytes(t)
        parts = [b'{"protocolSection":', proto]
        if t.has_results:
            parts += [b',"resultsSection":', self.results.get(t.static["tier"], t.static["variant"])]
        parts += [b',"derivedSection":{"miscInfoModule":{"versionHolder":"', self.version_holder.encode(),
                  b'"},', derived, b'},"hasResults":', b"true}" if t.has_results else b"false}"]
        return parts

    def study_bytes(self, trial_id: str) -> bytes | None:
        """The API v2 study JSON of a live NCT trial, else None."""
        t = self.live(trial_id)
        if t is None or not t.is_nct:
            return None
        return b"".join(self.study_parts(t))

    def study(self, trial_id: str) -> dict[str, Any] | None:
        data = self.study_bytes(trial_id)
        return None if data is None else orjson.loads(data)

    # ------------------------------------------------------------------ history
    def _ensure_versions(self, t: Trial) -> list[tuple[str, dict[str, Any]]]:
        if t.versions is None:
            t.versions = _initial_history(self.seed, t)
        return t.versions

    def history_changes(self, trial_id: str) -> list[dict[str, Any]] | None:
        """``history.changes`` of a live NCT trial (version, date, status, moduleLabels)."""
        t = self.live(trial_id)
        if t is None or not t.is_nct:
            return None
        with self.lock:
            versions = list(self._ensure_versions(t))
        content = self.content(t)
        out, prev = [], None
        for v, (when, state) in enumerate(versions):
            proto = G.assemble_protocol(content, state)
            out.append({"version": v, "status": state["status"], "date": when,
                        "moduleLabels": G.changed_modules(prev, proto)})
            prev = proto
        return out

    def study_with_history_bytes(self, trial_id: str) -> bytes | None:
        """``/api/int/studies/{id}?history=true``: the study plus ``history.changes``."""
        changes = self.history_changes(trial_id)
        t = self.live(trial_id)
        if changes is None or t is None:
            return None
        body = b"".join(self.study_parts(t))
        return body[:-1] + b',"history":' + orjson.dumps({"changes": changes}) + b"}"

    def history_version(self, trial_id: str, version: int) -> dict[str, Any] | None:
        """``{"studyVersion": v, "study": {...}}`` with HTML-entity text, as served."""
        t = self.live(trial_id)
        if t is None or not t.is_nct:
            return None
        with self.lock:
            versions = self._ensure_versions(t)
            if not 0 <= version < len(versions):
                return None
            state = versions[version][1]
        proto = entity_escape(self.protocol(t, state))
        elig = proto["eligibilityModule"]
        elig["eligibilityCriteria"] = criteria_html(self.protocol(t, state)["eligibilityModule"]["eligibilityCriteria"])
        has_results = t.static["tier"] != "normal" and bool(state.get("results_post"))
        return {"studyVersion": version, "study": {"protocolSection": proto, "hasResults": has_results}}

    # ------------------------------------------------------------------ WHO
    def who_page(self, trial_id: str) -> bytes:
        """The Trial2.aspx page of a live trial, or the portal's not-found page."""
        from pipeline.simulator import render_who

        t = self.live(trial_id)
        if t is None:
            return render_who.not_found_page(trial_id)
        held = self.who_held.get(t.trial_id)
        if held is not None:  # the portal still shows an old copy (the seed document's case)
            content = self.content(t)
            return render_who.trial_page(
                render_who.who_view(t, content, G.assemble_protocol(content, held[0]), held[0], held[1]))
        refreshed = self.last_refreshed.isoformat()
        cached = t._who
        state = t.state
        if cached is not None and cached[0] is state and cached[1] == refreshed:
            return cached[2]
        page = render_who.trial_page(self.who_view(t))
        t._who = (state, refreshed, page)
        return page

    def who_view(self, t: Trial, state: dict[str, Any] | None = None,
                 content: dict[str, Any] | None = None) -> dict[str, Any]:
        """The display strings the WHO portal shows for ``t`` (what :func:`render_who.trial_page` renders)."""
        from pipeline.simulator import render_who

        state = state or t.state
        content = content or self.content(t)
        return render_who.who_view(t, content, G.assemble_protocol(content, state), state, self.last_refreshed)

    def hold_who(self, trial_id: str) -> dict[str, Any]:
        """From now on the WHO portal shows ``trial_id`` as it stands today, whatever changes
        (the WHO copy of NCT04252118, "last refreshed on 12 December 2020", still said Recruiting)."""
        with self.lock:
            t = self.live(trial_id)
            if t is None:
                raise KeyError(trial_id)
            self.who_held[t.trial_id] = (t.state, self.last_refreshed)
            return {"trial_id": t.trial_id, "held": True, "status": t.state["status"],
                    "last_refreshed": self.last_refreshed.isoformat()}

    def release_who(self, trial_id: str) -> dict[str, Any]:
        """The WHO portal catches up with ``trial_id``'s current record."""
        with self.lock:
            t = self.get(trial_id)
            if t is None:
                raise KeyError(trial_id)
            self.who_held.pop(t.trial_id, None)
            t._who = None
            self.generation += 1
            return {"trial_id": t.trial_id, "held": False, "status": t.state["status"]}

    # ------------------------------------------------------------------ time
    def advance(self, days: int = 1) -> list[dict[str, Any]]:
        """Let ``days`` simulated days pass; return the events applied (in order)."""
        if days < 0:
            raise ValueError("days must be >= 0")
        out: list[dict[str, Any]] = []
        with self.lock:
            for _ in range(days):
                self.day += 1
                rng = random.Random(f"{self.seed}:advance:{self.day}")
                day_events: list[dict[str, Any]] = []
                if self.day == 1:
                    day_events += self._scripted_day1()
                day_events += self._random_changes(rng)
                if day_events:
                    self.last_change = self.date
                out += day_events
            self.events += out
        return out

    def restore(self, trial_id: str) -> dict[str, Any]:
        """Bring a deleted trial back (as it was); returns the "restored" event."""
        with self.lock:
            t = self.get(trial_id)
            if t is None:
                raise KeyError(trial_id)
            if not t.deleted:
                raise ValueError(f"{trial_id} is not deleted")
            t.deleted = False
            self.generation += 1
            self.last_change = self.date
            ev = self._event(t, "restored", "_record", "deleted", "present", source="both" if t.is_nct else "who")
            self.events.append(ev)
            return ev

    # ------------------------------------------------------------------ changes
    def _event(self, t: Trial, kind: str, field: str, old: Any, new: Any, *, source: str,
               **extra: Any) -> dict[str, Any]:
        ev = {"trial_id": t.trial_id, "source": source, "kind": kind, "field": field,
              "old": old, "new": new, "day": self.day, "date": self.date.isoformat()}
        ev.update(extra)
        return ev

    def _commit(self, t: Trial, new_state: dict[str, Any]) -> str:
        """Swap in a changed state: bump dates, append a version; return the source
        ("both" when the WHO page of an NCT trial shows the change, else "ctgov")."""
        content = self.content(t)
        before = self.who_view(t, content=content)
        self._ensure_versions(t)
        new_state["last_update"] = self.date.isoformat()
        new_state["status_verified"] = self.date.strftime("%Y-%m")
        t.versions.append((self.date.isoformat(), new_state))
        old_proto = t._proto
        t.state = new_state
        if old_proto is not None:
            self._cached_bytes -= len(old_proto[1])
            t._proto = None
        t._who = None
        self.generation += 1
        if not t.is_nct:
            return "who"
        after = self.who_view(t, content=content)
        visible = {k: v for k, v in after.items() if k != "last_refreshed"} != \
                  {k: v for k, v in before.items() if k != "last_refreshed"}
        return "both" if visible else "ctgov"

    def _label(self, t: Trial, status: str) -> str:
        """A status as the trial's primary source words it (CT.gov code or WHO label)."""
        if t.is_nct:
            return status
        from pipeline.simulator.render_who import who_status

        return who_status(t.registry, status)

    def apply_change(self, t: Trial, kind: str, rng: random.Random, **opts: Any) -> dict[str, Any] | None:
        """Apply one change of ``kind`` to ``t``; None when it does not apply.

        Kinds: ``status`` (``to=``, ``why=``), ``withdrawn``, ``enrollment`` (``delta=``),
        ``date`` (``which="completion"|"primary_completion"``, ``months=``), ``outcome``
        (``text=``), ``site`` (``new_country=True``), ``deleted``.  The event is not added
        to :attr:`events` (``advance`` does that).
        """
        with self.lock:
            return self._apply_change(t, kind, rng, **opts)

    def _apply_change(self, t: Trial, kind: str, rng: random.Random, **opts: Any) -> dict[str, Any] | None:
        s = dict(t.state)
        cur = s["status"]
        if kind == "deleted":
            t.deleted = True
            self.generation += 1
            return self._event(t, "deleted", "_record", "present", "deleted",
                               source="both" if t.is_nct else "who")
        if kind == "status":
            moves = STATUS_MOVES.get(cur)
            if not moves:
                return None
            new = opts.get("to") or rng.choices([m for m, _ in moves], [w for _, w in moves])[0]
            s["status"] = new
            extra = {}
            if new in ("TERMINATED", "SUSPENDED"):
                s["why_stopped"] = opts.get("why") or rng.choice(W.WHY_STOPPED)
                extra["why_stopped"] = s["why_stopped"]
            elif cur == "SUSPENDED":
                s["why_stopped"] = None
            if new in ("RECRUITING", "ENROLLING_BY_INVITATION", "NOT_YET_RECRUITING"):
                s["enrollment"] = (s["enrollment"][0], "ESTIMATED")
            src = self._commit(t, s)
            return self._event(t, "status", "recruitment_status", self._label(t, cur), self._label(t, new),
                               source=src, **extra)
        if kind == "withdrawn":
            if cur not in ("NOT_YET_RECRUITING", "RECRUITING", "SUSPENDED"):
                return None
            s["status"] = "WITHDRAWN"
            s["why_stopped"] = rng.choice(W.WHY_STOPPED)
            s["enrollment"] = (0, "ACTUAL")
            src = self._commit(t, s)
            return self._event(t, "withdrawn", "recruitment_status", self._label(t, cur), self._label(t, "WITHDRAWN"),
                               source=src, why_stopped=s["why_stopped"])
        if kind == "enrollment":
            if cur == "WITHDRAWN":
                return None
            old = s["enrollment"][0]
            delta = opts.get("delta") or rng.choice((-1, 1)) * max(2, int(old * rng.uniform(0.05, 0.5)))
            new = max(1, old + delta)
            if new == old:
                new = old + 10
            s["enrollment"] = (new, s["enrollment"][1])
            src = self._commit(t, s)
            return self._event(t, "enrollment", "target_size", old, new, source=src)
        if kind == "date":
            if not t.is_nct or cur in ("COMPLETED", "TERMINATED", "WITHDRAWN"):
                return None
            which = opts.get("which") or rng.choice(("completion", "primary_completion"))
            old_d, typ = s[which]
            months = opts.get("months") or rng.choice((-3, 2, 3, 6, 6, 12))
            new_d = _shift_months(old_d, months)
            s[which] = (new_d, typ)
            if which == "primary_completion" and new_d > s["completion"][0]:
                s["completion"] = (new_d, s["completion"][1])
            if which == "completion" and new_d < s["primary_completion"][0]:
                s["primary_completion"] = (new_d, s["primary_completion"][1])
            src = self._commit(t, s)
            field = "completion_date" if which == "completion" else "primary_completion_date"
            return self._event(t, "date", field, old_d, new_d, source=src)
        if kind == "outcome":
            proto = self.protocol(t)
            old = proto["outcomesModule"]["primaryOutcomes"][0]["measure"]
            new = opts.get("text")
            while not new or new == old:
                new = rng.choice(W.MEASURES)
            edits = dict(s["outcome_edits"])
            edits[0] = new
            s["outcome_edits"] = tuple(sorted(edits.items()))
            src = self._commit(t, s)
            return self._event(t, "outcome", "primary_outcomes", old, new, source=src)
        if kind == "site":
            if cur in ("COMPLETED", "TERMINATED", "WITHDRAWN", "UNKNOWN"):
                return None
            content = self.content(t)
            have = {loc["country"] for loc in content["locations"]} | {loc["country"] for loc in s["extra_sites"]}
            pref = G.REGISTRY_COUNTRIES.get(t.registry)
            choices = [c for c in G.COUNTRIES if c not in have] if opts.get("new_country") or pref is None else list(pref)
            country = rng.choice(choices or list(G.COUNTRIES))
            site = dict(rng.choice(G.LOCATION_POOL[country]))
            site["facility"] = f"{site['facility']} (site {len(s['extra_sites']) + 1 + len(content['locations'])})"
            s["extra_sites"] = s["extra_sites"] + (site,)
            src = self._commit(t, s)
            return self._event(t, "site", "locations" if t.is_nct else "countries", None,
                               f"{site['facility']}, {site['city']}, {site['country']}", source=src,
                               country=country)
        raise ValueError(f"unknown change kind {kind!r}")

    def _scripted_day1(self) -> list[dict[str, Any]]:
        """The fixed day-1 changes among the first 12 trials (corpus order):

        [0] RECRUITING -> ACTIVE_NOT_RECRUITING; [1] enrollment +40; [2] first primary
        outcome's measure rewritten; [3] deleted; [4] RECRUITING -> TERMINATED with
        whyStopped; [5] completion date +6 months; [6] a site in a new country; [8] (the
        first WHO-only trial, ChiCTR) "Recruiting" -> "Not Recruiting" on the portal.
        [7], [9], [10], [11] do not change.  The first 12 never get random changes."""
        rng = random.Random(f"{self.seed}:scripted")
        ts = self.trials
        out: list[dict[str, Any]] = []

        def do(i: int, kind: str, **opts: Any) -> None:
            if i < len(ts) and not ts[i].deleted:
                ev = self.apply_change(ts[i], kind, rng, **opts)
                if ev is not None:
                    ev["scripted"] = True
                    out.append(ev)

        do(0, "status", to="ACTIVE_NOT_RECRUITING")
        do(1, "enrollment", delta=40)
        do(2, "outcome")
        do(3, "deleted")
        do(4, "status", to="TERMINATED", why="Sponsor decision: development programme stopped")
        do(5, "date", which="completion", months=6)
        do(6, "site", new_country=True)
        who = [i for i in range(min(12, len(ts))) if not ts[i].is_nct]
        if who:
            do(who[0], "status", to="ACTIVE_NOT_RECRUITING")
        return out

    def _random_changes(self, rng: random.Random) -> list[dict[str, Any]]:
        if self.change_rate <= 0 or len(self.trials) <= 12:
            return []
        pool = [t for t in self.trials[12:] if not t.deleted]
        k = min(len(pool), round(self.change_rate * len(pool)))
        out = []
        kinds = [k_ for k_, _ in CHANGE_WEIGHTS]
        weights = [w for _, w in CHANGE_WEIGHTS]
        for t in rng.sample(pool, k):
            ok = applicable_kinds(t)
            pairs = [(k_, w) for k_, w in zip(kinds, weights) if k_ in ok]
            kind = rng.choices([k_ for k_, _ in pairs], [w for _, w in pairs])[0]
            ev = self.apply_change(t, kind, rng)
            if ev is not None:
                out.append(ev)
        return out

    # ------------------------------------------------------------------ search
    def search_text(self, t: Trial) -> tuple[str, str, str, str]:
        """(cond, intr, spons, term) lower-case haystacks for the ``query.*`` parameters."""
        if t.search is None:
            t.search = _search_text(self.content(t))
        return t.search

    def iter_live_nct(self) -> Iterable[Trial]:
        return (t for t in self.nct_trials if not t.deleted)


# ---------------------------------------------------------------------------- helpers
FINISHED = frozenset({"COMPLETED", "TERMINATED", "WITHDRAWN"})


def applicable_kinds(t: Trial) -> set[str]:
    """The random change kinds that make sense for ``t`` in its current state."""
    status = t.state["status"]
    kinds = {"deleted", "outcome"}
    if status in STATUS_MOVES:
        kinds.add("status")
    if status in ("NOT_YET_RECRUITING", "RECRUITING", "SUSPENDED"):
        kinds.add("withdrawn")
    if status != "WITHDRAWN":
        kinds.add("enrollment")
    if t.is_nct and status not in FINISHED:
        kinds.add("date")
    if status not in FINISHED and status != "UNKNOWN":
        kinds.add("site")
    return kinds


def _search_text(c: dict[str, Any]) -> tuple[str, str, str, str]:
    cond = " | ".join(c["conditions"] + c["keywords"]).lower()
    intr = " | ".join([f"{i['type']} {i['name']}" for i in c["interventions"]] +
                      [a["label"] for a in c["arm_groups"]]).lower()
    spons = " | ".join([c["sponsor"]["name"]] + [x["name"] for x in c["collaborators"]]).lower()
    term = " | ".join([c["trial_id"], c["brief_title"], c["official_title"], c["acronym"] or "",
                       cond, intr, spons, c["summary"]]).lower()
    return cond, intr, spons, term


def _shift_months(value: str, months: int) -> str:
    y, m = int(value[:4]), int(value[5:7])
    total = y * 12 + (m - 1) + months
    y2, m2 = divmod(total, 12)
    if len(value) == 7:
        return f"{y2:04d}-{m2 + 1:02d}"
    day = min(int(value[8:10]), 28)
    return f"{y2:04d}-{m2 + 1:02d}-{day:02d}"


def _initial_history(seed: int, t: Trial) -> list[tuple[str, dict[str, Any]]]:
    """Versions before the simulation: first registration, a few edits, the day-0 state."""
    s0 = t.state0
    rng = G.trial_rng(seed, t.index, "history")
    first = date.fromisoformat(s0["first_post"])
    last = date.fromisoformat(s0["last_update"])
    n = 1 if last <= first else rng.randint(2, 7)
    if n == 1:
        return [(s0["last_update"], s0)]
    v0 = dict(s0)
    v0.update({
        "status": "NOT_YET_RECRUITING" if s0["status"] != "WITHDRAWN" else "NOT_YET_RECRUITING",
        "why_stopped": None,
        "start": (s0["start"][0], "ESTIMATED"),
        "primary_completion": (s0["primary_completion"][0], "ESTIMATED"),
        "completion": (s0["completion"][0], "ESTIMATED"),
        "enrollment": (max(10, round(s0["enrollment"][0] or 40, -1)), "ESTIMATED"),
        "results_post": None,
        "last_update": s0["first_post"],
        "status_verified": s0["first_submit"][:7],
    })
    versions = [(s0["first_post"], v0)]
    span = (last - first).days
    cuts = sorted(rng.sample(range(1, span), min(n - 2, span - 1))) if span > 1 else []
    for cut in cuts:
        when = (first + timedelta(days=cut)).isoformat()
        prev = versions[-1][1]
        v = dict(prev)
        v["last_update"] = when
        v["status_verified"] = when[:7]
        if prev["status"] == "NOT_YET_RECRUITING" and when >= s0["start"][0][:10] and s0["status"] != "NOT_YET_RECRUITING":
            v["status"] = "RECRUITING"
            v["start"] = s0["start"]
        else:
            v["enrollment"] = (max(1, prev["enrollment"][0] + rng.choice((-20, 10, 25, 50))), prev["enrollment"][1])
        versions.append((when, v))
    versions.append((s0["last_update"], s0))
    return versions


_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;", "/": "&#x2F;"})


def entity_escape(value: Any) -> Any:
    """HTML-entity-escape every string, as the history endpoint serves text (``/`` -> ``&#x2F;``)."""
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, dict):
        return {k: entity_escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [entity_escape(v) for v in value]
    return value


def criteria_html(text: str) -> str:
    """Markdown eligibility text as the history endpoint's HTML (``<p>`` headings, ``<ol>``/``<ul>`` items)."""
    out: list[str] = []
    items: list[str] = []
    list_tag = "ol"

    def flush() -> None:
        if items:
            out.append(f"<{list_tag}>" + "".join(f"<li>{i}</li>" for i in items) + f"</{list_tag}>")
            items.clear()

    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        if line.startswith("* "):
            list_tag = "ul"
            items.append(entity_escape(line[2:]))
        elif line[:1].isdigit() and ". " in line[:5]:
            list_tag = "ol"
            items.append(entity_escape(line.split(". ", 1)[1]))
        else:
            flush()
            out.append(f"<p>{entity_escape(line)}</p>")
    flush()
    return "".join(out)
