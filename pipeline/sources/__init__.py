"""Sources: one module per registry, each turning trial IDs into raw documents.

A source does I/O only.  It yields :class:`Fetched` items: a raw document for a
trial ("found"), the registry's word that it has no such trial ("missing"), or the
reason it could not tell ("failed").  Parsing and normalizing happen downstream in
pure code (:mod:`pipeline.normalize`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Fetched:
    """What one source said about one trial in this run."""

    trial_id: str
    source: str
    status: str                 # found | missing | failed
    payload: Any = None         # ctgov: the study dict; who: the page bytes
    raw_format: str | None = None
    error: str | None = None
