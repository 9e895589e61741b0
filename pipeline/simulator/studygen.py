"""Build ClinicalTrials.gov API v2 study objects from a trial's seed and state.

A trial is split in two so that serving, changing and replaying history stay cheap:

* the *profile* (:func:`make_profile`): the few values that change over time or that
  searches filter on (status, dates, enrollment, ...) kept as a small flat ``state``
  dict, plus a size tier.  Profiles for the whole corpus are made up front (~15 us each).
* the *content* (:func:`build_content`): titles, descriptions, arms, outcomes,
  eligibility, locations and derived MeSH modules.  It depends only on the trial's seed,
  never on its state, so it is identical in every version of the record; it is built on
  demand and thrown away once serialized.

:func:`assemble_protocol` joins content and a state into ``protocolSection``; history
versions are the same content assembled with an older state.  Key order follows the
real API (``protocolSection`` modules in the order CT.gov emits them).

Sizes follow the real fixtures: a study gets a byte target (most 10-60 KB, a medium
tier of 60-150 KB and a ~5 % tail of 300-500 KB with a results section) and its
location list is sized to reach it.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from typing import Any

import orjson

from pipeline.simulator import words as W
from pipeline.simulator.words import _int, _pick

# ----------------------------------------------------------------------------- statuses
#: Status draw for ordinary trials: (status, weight).
STATUS_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("RECRUITING", 0.30), ("NOT_YET_RECRUITING", 0.08), ("ACTIVE_NOT_RECRUITING", 0.15),
    ("COMPLETED", 0.28), ("TERMINATED", 0.05), ("WITHDRAWN", 0.03), ("UNKNOWN", 0.07),
    ("ENROLLING_BY_INVITATION", 0.03), ("SUSPENDED", 0.01),
)
ONGOING = frozenset({"RECRUITING", "NOT_YET_RECRUITING", "ACTIVE_NOT_RECRUITING",
                     "ENROLLING_BY_INVITATION", "SUSPENDED"})
ESTIMATED_ENROLLMENT = frozenset({"RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION",
                                  "SUSPENDED", "UNKNOWN"})

#: Size tiers: (name, probability).  "large" carries a 280-440 KB results section.
TIERS = (("large", 0.05), ("medium", 0.07), ("normal", 0.88))

# Country groups WHO-only registries draw their sites from.
REGISTRY_COUNTRIES = {
    "ChiCTR": ("China",),
    "ISRCTN": ("United Kingdom",),
    "CTRI": ("India",),
    "IRCT": ("Iran, Islamic Republic of",),
    "DRKS": ("Germany",),
    "ANZCTR": ("Australia", "New Zealand"),
}


def _iso(d: date, month_only: bool = False) -> str:
    return d.strftime("%Y-%m") if month_only else d.isoformat()


def _struct(d: date, kind: str, month_only: bool = False) -> dict[str, str]:
    return {"date": _iso(d, month_only), "type": kind}


def trial_rng(corpus_seed: int, index: int, salt: str) -> random.Random:
    """The RNG of one trial; independent streams per ``salt`` so that adding draws to
    one part (content) never shifts another (profile)."""
    return random.Random(f"{corpus_seed}:{index}:{salt}")


# ------------------------------------------------------------------------------ profile
def make_profile(
    corpus_seed: int,
    index: int,
    start: date,
    *,
    status: str | None = None,
    tier: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state, static)`` of one trial as it stands on the simulation's first day.

    ``state`` holds what events change (and what searches filter on); ``static`` holds
    the size tier and target.  ``status`` / ``tier`` force the draw (scripted trials).
    """
    rng = trial_rng(corpus_seed, index, "profile")
    if tier is None:
        u = rng.random()
        tier = "large" if u < 0.05 else "medium" if u < 0.12 else "normal"
    else:
        rng.random()
    if status is None:
        if tier != "normal":
            status = "COMPLETED" if rng.random() < 0.85 else "TERMINATED"
        else:
            status = rng.choices([s for s, _ in STATUS_WEIGHTS], [w for _, w in STATUS_WEIGHTS])[0]
    else:
        rng.random()
    if tier != "normal" and status not in ("COMPLETED", "TERMINATED"):
        tier = "normal"

    month_only = rng.random() < 0.3
    # Registration: older for finished trials.
    if status in ("COMPLETED", "TERMINATED", "UNKNOWN"):
        reg = start - timedelta(days=_int(rng, 900, 4200))
    elif status == "NOT_YET_RECRUITING":
        reg = start - timedelta(days=_int(rng, 20, 240))
    else:
        reg = start - timedelta(days=_int(rng, 120, 2400))
    first_post = reg + timedelta(days=_int(rng, 1, 12))
    if status == "NOT_YET_RECRUITING":
        st = start + timedelta(days=_int(rng, 15, 240))
        st_type = "ESTIMATED"
    else:
        st = reg + timedelta(days=_int(rng, 0, 200))
        st_type = "ESTIMATED" if status == "WITHDRAWN" else "ACTUAL"
    duration = _int(rng, 300, 2200)
    pcd = st + timedelta(days=duration)
    cd = pcd + timedelta(days=_pick(rng, (0, 0, 30, 90, 180, 365)))
    if status in ("COMPLETED", "TERMINATED"):
        # finished before the simulation starts
        latest = start - timedelta(days=_int(rng, 40, 400))
        if cd > latest:
            cd = latest
            pcd = min(pcd, cd)
        if st >= pcd:
            st = pcd - timedelta(days=_int(rng, 60, 300))
            reg = min(reg, st - timedelta(days=5))
            first_post = reg + timedelta(days=3)
        pcd_type = cd_type = "ACTUAL"
    elif status == "UNKNOWN":
        pcd_type = cd_type = "ESTIMATED"
        cd = min(cd, start - timedelta(days=_int(rng, 400, 900)))
        pcd = min(pcd, cd)
        if st >= pcd:
            st = pcd - timedelta(days=200)
    else:
        if cd <= start:
            cd = start + timedelta(days=_int(rng, 60, 1200))
        if pcd > cd:
            pcd = cd
        pcd_type = "ACTUAL" if status == "ACTIVE_NOT_RECRUITING" and pcd < start else "ESTIMATED"
        if pcd_type == "ESTIMATED" and pcd <= start:
            pcd = start + timedelta(days=_int(rng, 30, 400))
            cd = max(cd, pcd)
        cd_type = "ESTIMATED"
    if status == "UNKNOWN":
        last_update = min(cd, start - timedelta(days=_int(rng, 730, 1500)))
    elif status in ("COMPLETED", "TERMINATED"):
        last_update = cd + timedelta(days=_int(rng, 10, 35))
        if last_update >= start:
            last_update = start - timedelta(days=1)
    else:
        span = (start - first_post).days
        last_update = first_post + timedelta(days=_int(rng, 0, max(0, span - 1)))
    last_update = max(last_update, first_post)

    count = int(min(20000, max(8, math.exp(rng.gauss(4.7, 1.0)))))
    if status == "WITHDRAWN":
        count, e_type = 0, "ACTUAL"
    elif status in ESTIMATED_ENROLLMENT:
        e_type = "ESTIMATED"
    else:
        e_type = "ACTUAL"

    has_results = tier != "normal"
    results_post = None
    if has_results:
        results_post = cd + timedelta(days=_int(rng, 200, 380))
        if results_post >= start:
            results_post = start - timedelta(days=_int(rng, 2, 30))
        last_update = max(last_update, results_post)

    state: dict[str, Any] = {
        "status": status,
        "why_stopped": _pick(rng, W.WHY_STOPPED) if status in ("TERMINATED", "WITHDRAWN", "SUSPENDED") else None,
        "status_verified": last_update.strftime("%Y-%m"),
        "start": (_iso(st, month_only), st_type),
        "primary_completion": (_iso(pcd, month_only), pcd_type),
        "completion": (_iso(cd, month_only), cd_type),
        "first_submit": reg.isoformat(),
        "first_post": first_post.isoformat(),
        "last_update": last_update.isoformat(),
        "enrollment": (count, e_type),
        "results_post": results_post.isoformat() if results_post else None,
        "outcome_edits": (),
        "extra_sites": (),
    }
    if tier == "large":
        target = _int(rng, 300_000, 490_000)
    elif tier == "medium":
        target = _int(rng, 62_000, 150_000)
    else:
        target = int(min(60_000, max(7_500, math.exp(rng.gauss(math.log(21_000), 0.5)))))
    static = {"tier": tier, "target": target, "variant": rng.randrange(8),
              "month_only": month_only}
    return state, static


