"""Results sections: the bulk of the few very large ClinicalTrials.gov records.

Real studies with posted results reach several hundred KB (fixture NCT04431453 is
505 KB, most of it ``adverseEventsModule`` and ``outcomeMeasuresModule``).  Building one
of those in Python costs ~20 ms, so a corpus keeps a small pool of pre-serialized
results sections per size tier and studies share them: the bytes are spliced into the
study when it is served, never rebuilt.  Group titles are generic ("Cohort 1") for the
same reason.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import orjson

from pipeline.simulator import words as W
from pipeline.simulator.words import _int, _pick

#: (low, high) byte size of a results section per tier.
TIER_SIZES = {"large": (280_000, 440_000), "medium": (40_000, 110_000)}
POOL_SIZE = 8


def build_results(rng: random.Random, target: int) -> dict[str, Any]:
    """A ``resultsSection`` of roughly ``target`` serialized bytes."""
    n_groups = _int(rng, 2, 6)
    titles = [f"Cohort {i + 1}: {W.drug_name(rng)} {_pick(rng, (100, 200, 400))} mg" for i in range(n_groups)]
    descs = [" ".join(rng.choices(W.SENTENCES, k=2)) for _ in range(n_groups)]
    at_risk = [_int(rng, 10, 400) for _ in range(n_groups)]

    def groups(prefix: str) -> list[dict[str, str]]:
        return [{"id": f"{prefix}{i:03d}", "title": t, "description": d} for i, (t, d) in enumerate(zip(titles, descs))]

    flow = {
        "preAssignmentDetails": f"{sum(at_risk) + _int(rng, 5, 60)} participants were screened.",
        "recruitmentDetails": " ".join(rng.choices(W.SENTENCES, k=2)),
        "groups": groups("FG"),
        "periods": [{"title": "Overall Study", "milestones": [
            {"type": m, "achievements": [{"groupId": f"FG{i:03d}", "numSubjects": str(n if m != "NOT COMPLETED" else _int(rng, 0, n // 5))}
                                         for i, n in enumerate(at_risk)]}
            for m in ("STARTED", "COMPLETED", "NOT COMPLETED")]}],
    }
    baseline = {
        "populationDescription": " ".join(rng.choices(W.SENTENCES, k=2)),
        "groups": groups("BG") + [{"id": f"BG{n_groups:03d}", "title": "Total", "description": "Total of all reporting groups"}],
        "denoms": [{"units": "Participants", "counts": [{"groupId": f"BG{i:03d}", "value": str(n)} for i, n in enumerate(at_risk + [sum(at_risk)])]}],
        "measures": [
            {"title": t, "paramType": "COUNT_OF_PARTICIPANTS", "unitOfMeasure": "Participants",
             "classes": [{"categories": [{"title": c, "measurements": [
                 {"groupId": f"BG{i:03d}", "value": str(_int(rng, 0, n))} for i, n in enumerate(at_risk + [sum(at_risk)])]}
                 for c in cats]}]}
            for t, cats in (("Sex: Female, Male", ("Female", "Male")),
                            ("Race (NIH/OMB)", ("Asian", "Black or African American", "White", "More than one race", "Unknown or Not Reported")),
                            ("Age, Categorical", ("<=18 years", "Between 18 and 65 years", ">=65 years")))],
    }
    measures: list[dict[str, Any]] = []
    serious: list[dict[str, Any]] = []
    other: list[dict[str, Any]] = []
    section = {
        "participantFlowModule": flow,
        "baselineCharacteristicsModule": baseline,
        "outcomeMeasuresModule": {"outcomeMeasures": measures},
        "adverseEventsModule": {
            "frequencyThreshold": "5",
            "timeFrame": "From first dose up to 30 days after the last dose",
            "description": "Adverse events were collected at every visit.",
            "eventGroups": [{"id": f"EG{i:03d}", "title": t, "description": d,
                             "deathsNumAffected": _int(rng, 0, 3), "deathsNumAtRisk": n,
                             "seriousNumAffected": _int(rng, 0, n // 4), "seriousNumAtRisk": n,
                             "otherNumAffected": _int(rng, n // 4, n), "otherNumAtRisk": n}
                            for i, (t, d, n) in enumerate(zip(titles, descs, at_risk))],
            "seriousEvents": serious,
            "otherEvents": other,
        },
        "moreInfoModule": {
            "certainAgreement": {"piSponsorEmployee": False, "restrictionType": "LTE60", "restrictiveAgreement": True},
            "pointOfContact": {"title": "Clinical Trials Information Desk", "organization": f"{_pick(rng, W.SPONSOR_ROOTS)} Pharmaceuticals",
                               "email": "results@trials.example.org", "phone": "1-800-555-0100"},
        },
    }
    size = len(orjson.dumps(section))
    per_measure = 900 + 140 * n_groups
    per_event = 190 + 95 * n_groups
    k = 0
    while size < target:
        k += 1
        if k % 7 == 0 or len(measures) < 3:
            m = {"type": "PRIMARY" if len(measures) < 2 else "SECONDARY",
                 "title": _pick(rng, W.MEASURES), "description": " ".join(rng.choices(W.SENTENCES, k=3)),
                 "populationDescription": _pick(rng, W.SENTENCES), "reportingStatus": "POSTED",
                 "paramType": "NUMBER", "unitOfMeasure": "percentage of participants",
                 "timeFrame": _pick(rng, W.TIMEFRAMES), "groups": groups("OG"),
                 "denoms": [{"units": "Participants", "counts": [{"groupId": f"OG{i:03d}", "value": str(n)} for i, n in enumerate(at_risk)]}],
                 "classes": [{"categories": [{"measurements": [{"groupId": f"OG{i:03d}", "value": f"{rng.uniform(0, 100):.1f}"}
                                                               for i in range(n_groups)]}]}]}
            measures.append(m)
            size += per_measure
        else:
            ev = {"term": _pick(rng, W.ADVERSE_TERMS), "organSystem": _pick(rng, W.ORGAN_SYSTEMS),
                  "sourceVocabulary": "MedDRA 26.0", "assessmentType": "SYSTEMATIC_ASSESSMENT",
                  "stats": [{"groupId": f"EG{i:03d}", "numEvents": (a := _int(rng, 0, n // 3)) + _int(rng, 0, 3),
                             "numAffected": a, "numAtRisk": n} for i, n in enumerate(at_risk)]}
            (serious if rng.random() < 0.2 else other).append(ev)
            size += per_event
    return section


class ResultsPool:
    """Pre-serialized results sections of one corpus, built lazily and thread-safely."""

    def __init__(self, seed: int):
        self._seed = seed
        self._lock = threading.Lock()
        self._bytes: dict[tuple[str, int], bytes] = {}

    def get(self, tier: str, variant: int) -> bytes:
        key = (tier, variant % POOL_SIZE)
        found = self._bytes.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._bytes.get(key)
            if found is None:
                rng = random.Random(f"{self._seed}:results:{key[0]}:{key[1]}")
                lo, hi = TIER_SIZES[tier]
                found = orjson.dumps(build_results(rng, _int(rng, lo, hi)))
                self._bytes[key] = found
        return found
