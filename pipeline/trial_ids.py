"""Trial IDs: which registry issued one, and whether it is well formed.

An ID reaches a URL and a SQL row, so anything that is not the shape some registry
issues is rejected before it goes anywhere.  The patterns follow the registries' own
numbering schemes as the WHO portal shows them; an ID of a registry not listed here
is rejected with a message naming the registries we know.
"""

from __future__ import annotations

import re

from pipeline.errors import InvalidTrialId

#: (registry, pattern) in the order they are tried.  Patterns are anchored.
REGISTRY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    # re.ASCII: without it \d also matches Arabic-Indic, full-width and other Unicode
    # digits, and "NCT0425211\uff18" would pass as an NCT ID.
    (name, re.compile(pattern, re.ASCII))
    for name, pattern in (
        ("ClinicalTrials.gov", r"NCT\d{8}"),
        ("ChiCTR", r"ChiCTR(?:\d{10}|-[A-Z]{2,5}-\d{8,10}|-[A-Z]{2,5}-[A-Z]\d{6,10})"),
        ("ISRCTN", r"ISRCTN\d{8}"),
        ("EU-CTR", r"EUCTR\d{4}-\d{6}-\d{2}(?:-[A-Z]{2,3})?"),
        ("CTIS", r"(?:CTIS)?\d{4}-\d{6}-\d{2}-\d{2}"),
        ("CTRI", r"CTRI/\d{4}/\d{2,3}/\d{6}"),
        ("IRCT", r"IRCT\d{6,16}N\d{1,3}"),
        ("DRKS", r"DRKS\d{8}"),
        ("JPRN", r"JPRN-(?:UMIN\d{9}|jRCT[a-z]?\d{9,10}|JapicCTI-\d{6}|JMA-IIA\d{5}|C\d{9})"),
        ("ANZCTR", r"ACTRN\d{14}"),
        ("CRiS", r"KCT\d{7}"),
        ("TCTR", r"TCTR\d{11}"),
        ("PACTR", r"PACTR\d{15}"),
        ("SLCTR", r"SLCTR/\d{4}/\d{3}"),
        ("ReBec", r"RBR-[0-9a-z]{4,8}(?:-[0-9a-z]{1,4})?"),
        ("NTR", r"(?:NTR|NL)\d{1,6}|NL-OMON\d{1,6}"),
        ("REPEC", r"PER-\d{3}-\d{2}"),
        ("LBCTR", r"LBCTR\d{10}"),
        ("ITMCTR", r"ITMCTR\d{10}"),
        ("RPCEC", r"RPCEC\d{8}"),
    )
)

_NCT_ANY_CASE = re.compile(r"nct\d{8}", re.IGNORECASE | re.ASCII)


def normalize_trial_id(raw: str) -> str:
    """Return the canonical form of ``raw``, or raise :class:`InvalidTrialId`.

    Surrounding whitespace is dropped and an NCT prefix is upper-cased; nothing else
    is guessed.
    """
    if not isinstance(raw, str):
        raise InvalidTrialId(f"trial ID must be text, got {type(raw).__name__}")
    candidate = raw.strip()
    if _NCT_ANY_CASE.fullmatch(candidate):
        candidate = candidate.upper()
    if registry_of(candidate) is None:
        shown = candidate.encode("unicode_escape").decode("ascii")[:80]
        if not candidate:
            raise InvalidTrialId("empty trial ID")
        raise InvalidTrialId(
            f"invalid trial ID {shown!r}: not the format of any registry trialwatch knows "
            f"({', '.join(name for name, _ in REGISTRY_PATTERNS)}); "
            "ClinicalTrials.gov IDs look like NCT04252118"
        )
    return candidate


def registry_of(trial_id: str) -> str | None:
    """The registry whose numbering ``trial_id`` follows, or None."""
    for name, pattern in REGISTRY_PATTERNS:
        if pattern.fullmatch(trial_id):
            return name
    return None


def is_nct(trial_id: str) -> bool:
    """True for a ClinicalTrials.gov ID (watched on both registries)."""
    return registry_of(trial_id) == "ClinicalTrials.gov"