# ------------------------------------------------------------------------------ content
def _location_pool() -> dict[str, list[dict[str, Any]]]:
    """Facility templates by country (facility, city, state, zip, country, geoPoint)."""
    rng = random.Random(4242)
    pool: dict[str, list[dict[str, Any]]] = {}
    for city, state, zip_, country, lat, lon in W.CITIES:
        for n in range(30):
            facility = _pick(rng, W.FACILITY_PATTERNS).format(
                city=city, root=_pick(rng, W.SPONSOR_ROOTS), saint=_pick(rng, W.SAINTS), n=n + 1)
            loc: dict[str, Any] = {"facility": facility, "city": city}
            if state:
                loc["state"] = state
            if zip_:
                loc["zip"] = zip_
            loc["country"] = country
            loc["geoPoint"] = {"lat": lat, "lon": lon}
            pool.setdefault(country, []).append(loc)
    return pool


LOCATION_POOL = _location_pool()
COUNTRIES = tuple(LOCATION_POOL)
ALL_LOCATIONS = tuple(loc for locs in LOCATION_POOL.values() for loc in locs)


def _sentences(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(W.SENTENCES, k=n))


def _paragraphs(rng: random.Random, n_sentences: int) -> str:
    picks = rng.choices(W.SENTENCES, k=n_sentences)
    out, i = [], 0
    while i < len(picks):
        k = _int(rng, 2, 6)
        out.append(" ".join(picks[i:i + k]))
        i += k
    return "\n\n".join(out)


