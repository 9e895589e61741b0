"""The WHO ICTRP search portal: everything trialwatch knows about this registry.

* :mod:`.portal`: the I/O (one ``Trial2.aspx`` page per trial);
* :mod:`.page`: the pure page parser (and the WHO value rules the export reader shares);
* :mod:`.export`: the pure reader of the portal's XML / CSV export files
  (imported by :mod:`pipeline.import_ictrp`).

:data:`SOURCE` is this registry's entry in :data:`pipeline.sources.SOURCES`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import quote

from pipeline.errors import FetchError, ParseError
from pipeline.record import WHO_EXTRA_FIELDS, Record
from pipeline.sources.base import COMMON_DEFAULTS, Fetched, raw_bytes
from pipeline.sources.who import portal
from pipeline.sources.who.export import parse_export_csv, parse_export_xml
from pipeline.sources.who.page import parse_trial_page

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.http_client import RegistryClient

NAME = portal.SOURCE

#: The trial `trialwatch check` asks the portal for when no trial is watched.
PROBE_TRIAL = "NCT04252118"


def _id_key(value: str) -> str:
    return re.sub(r"[^0-9a-z]", "", value.lower())


def same_trial(shown: str | None, requested: str) -> bool:
    """Whether the ID a page shows is the requested one, leniently: case, punctuation and a
    registry's suffix (EU-CTR's country code) may differ; a page with no ID is judged elsewhere."""
    if not shown or not requested:
        return True
    a, b = _id_key(shown), _id_key(requested)
    longer, shorter = (a, b) if len(a) >= len(b) else (b, a)
    return longer.startswith(shorter) and (longer == shorter or longer[len(shorter):].isalpha())


class WhoIctrp:
    """The :class:`pipeline.sources.base.Source` of the WHO ICTRP portal (every registry's trials)."""

    name = NAME
    label = "WHO ICTRP"
    parser_version = 1
    defaults = {
        **COMMON_DEFAULTS,
        "base_url": "https://trialsearch.who.int",
        "requests_per_second": 0.5,
    }
    # The WHO portal is refreshed weekly.
    schedule = "0 4 * * 6"
    extra_fields = WHO_EXTRA_FIELDS
    queries = None
    history = None
    results_due = False     # the portal's results fields are too sparse to call results missing
    copies_others = True    # every record is a copy of a primary registry's record
    updated_field = "last_refreshed"
    updated_word = "last refreshed"
    live_formats = ("html",)

    def watches(self, trial_id: str) -> bool:
        return True  # the portal shows the trials of every registry it gathers, NCT IDs included

    def registry_url(self, trial_id: str) -> str:
        return f"https://trialsearch.who.int/Trial2.aspx?TrialID={quote(trial_id, safe='')}"

    def fetch(
        self, client: RegistryClient, trial_ids: Iterable[str], *, should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[Fetched]:
        return portal.fetch_pages(client, trial_ids, should_stop=should_stop)

    def normalize(self, trial_id: str, payload: Any) -> Record | None:
        record = parse_trial_page(payload, trial_id)
        if record is not None and not same_trial(record.get("trial_id"), trial_id):
            # A portal mix-up (a cache serving another trial's page) would otherwise
            # rewrite this trial's record field by field with the other trial's content.
            raise ParseError(
                f"WHO page for {trial_id} shows another trial ({record.get('trial_id')!r}); not recorded"
            )
        return record

    def reparse(self, trial_id: str, raw: bytes | None, raw_format: str | None) -> Record | None:
        if raw is None:
            return None
        try:
            if raw_format in ("csv", "xml"):  # a row of an ICTRP export file
                parse = parse_export_csv if raw_format == "csv" else parse_export_xml
                return next(iter(parse(raw)), None)
            if raw_format == "html":
                return parse_trial_page(raw, trial_id)
        except Exception:  # an old payload the new parser rejects: keep the stored record
            return None
        return None

    def raw_bytes(self, payload: Any) -> bytes:
        return raw_bytes(payload)

    def extract(self, body: bytes, trial_id: str | None) -> Any:
        """A saved ``Trial2.aspx`` page, normalized (None: the portal's not-found page)."""
        return parse_trial_page(body, trial_id or "")

    def check(self, client: RegistryClient, trial_ids: Sequence[str]) -> str:
        """One portal page (the first watched trial's, else the seed trial's), judged by its content."""
        trial_id = next(iter(trial_ids), PROBE_TRIAL)
        response = client.get(portal.page_url(client.source.base_url), {"TrialID": trial_id}, trial_id=trial_id)
        if response.status == 404:
            raise FetchError(f"HTTP 404 from {response.url} (is sources.{NAME}.base_url right?)", url=response.url)
        record = self.normalize(trial_id, response.body)  # BlockedPageError / ParseError for a bad page
        if record is None:
            return f"portal answered: its not-found page for {trial_id}"
        return f"portal answered: the page of {trial_id}"


SOURCE = WhoIctrp()
