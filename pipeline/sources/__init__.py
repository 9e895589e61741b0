"""Sources: one folder per registry, and the one table of them.

Everything that knows a registry lives in its folder (``ctgov/``, ``who/``): its
I/O, its parsers, its settings' defaults, which trial IDs it watches, where a
trial's public page is.  Each folder exports one :class:`~pipeline.sources.base.Source`
object; :data:`SOURCES` lists them.  The rest of trialwatch asks the table (never
compares a source name with a literal), so adding a registry means adding a folder
and one line here.
"""

from __future__ import annotations

from pipeline.sources.base import Fetched, Source
from pipeline.sources import ctgov, who

#: name -> Source, in the order runs visit them.
SOURCES: dict[str, Source] = {s.name: s for s in (ctgov.SOURCE, who.SOURCE)}

__all__ = ["SOURCES", "Fetched", "Source", "sources_for"]


def sources_for(trial_id: str) -> tuple[str, ...]:
    """Which sources watch ``trial_id`` (NCT IDs: ClinicalTrials.gov and the WHO portal)."""
    return tuple(name for name, source in SOURCES.items() if source.watches(trial_id))
