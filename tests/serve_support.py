"""A small database for the ``serve`` tests: two registry copies of one trial, its history,
a trial whose title holds ``<script>``, a tag, and a change of a kind serve does not know;
a EudraCT record linked to the trial by its secondary IDs (``trial_links``, derived by the
real linking code), and an open discrepancy and an open flag raised through the store
(with their ``changes`` events), the flag's summary holding ``<script>``."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.diff import content_hash, diff_records
from pipeline.linking import link_records
from pipeline.plan import Update
from pipeline.record import empty_record
from pipeline.store import Store

TRIAL = "NCT01234567"
HOSTILE = "NCT07654321"
HOSTILE_TITLE = "<script>alert('x')</script> & <b>bold</b> trial"
EUDRACT = "EUCTR2020-001234-56-DE"
DISCREPANCY_SUMMARY = ("the WHO copy EUCTR2020-001234-56-DE, last refreshed 2020-12-12, says recruiting;"
                       " ClinicalTrials.gov has said active, not recruiting since 2026-11-01")
FLAG_SUMMARY = "primary completion 2024-01-31 <script>alert('flag')</script>, and no results posted"
LONG_OLD = ("Adults aged 18 to 65 with confirmed infection who give written consent and can attend every visit "
            "of the study at one of the sites for twelve months after the first dose.")
LONG_NEW = LONG_OLD.replace("18 to 65", "18 to 80").replace("twelve months", "six months")


def _record(trial_id, source, **fields):
    record = empty_record(trial_id, source, "ClinicalTrials.gov" if source == "ctgov" else "WHO ICTRP")
    record.update(fields)
    return record


def _save(store, run, trial_id, source, old, new, outcome):
    changes = diff_records(old, new) if old is not None else []
    store.save_update(Update(trial_id, source, outcome, record=new, content_hash=content_hash(new),
                             raw=json.dumps(new).encode(), raw_format="json", new_snapshot=True,
                             changes=changes), run)


def build_database(path: Path) -> Path:
    store = Store(path)
    run = store.start_run(["ctgov", "who"], "test")
    v1 = _record(TRIAL, "ctgov", public_title="Remdesivir for adults with COVID-19", recruitment_status="recruiting",
                 conditions=["COVID-19"], target_size=100, inclusion_criteria=LONG_OLD, phase="Phase 3",
                 secondary_ids=["2020-001234-56"])
    v2 = {**v1, "target_size": 120, "conditions": ["COVID-19", "Pneumonia"]}
    v3 = {**v2, "recruitment_status": "active_not_recruiting", "inclusion_criteria": LONG_NEW}
    _save(store, run, TRIAL, "ctgov", None, v1, "new")
    _save(store, run, TRIAL, "ctgov", v1, v2, "changed")
    _save(store, run, TRIAL, "ctgov", v2, v3, "changed")
    who = _record(TRIAL, "who", public_title="Remdesivir for adults with COVID-19", recruitment_status="not_recruiting",
                  conditions=["COVID-19"], target_size=120)
    _save(store, run, TRIAL, "who", None, who, "new")
    h1 = _record(HOSTILE, "ctgov", public_title=HOSTILE_TITLE, recruitment_status="recruiting",
                 primary_sponsor="<img src=x onerror=alert(1)>")
    h2 = {**h1, "recruitment_status": "completed", "primary_sponsor": "</td><script>alert(2)</script>"}
    _save(store, run, HOSTILE, "ctgov", None, h1, "new")
    _save(store, run, HOSTILE, "ctgov", h1, h2, "changed")
    eu = _record(EUDRACT, "who", public_title="Remdesivir in adults hospitalised with COVID-19",
                 recruitment_status="recruiting", target_size=120)
    _save(store, run, EUDRACT, "who", None, eu, "new")
    store.save_watch_tags({"covid": (TRIAL,)})
    rows, _gone = store.link_state()
    ids = store.secondary_ids_of(r.snapshot_id for r in rows.values())
    keys = link_records({m: {"secondary_ids": json.loads(ids[r.snapshot_id])} for m, r in rows.items()})
    store.save_trial_links(keys)
    refs = {f"{s}:{t}" for t, s in keys}
    store.save_trial_events({
        ("discrepancy", "recruitment_status", f"who:{EUDRACT} ctgov:{TRIAL}"): {
            "trial_key": TRIAL, "detail": {"significance": "status", "summary": DISCREPANCY_SUMMARY}},
        ("flag", "results_overdue", f"ctgov:{TRIAL}"): {
            "trial_key": TRIAL, "detail": {"significance": "other", "severity": "major", "summary": FLAG_SUMMARY}},
    }, refs, run, "2026-11-30T11:00:00Z")
    # a change row of a kind this code does not know (the cross-registry issue's discrepancy)
    store.conn.execute(
        "INSERT INTO changes (trial_id, source, field, old, new, significance, kind, detected_at)"
        " VALUES (?, 'ctgov', 'target_size', ?, ?, 'enrollment', 'discrepancy', '2026-11-30T10:00:00Z')",
        (TRIAL, json.dumps({"summary": "both say 120"}), json.dumps({"summary": "ctgov 120, who <i>100</i>"})),
    )
    store.close()
    return path