def _criteria(rng: random.Random, min_age: int) -> str:
    incl = rng.sample(W.INCLUSION, _int(rng, 3, min(12, len(W.INCLUSION))))
    excl = rng.sample(W.EXCLUSION, _int(rng, 3, min(13, len(W.EXCLUSION))))
    incl = [c.replace("Age 18 years", f"Age {min_age} years") for c in incl]
    if rng.random() < 0.5:
        fmt = lambda items: "\n".join(f"* {c}" for c in items)  # noqa: E731
    else:
        fmt = lambda items: "\n".join(f"{i}. {c}" for i, c in enumerate(items, 1))  # noqa: E731
    return f"Inclusion Criteria:\n\n{fmt(incl)}\n\nExclusion Criteria:\n\n{fmt(excl)}"


def _outcomes(rng: random.Random, n: int) -> list[dict[str, str]]:
    out = []
    for m in rng.sample(W.MEASURES, n):
        o = {"measure": m}
        d = _pick(rng, W.MEASURE_DESCRIPTIONS)
        if d:
            o["description"] = d
        o["timeFrame"] = _pick(rng, W.TIMEFRAMES)
        out.append(o)
    return out


def _sponsor(rng: random.Random, registry: str) -> tuple[str, str]:
    root = _pick(rng, W.SPONSOR_ROOTS)
    if rng.random() < 0.45:
        return f"{root} {_pick(rng, W.INDUSTRY_SUFFIXES)}", "INDUSTRY"
    country = REGISTRY_COUNTRIES.get(registry)
    city = _pick(rng, [c for c in W.CITIES if country is None or c[3] in country])[0]
    kind = _pick(rng, ("University Hospital", "University", "Medical Center", "Clinical Research Center"))
    if kind == "University":
        return f"University of {city}", "OTHER"
    return f"{city} {kind}", "OTHER"


def build_content(corpus_seed: int, index: int, trial_id: str, registry: str,
                  static: dict[str, Any], state0: dict[str, Any]) -> dict[str, Any]:
    """Everything about a trial that no event changes, built from its seed.

    ``state0`` (the initial state) is read only for choices that must agree with it
    (number of sites that fit the size target, whether a study is multinational); it is
    the same object for every version, so content never depends on later states.
    """
    rng = trial_rng(corpus_seed, index, "content")
    target = static["target"]
    n_cond = rng.choices((1, 2, 3, 4), (50, 30, 15, 5))[0]
    conds = rng.sample(W.CONDITIONS, n_cond)
    cond_names = [c[0] for c in conds]
    study_type = "INTERVENTIONAL" if rng.random() < 0.78 else "OBSERVATIONAL"

    # interventions and arms
    n_int = rng.choices((1, 2, 3), (55, 35, 10))[0]
    interventions = []
    for _ in range(n_int):
        u = rng.random()
        if study_type == "OBSERVATIONAL":
            kind, name = "OTHER", _pick(rng, ("Standard of care", "Observation", "Questionnaire",
                                               "Blood sampling", "No intervention"))
        elif u < 0.6:
            kind, name = "DRUG", W.drug_name(rng)
        elif u < 0.7:
            kind, name = "BIOLOGICAL", W.drug_name(rng)
        elif u < 0.8:
            kind, name = "BEHAVIORAL", _pick(rng, W.BEHAVIOURAL)
        elif u < 0.9:
            kind, name = "DEVICE", _pick(rng, W.DEVICES)
        else:
            kind, name = "PROCEDURE", _pick(rng, W.PROCEDURES)
        interventions.append({"type": kind, "name": name, "description": _sentences(rng, _int(rng, 1, 3))})
    if study_type == "INTERVENTIONAL" and n_int == 1 and rng.random() < 0.5:
        interventions.append({"type": "DRUG" if interventions[0]["type"] == "DRUG" else "OTHER",
                              "name": "Placebo", "description": "Matching placebo."})
    arm_groups = []
    for i, iv in enumerate(interventions):
        label = f"{iv['name']} {_pick(rng, ('arm', 'group', 'cohort', ''))}".strip() if iv["name"] != "Placebo" else "Placebo"
        arm_groups.append({
            "label": label,
            "type": ("PLACEBO_COMPARATOR" if iv["name"] == "Placebo" else
                     "EXPERIMENTAL" if i == 0 else _pick(rng, ("ACTIVE_COMPARATOR", "EXPERIMENTAL", "OTHER"))),
            "description": _sentences(rng, _int(rng, 1, 3)),
            "interventionNames": [f"{iv['type'].title().replace('_', ' ')}: {iv['name']}"],
        })
        iv["armGroupLabels"] = [label]
    if study_type == "OBSERVATIONAL":
        for a in arm_groups:
            a.pop("type")

    main = interventions[0]["name"]
    cond = cond_names[0]
    pop = _pick(rng, ("Adults", "Patients", "Participants", "Children", "Older Adults", "Women"))
    brief = _pick(rng, (
        f"Study of {main} in {pop} With {cond}",
        f"{main} for the Treatment of {cond}",
        f"Efficacy and Safety of {main} in {cond}",
        f"A Trial of {main} Versus Standard Care in {cond}",
        f"{cond}: {main} and Long-term Outcomes",
    ))
    phase_words = {"INTERVENTIONAL": _pick(rng, ("Phase 1", "Phase 2", "Phase 3", "Phase 2/3", "Phase 4", "Pilot"))}
    design_word = _pick(rng, ('Randomized', 'Multicenter', 'Open-label', 'Double-blind, Placebo-controlled', 'Single-arm'))
    official = (f"{'An' if design_word[0] in 'AEIOU' else 'A'} {design_word} "
                f"{phase_words.get(study_type, 'Observational')} Study to Evaluate "
                f"{_pick(rng, ('the Efficacy and Safety', 'the Pharmacokinetics and Safety', 'Clinical Outcomes', 'the Effectiveness'))} "
                f"of {main} in {pop} With {cond}")
    acronym = None
    if rng.random() < 0.25:
        acronym = "".join(w[0] for w in brief.split() if w[0].isalpha()).upper()[:8]

    sponsor, sponsor_class = _sponsor(rng, registry)
    collaborators = []
    for _ in range(rng.choices((0, 1, 2, 3), (55, 25, 12, 8))[0]):
        name, klass = _sponsor(rng, registry)
        if name != sponsor and all(c["name"] != name for c in collaborators):
            collaborators.append({"name": name, "class": klass})

    # text volume scales a little with the size target
    summary = _sentences(rng, _int(rng, 2, 6))
    detailed = None
    if rng.random() < 0.65 or target > 30_000:
        detailed = _paragraphs(rng, max(3, min(90, int(target * rng.uniform(0.05, 0.25) / 95))))
    n_secondary = max(0, min(18, int(target / 4000 * rng.uniform(0.4, 1.4))))
    primary = _outcomes(rng, rng.choices((1, 2, 3), (60, 28, 12))[0])
    secondary = _outcomes(rng, n_secondary) if n_secondary else []
    other = _outcomes(rng, _int(rng, 1, 3)) if rng.random() < 0.1 else []

    min_age = _pick(rng, (18, 18, 18, 12, 40, 50, 6))
    max_age = _pick(rng, (None, None, 65, 75, 80, 85, 17 if min_age < 12 else 70))
    sex = rng.choices(("ALL", "FEMALE", "MALE"), (85, 10, 5))[0]
    std_ages = ["ADULT", "OLDER_ADULT"] if min_age >= 18 else ["CHILD", "ADULT"]
    eligibility = {
        "eligibilityCriteria": _criteria(rng, min_age),
        "healthyVolunteers": rng.random() < 0.15,
        "sex": sex,
        "minimumAge": f"{min_age} Years",
    }
    if max_age:
        eligibility["maximumAge"] = f"{max_age} Years"
    eligibility["stdAges"] = std_ages
    if study_type == "OBSERVATIONAL":
        eligibility["studyPopulation"] = _sentences(rng, 1)
        eligibility["samplingMethod"] = _pick(rng, ("NON_PROBABILITY_SAMPLE", "PROBABILITY_SAMPLE"))

    if study_type == "INTERVENTIONAL":
        phases = _pick(rng, (["PHASE1"], ["PHASE2"], ["PHASE3"], ["PHASE2", "PHASE3"],
                             ["PHASE1", "PHASE2"], ["PHASE4"], ["NA"], ["EARLY_PHASE1"]))
        masking = _pick(rng, ("NONE", "SINGLE", "DOUBLE", "TRIPLE", "QUADRUPLE"))
        masking_info: dict[str, Any] = {"masking": masking}
        if masking != "NONE":
            masking_info["whoMasked"] = ["PARTICIPANT", "CARE_PROVIDER", "INVESTIGATOR", "OUTCOMES_ASSESSOR"][
                : {"SINGLE": 1, "DOUBLE": 2, "TRIPLE": 3, "QUADRUPLE": 4}[masking]]
        design = {
            "studyType": study_type,
            "phases": phases,
            "designInfo": {
                "allocation": "RANDOMIZED" if len(arm_groups) > 1 else "NA",
                "interventionModel": "PARALLEL" if len(arm_groups) > 1 else "SINGLE_GROUP",
                "primaryPurpose": _pick(rng, ("TREATMENT", "TREATMENT", "PREVENTION", "SUPPORTIVE_CARE", "DIAGNOSTIC")),
                "maskingInfo": masking_info,
            },
        }
    else:
        design = {
            "studyType": study_type,
            "patientRegistry": rng.random() < 0.2,
            "designInfo": {
                "observationalModel": _pick(rng, ("COHORT", "CASE_CONTROL", "CASE_ONLY")),
                "timePerspective": _pick(rng, ("PROSPECTIVE", "RETROSPECTIVE", "CROSS_SECTIONAL")),
            },
        }

    officials = [{"name": f"{W.person(rng)}, {_pick(rng, W.DEGREES)}",
                  "affiliation": sponsor,
                  "role": _pick(rng, ("PRINCIPAL_INVESTIGATOR", "STUDY_DIRECTOR", "STUDY_CHAIR"))}
                 for _ in range(rng.choices((1, 2), (80, 20))[0])]
    central = []
    for _ in range(_int(rng, 1, 2)):
        p = W.person(rng)
        central.append({"name": f"{p}, {_pick(rng, W.DEGREES)}", "role": "CONTACT",
                        "phone": f"+{_int(rng, 1, 99)}-{_int(rng, 100, 999)}-{_int(rng, 1000000, 9999999)}",
                        "email": f"{p.split()[0].lower()}.{p.split()[1].lower()}@trials.example.org"})

    references = []
    for _ in range(rng.choices((0, 1, 2, 4, 6), (45, 20, 15, 12, 8))[0]):
        a = ", ".join(f"{_pick(rng, W.LAST_NAMES)} {_pick(rng, 'ABCDEFGHJKLMNPRSTW')}" for _ in range(_int(rng, 2, 6)))
        references.append({"pmid": str(_int(rng, 20_000_000, 39_999_999)),
                           "type": _pick(rng, ("BACKGROUND", "RESULT", "DERIVED")),
                           "citation": f"{a}. {_sentences(rng, 1)[:-1]}. J Clin Res. {_int(rng, 2005, 2025)};{_int(rng, 1, 90)}({_int(rng, 1, 12)}):{_int(rng, 1, 999)}-{_int(rng, 1000, 1999)}."})

    ipd = _pick(rng, ("NO", "NO", "UNDECIDED", "YES"))
    ipd_module: dict[str, Any] = {"ipdSharing": ipd}
    if ipd == "YES":
        ipd_module.update({"description": _sentences(rng, 2), "infoTypes": ["STUDY_PROTOCOL", "SAP"],
                           "timeFrame": "Beginning 12 months after study completion",
                           "accessCriteria": "Requests are reviewed by an independent panel."})

    keywords = rng.sample([c.split(",")[0] for c in cond_names] + [main, pop.lower()],
                          k=min(3, n_cond + 1)) if rng.random() < 0.7 else []

    secondary_ids = []
    if rng.random() < 0.3:
        secondary_ids.append({"id": f"{_int(rng, 2015, 2025)}-{_int(rng, 100000, 999999)}-{_int(rng, 10, 99)}",
                              "type": "EUDRACT_NUMBER" if rng.random() < 0.5 else "OTHER",
                              **({} if rng.random() < 0.5 else {"domain": sponsor})})

    # derived section (MeSH-like browse modules)
    cmeshes = [{"id": W.mesh_id(c), "term": c} for c in cond_names]
    ancestors = [{"id": W.mesh_id(a), "term": a} for a in rng.sample(W.ANCESTOR_TERMS, _int(rng, 1, 6))]
    leaves = [{"id": f"M{int(m['id'][1:]) % 40000}", "name": m["term"], "asFound": m["term"], "relevance": "HIGH"}
              for m in cmeshes] + [{"id": f"M{int(a['id'][1:]) % 40000}", "name": a["term"], "relevance": "LOW"}
                                   for a in ancestors]
    branches = []
    for _, branch in conds:
        b = {"abbrev": W.BRANCH_ABBREV[branch], "name": branch}
        if b not in branches:
            branches.append(b)
    branches.append({"abbrev": "All", "name": "All Conditions"})
    derived: dict[str, Any] = {"conditionBrowseModule": {"meshes": cmeshes, "ancestors": ancestors,
                                                         "browseLeaves": leaves, "browseBranches": branches}}
    drugs = [iv["name"] for iv in interventions if iv["type"] in ("DRUG", "BIOLOGICAL") and iv["name"] != "Placebo"]
    if drugs:
        imeshes = [{"id": W.mesh_id(d, "C"), "term": d} for d in drugs]
        derived["interventionBrowseModule"] = {
            "meshes": imeshes,
            "browseLeaves": [{"id": f"M{int(m['id'][1:]) % 400000}", "name": m["term"], "asFound": m["term"],
                              "relevance": "HIGH"} for m in imeshes],
            "browseBranches": [{"abbrev": "All", "name": "All Drugs and Chemicals"}],
        }

    # sites: country choice, then as many as fit the size target
    country_pref = REGISTRY_COUNTRIES.get(registry)
    if country_pref:
        countries = list(country_pref)
    elif rng.random() < 0.35:
        countries = rng.sample(COUNTRIES, _int(rng, 3, 15))
    else:
        countries = rng.sample(COUNTRIES, 1) if rng.random() < 0.3 else ["United States"]
        if rng.random() < 0.3:
            countries.append(_pick(rng, COUNTRIES))
    candidates = [loc for c in countries for loc in LOCATION_POOL[c]]
    site_contacts = rng.random() < 0.4

    content: dict[str, Any] = {
        "trial_id": trial_id, "registry": registry,
        "org_study_id": f"{_pick(rng, W.SPONSOR_ROOTS)[:3].upper()}-{_int(rng, 2015, 2025)}-{_int(rng, 1, 999):03d}",
        "secondary_ids": secondary_ids,
        "organization": {"fullName": sponsor, "class": sponsor_class},
        "brief_title": brief, "official_title": official, "acronym": acronym,
        "sponsor": {"name": sponsor, "class": sponsor_class}, "collaborators": collaborators,
        "oversight": {"oversightHasDmc": rng.random() < 0.4, "isFdaRegulatedDrug": rng.random() < 0.3,
                      "isFdaRegulatedDevice": False},
        "summary": summary, "detailed": detailed,
        "conditions": cond_names, "keywords": keywords,
        "design": design,
        "arm_groups": arm_groups, "interventions": interventions,
        "primary": primary, "secondary": secondary, "other": other,
        "eligibility": eligibility,
        "central": central, "officials": officials,
        "references": references, "ipd": ipd_module,
        "derived": derived,
        "locations": [],
        "site_contacts": site_contacts,
        "countries_all": countries,
        # Site statuses and central contacts follow the status the trial had when the
        # simulation started, so a status event changes the status and nothing else.
        "site_status": SITE_STATUS.get(state0["status"]),
        "has_central": state0["status"] in ("RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION"),
    }
    # Size the site list: measure everything else once, then add sites.
    base = len(orjson.dumps(assemble_protocol(content, state0))) + len(orjson.dumps(derived)) + 120
    per_site = 330 if site_contacts else 215
    if static["tier"] == "normal":
        room = target - base
    else:  # the results section (spliced in when served) supplies the rest
        room = _int(rng, 20_000, 55_000) - base
    n_sites = max(1, room // per_site)
    picks = rng.choices(candidates, k=n_sites)
    people = [W.person(rng) for _ in range(min(n_sites, 12))] if site_contacts else None
    locations = []
    for i, loc in enumerate(picks):
        site = dict(loc)
        if people is not None:
            p = people[i % len(people)]
            site["contacts"] = [{"name": p, "role": "CONTACT", "phone": f"555-{1000 + (i * 37) % 9000}",
                                 "email": f"site{i + 1}@trials.example.org"},
                                {"name": f"{p}, MD", "role": "PRINCIPAL_INVESTIGATOR"}]
            site = {k: site[k] for k in ("facility", "city", "state", "zip", "country", "contacts", "geoPoint") if k in site}
        locations.append(site)
    content["locations"] = locations
    return content


# ------------------------------------------------------------------------------ assemble
SITE_STATUS = {
    "RECRUITING": "RECRUITING", "NOT_YET_RECRUITING": "NOT_YET_RECRUITING",
    "ACTIVE_NOT_RECRUITING": "ACTIVE_NOT_RECRUITING", "ENROLLING_BY_INVITATION": "ENROLLING_BY_INVITATION",
    "SUSPENDED": "SUSPENDED", "WITHDRAWN": "WITHDRAWN",
}


def _with_status(loc: dict[str, Any], status: str | None) -> dict[str, Any]:
    if status is None:
        return loc
    out = {"facility": loc["facility"], "status": status}
    for k in ("city", "state", "zip", "country", "contacts", "geoPoint"):
        if k in loc:
            out[k] = loc[k]
    return out


def assemble_protocol(content: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """``protocolSection`` of a trial's content in ``state`` (a new dict; content is shared
    read-only, never mutated)."""
    status = state["status"]
    ident: dict[str, Any] = {"nctId": content["trial_id"], "orgStudyIdInfo": {"id": content["org_study_id"]}}
    if content["secondary_ids"]:
        ident["secondaryIdInfos"] = content["secondary_ids"]
    ident["organization"] = content["organization"]
    ident["briefTitle"] = content["brief_title"]
    ident["officialTitle"] = content["official_title"]
    if content["acronym"]:
        ident["acronym"] = content["acronym"]

    sm: dict[str, Any] = {"statusVerifiedDate": state["status_verified"], "overallStatus": status}
    if state.get("why_stopped"):
        sm["whyStopped"] = state["why_stopped"]
    sm["expandedAccessInfo"] = {"hasExpandedAccess": False}
    sm["startDateStruct"] = {"date": state["start"][0], "type": state["start"][1]}
    sm["primaryCompletionDateStruct"] = {"date": state["primary_completion"][0], "type": state["primary_completion"][1]}
    sm["completionDateStruct"] = {"date": state["completion"][0], "type": state["completion"][1]}
    sm["studyFirstSubmitDate"] = state["first_submit"]
    sm["studyFirstSubmitQcDate"] = state["first_submit"]
    sm["studyFirstPostDateStruct"] = {"date": state["first_post"], "type": "ACTUAL"}
    if state.get("results_post"):
        sm["resultsFirstSubmitDate"] = state["results_post"]
        sm["resultsFirstSubmitQcDate"] = state["results_post"]
        sm["resultsFirstPostDateStruct"] = {"date": state["results_post"], "type": "ACTUAL"}
    sm["lastUpdateSubmitDate"] = state["last_update"]
    sm["lastUpdatePostDateStruct"] = {"date": state["last_update"], "type": "ACTUAL"}

    spons: dict[str, Any] = {"responsibleParty": {"type": "SPONSOR"}, "leadSponsor": content["sponsor"]}
    if content["collaborators"]:
        spons["collaborators"] = content["collaborators"]

    desc: dict[str, Any] = {"briefSummary": content["summary"]}
    if content["detailed"]:
        desc["detailedDescription"] = content["detailed"]
    cm: dict[str, Any] = {"conditions": content["conditions"]}
    if content["keywords"]:
        cm["keywords"] = content["keywords"]

    design = dict(content["design"])
    design["enrollmentInfo"] = {"count": state["enrollment"][0], "type": state["enrollment"][1]}

    primary = content["primary"]
    if state["outcome_edits"]:
        primary = list(primary)
        for i, text in state["outcome_edits"]:
            primary[i] = {**primary[i], "measure": text}
    om: dict[str, Any] = {"primaryOutcomes": primary}
    if content["secondary"]:
        om["secondaryOutcomes"] = content["secondary"]
    if content["other"]:
        om["otherOutcomes"] = content["other"]

    site_status = content["site_status"]
    locs = content["locations"]
    if site_status is not None:
        locs = [_with_status(loc, site_status) for loc in locs]
    if state["extra_sites"]:
        locs = list(locs) + [_with_status(loc, site_status) for loc in state["extra_sites"]]
    clm: dict[str, Any] = {}
    if content["has_central"]:
        clm["centralContacts"] = content["central"]
    clm["overallOfficials"] = content["officials"]
    clm["locations"] = locs

    proto: dict[str, Any] = {
        "identificationModule": ident,
        "statusModule": sm,
        "sponsorCollaboratorsModule": spons,
        "oversightModule": content["oversight"],
        "descriptionModule": desc,
        "conditionsModule": cm,
        "designModule": design,
        "armsInterventionsModule": {"armGroups": content["arm_groups"], "interventions": content["interventions"]},
        "outcomesModule": om,
        "eligibilityModule": content["eligibility"],
        "contactsLocationsModule": clm,
    }
    if content["references"]:
        proto["referencesModule"] = {"references": content["references"]}
    proto["ipdSharingStatementModule"] = content["ipd"]
    return proto


#: Module labels of the history endpoint, by protocol module key.
MODULE_LABELS = {
    "identificationModule": "Study Identification",
    "statusModule": "Study Status",
    "sponsorCollaboratorsModule": "Sponsor/Collaborators",
    "oversightModule": "Oversight",
    "descriptionModule": "Study Description",
    "conditionsModule": "Conditions",
    "designModule": "Study Design",
    "armsInterventionsModule": "Arms and Interventions",
    "outcomesModule": "Outcome Measures",
    "eligibilityModule": "Eligibility",
    "contactsLocationsModule": "Contacts/Locations",
    "referencesModule": "References",
    "ipdSharingStatementModule": "IPD Sharing Statement",
}


def changed_modules(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """History ``moduleLabels``: every module of a first version, else those that differ."""
    if old is None:
        return [MODULE_LABELS[k] for k in new if k in MODULE_LABELS]
    labels = [MODULE_LABELS[k] for k in new if k in MODULE_LABELS and old.get(k) != new[k]]
    return labels
