"""The registry simulator, over real sockets.

The simulator stands in for ClinicalTrials.gov API v2 and the WHO ICTRP portal in
tests, the demo and the benchmark, so these tests pin what it serves to the real
registries' shapes (the recorded fixtures and the project's own parsers read it), and
pin its scripted behaviour (day 1), its paging, filters, history and every fault kind.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from pathlib import Path

import httpx
import orjson
import pytest

from pipeline.simulator import Corpus, SimulatorServer
from pipeline.simulator.corpus import entity_escape
from pipeline.simulator.faults import KINDS, FaultSet
from pipeline.trial_ids import normalize_trial_id

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server():
    """A read-only 25-trial simulator (21 NCT, 4 WHO-only); tests must not advance it."""
    with SimulatorServer(Corpus(size=25, seed=1)) as srv:
        yield srv


@pytest.fixture()
def fresh():
    """A 25-trial simulator of its own, for tests that change time, faults or trials."""
    with SimulatorServer(Corpus(size=25, seed=1)) as srv:
        yield srv


@pytest.fixture()
def client(server):
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        yield c


def _ids(body: bytes) -> list[str]:
    return [s["protocolSection"]["identificationModule"]["nctId"] for s in orjson.loads(body)["studies"]]


def _all_pages(c: httpx.Client, params: dict) -> tuple[list[str], int]:
    ids, pages, token = [], 0, None
    while True:
        p = dict(params)
        if token:
            p["pageToken"] = token
        r = c.get("/api/v2/studies", params=p)
        assert r.status_code == 200, r.text
        doc = r.json()
        ids += [s["protocolSection"]["identificationModule"]["nctId"] for s in doc["studies"]]
        pages += 1
        token = doc.get("nextPageToken")
        if not token:
            return ids, pages


# ----------------------------------------------------------------------------- corpus


def test_ids_are_valid_and_in_corpus_order():
    c = Corpus(size=100, seed=3)
    ids = c.ids
    assert len(ids) == len(set(ids)) == 100
    assert all(normalize_trial_id(i) == i for i in ids)
    assert all(i.startswith("NCT9") and len(i) == 11 for i in ids[:8])
    assert ids[8].startswith("ChiCTR")
    who_only = c.who_only_ids
    assert 15 <= len(who_only) <= 22
    prefixes = {re.match(r"[A-Za-z]+", i).group(0) for i in who_only}
    assert prefixes == {"ChiCTR", "ISRCTN", "CTRI", "IRCT", "DRKS", "ACTRN"}
    assert c.nct_ids == sorted(c.nct_ids)


def test_same_seed_same_bytes_other_seed_other_bytes():
    a, b, other = Corpus(size=30, seed=7), Corpus(size=30, seed=7), Corpus(size=30, seed=8)
    for tid in a.ids:
        assert a.who_page(tid) == b.who_page(tid)
        if tid.startswith("NCT"):
            assert a.study_bytes(tid) == b.study_bytes(tid)
    assert a.study_bytes(a.ids[0]) != other.study_bytes(other.ids[0])
    ea, eb = Corpus(size=300, seed=7, change_rate=0.05), Corpus(size=300, seed=7, change_rate=0.05)
    assert ea.advance(3) == eb.advance(3)
    assert [ea.study_bytes(t) for t in ea.nct_ids] == [eb.study_bytes(t) for t in eb.nct_ids]


def test_size_distribution_follows_real_records():
    """Measured for seed 1, 400 trials (332 NCT studies), bytes of the study JSON:
    <10 KB 7%, 10-20 KB 39%, 20-30 KB 25%, 30-60 KB 16%, 60-150 KB 7%, 300-500 KB 5%;
    median ~21 KB (the real fixtures: 7-151 KB, plus 369 KB and 505 KB)."""
    c = Corpus(size=400, seed=1)
    sizes = sorted(len(c.study_bytes(t)) for t in c.nct_ids)
    bins = [(0, 10e3), (10e3, 20e3), (20e3, 30e3), (30e3, 60e3), (60e3, 150e3), (150e3, 300e3), (300e3, 600e3)]
    hist = {f"{lo / 1e3:.0f}-{hi / 1e3:.0f} KB": sum(lo <= s < hi for s in sizes) for lo, hi in bins}
    print("study size histogram:", hist, "median", statistics.median(sizes))
    assert 10_000 <= statistics.median(sizes) <= 60_000
    share_normal = sum(10_000 <= s <= 60_000 for s in sizes) / len(sizes)
    assert share_normal >= 0.7
    big = [s for s in sizes if s > 300_000]
    assert 0.02 <= len(big) / len(sizes) <= 0.09
    assert max(sizes) < 520_000
    for tid in c.nct_ids:
        if len(c.study_bytes(tid)) > 300_000:
            study = c.study(tid)
            assert study["hasResults"] is True and "resultsSection" in study
            break


def test_generation_is_fast_and_lazy():
    t0 = time.perf_counter()
    c = Corpus(size=20_000, seed=2)
    made = time.perf_counter() - t0
    assert made < 5, f"Corpus(20000) took {made:.1f}s"
    t0 = time.perf_counter()
    for tid in c.nct_ids[:1000]:
        c.study_bytes(tid)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    for tid in c.nct_ids[:1000]:
        c.study_bytes(tid)
    warm = time.perf_counter() - t0
    print(f"corpus {made:.2f}s; 1000 studies cold {cold:.2f}s, cached {warm:.3f}s")
    assert warm < cold and warm < 1.0


def test_entity_escape_matches_history_endpoint():
    assert entity_escape({"a": ["x/y <b> & 'q' \"z\""]}) == {
        "a": ["x&#x2F;y &lt;b&gt; &amp; &#x27;q&#x27; &quot;z&quot;"]}


# ----------------------------------------------------------------- ClinicalTrials.gov


def test_filter_ids_paging_with_tokens(server, client):
    nct = server.corpus.nct_ids
    assert len(nct) == 21
    ids, pages = _all_pages(client, {"filter.ids": ",".join(nct), "pageSize": 10})
    assert pages == 3
    assert sorted(ids) == sorted(nct) and len(ids) == len(set(ids))
    # pipe and space separators, lower case, other order
    ids2, _ = _all_pages(client, {"filter.ids": "|".join(i.lower() for i in reversed(nct[:5])), "pageSize": 1000})
    assert sorted(ids2) == sorted(nct[:5])


def test_default_page_size_and_count_total(client):
    r = client.get("/api/v2/studies", params={"countTotal": "true"})
    doc = r.json()
    assert r.headers["content-type"].startswith("application/json")
    assert len(doc["studies"]) == 10 and doc["totalCount"] == 21 and doc["nextPageToken"]
    r2 = client.get("/api/v2/studies", params={"countTotal": "true", "pageToken": doc["nextPageToken"]})
    assert "totalCount" not in r2.json()  # first page only, as documented
    r3 = client.get("/api/v2/studies", params={"pageSize": 5000})
    assert len(r3.json()["studies"]) == 21 and "nextPageToken" not in r3.json()


def test_page_token_is_bound_to_the_query(client):
    first = client.get("/api/v2/studies", params={"pageSize": 5}).json()
    token = first["nextPageToken"]
    ok = client.get("/api/v2/studies", params={"pageSize": 7, "pageToken": token})  # pageSize may change
    assert ok.status_code == 200 and len(ok.json()["studies"]) == 7
    other = client.get("/api/v2/studies", params={"pageSize": 5, "pageToken": token, "query.cond": "cancer"})
    assert other.status_code == 400 and other.headers["content-type"].startswith("text/plain")
    bad = client.get("/api/v2/studies", params={"pageSize": 5, "pageToken": "NF0g5JaGmg"})
    assert bad.status_code == 400
    assert client.get("/api/v2/studies", params={"filter.ids": "NCT1,XYZ"}).status_code == 400
    assert client.get("/api/v2/studies", params={"filter.overallStatus": "DONE"}).status_code == 400
    assert client.get("/api/v2/studies", params={"no.such": "x"}).status_code == 400


def test_fields_trimming(server, client):
    for fields in ("NCTId", "protocolSection.identificationModule.nctId"):
        doc = client.get("/api/v2/studies", params={"fields": fields, "pageSize": 3}).json()
        assert doc["studies"] == [{"protocolSection": {"identificationModule": {"nctId": i}}}
                                  for i in server.corpus.nct_ids[:3]]
    doc = client.get("/api/v2/studies", params={"fields": "NCTId|OverallStatus", "pageSize": 1}).json()
    assert doc["studies"][0]["protocolSection"]["statusModule"] == {"overallStatus": "RECRUITING"}
    one = client.get(f"/api/v2/studies/{server.corpus.nct_ids[0]}", params={"fields": "NCTId"}).json()
    assert one == {"protocolSection": {"identificationModule": {"nctId": server.corpus.nct_ids[0]}}}


def test_status_and_query_filters(server, client):
    c = server.corpus
    ids, _ = _all_pages(client, {"filter.overallStatus": "RECRUITING,COMPLETED", "pageSize": 100})
    assert ids and all(c.get(i).state["status"] in ("RECRUITING", "COMPLETED") for i in ids)
    study = c.study(c.nct_ids[0])
    cond = study["protocolSection"]["conditionsModule"]["conditions"][0]
    ids, _ = _all_pages(client, {"query.cond": cond.lower(), "pageSize": 100})
    assert c.nct_ids[0] in ids
    assert all(any(cond.lower() in x.lower() for x in c.study(i)["protocolSection"]["conditionsModule"]["conditions"]
                   + c.study(i)["protocolSection"]["conditionsModule"].get("keywords", [])) for i in ids)
    sponsor = study["protocolSection"]["sponsorCollaboratorsModule"]["leadSponsor"]["name"]
    assert c.nct_ids[0] in _all_pages(client, {"query.spons": f'"{sponsor}"'})[0]
    drug = study["protocolSection"]["armsInterventionsModule"]["interventions"][0]["name"]
    assert c.nct_ids[0] in _all_pages(client, {"query.intr": drug, "pageSize": 50})[0]
    assert c.nct_ids[0] in _all_pages(client, {"query.term": c.nct_ids[0]})[0]


def test_single_study_and_404(server, client):
    c = server.corpus
    r = client.get(f"/api/v2/studies/{c.nct_ids[0]}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    study = r.json()
    assert list(study)[0] == "protocolSection" and study["hasResults"] is False
    assert study["derivedSection"]["miscInfoModule"]["versionHolder"] == "2026-01-05"
    assert client.get("/api/v2/studies/NCT00000001").status_code == 404
    r = client.get(f"/api/v2/studies/{c.who_only_ids[0]}")  # WHO-only trials are not on CT.gov
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/plain")


def test_study_has_the_real_shape(server, fixtures_dir: Path):
    """Every module and status/design key the simulator emits exists in real API v2 records."""
    real = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((fixtures_dir / "ctgov" / "v2").glob("NCT*.json"))]
    modules, keys = set(), {}
    for study in real:
        for name, module in study["protocolSection"].items():
            modules.add(name)
            keys.setdefault(name, set()).update(module)
    c = server.corpus
    for tid in c.nct_ids:
        study = c.study(tid)
        assert set(study) <= {"protocolSection", "resultsSection", "derivedSection", "hasResults"}
        for name, module in study["protocolSection"].items():
            assert name in modules, name
            if name in ("statusModule", "designModule", "identificationModule", "eligibilityModule",
                        "contactsLocationsModule", "sponsorCollaboratorsModule", "outcomesModule"):
                assert set(module) <= keys[name], (name, set(module) - keys[name])
        crit = study["protocolSection"]["eligibilityModule"]["eligibilityCriteria"]
        assert crit.startswith("Inclusion Criteria:\n\n") and "\n\nExclusion Criteria:\n\n" in crit
        loc = study["protocolSection"]["contactsLocationsModule"]["locations"][0]
        assert {"facility", "city", "country", "geoPoint"} <= set(loc)


def test_version_moves_after_advance(fresh):
    with httpx.Client(base_url=fresh.ctgov_url) as c:
        before = c.get("/version").json()
        assert before == {"apiVersion": "2.0.3", "dataTimestamp": "2026-01-05T09:00:00"}
        fresh.advance(1)
        assert c.get("/version").json()["dataTimestamp"] == "2026-01-06T09:00:00"
        fresh.advance(1)  # change_rate 0: nothing changes on day 2
        assert c.get("/version").json()["dataTimestamp"] == "2026-01-06T09:00:00"


def test_history_endpoints(fresh):
    c = fresh.corpus
    tid = c.nct_ids[0]
    with httpx.Client(base_url=fresh.base_url) as h:
        r = h.get(f"/api/int/studies/{tid}", params={"history": "true"})
        doc = r.json()
        assert doc["protocolSection"]["identificationModule"]["nctId"] == tid
        changes = doc["history"]["changes"]
        assert [ch["version"] for ch in changes] == list(range(len(changes)))
        assert changes[0]["moduleLabels"][:2] == ["Study Identification", "Study Status"]
        assert changes[-1]["date"] == doc["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"]
        fresh.advance(1)
        after = h.get(f"/api/int/studies/{tid}", params={"history": "true"}).json()["history"]["changes"]
        assert len(after) == len(changes) + 1
        assert after[-1] == {"version": len(changes), "status": "ACTIVE_NOT_RECRUITING", "date": "2026-01-06",
                             "moduleLabels": ["Study Status"]}
        v0 = h.get(f"/api/int/studies/{tid}/history/0").json()
        assert v0["studyVersion"] == 0 and set(v0["study"]) == {"protocolSection", "hasResults"}
        crit = v0["study"]["protocolSection"]["eligibilityModule"]["eligibilityCriteria"]
        assert crit.startswith("<p>Inclusion Criteria:</p><") and "</li>" in crit
        text = json.dumps(v0["study"]["protocolSection"]["descriptionModule"])
        assert "&#x2F;" in json.dumps(v0) and "</" not in text
        prev = h.get(f"/api/int/studies/{tid}/history/{len(changes) - 1}").json()
        assert prev["study"]["protocolSection"]["statusModule"]["overallStatus"] == "RECRUITING"
        last = h.get(f"/api/int/studies/{tid}/history/{len(changes)}").json()
        assert last["study"]["protocolSection"]["statusModule"]["overallStatus"] == "ACTIVE_NOT_RECRUITING"
        assert h.get(f"/api/int/studies/{tid}/history/{len(changes) + 1}").status_code == 404
        assert h.get("/api/int/studies/NCT00000001/history/0").status_code == 404


def test_date_range_filter(fresh):
    c = fresh.corpus
    fresh.advance(1)
    changed = {"NCT90000001", "NCT90000002", "NCT90000003", "NCT90000005", "NCT90000006", "NCT90000007"}
    with httpx.Client(base_url=fresh.base_url) as h:
        since, _ = _all_pages(h, {"filter.advanced": "AREA[LastUpdatePostDate]RANGE[2026-01-06,MAX]"})
        assert set(since) == changed  # the deleted NCT90000004 is never revealed by an incremental query
        both, _ = _all_pages(h, {"filter.advanced": "AREA[LastUpdatePostDate]RANGE[2026-01-06,2026-01-06]"})
        assert set(both) == changed
        older, _ = _all_pages(h, {"filter.advanced": "AREA[LastUpdatePostDate]RANGE[MIN,2026-01-05]", "pageSize": 50})
        assert set(older) == set(c.nct_ids) - changed - {"NCT90000004"}
        for tid in since:
            assert c.study(tid)["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] == "2026-01-06"
        assert h.get("/api/v2/studies", params={"filter.advanced": "AREA[Phase]PHASE2"}).status_code == 400


# ---------------------------------------------------------------------- time passing


def test_scripted_day_one(fresh):
    c = fresh.corpus
    first12 = c.ids[:12]
    with httpx.Client(base_url=fresh.base_url) as h:
        events = h.post("/_sim/advance", params={"days": 1}).json()
        assert h.get("/_sim/events").json() == events
    got = [(e["trial_id"], e["kind"], e["field"], e["old"], e["new"], e["source"]) for e in events]
    outcome_old = events[2]["old"]
    assert got == [
        (first12[0], "status", "recruitment_status", "RECRUITING", "ACTIVE_NOT_RECRUITING", "both"),
        (first12[1], "enrollment", "target_size", events[1]["old"], events[1]["old"] + 40, "both"),
        (first12[2], "outcome", "primary_outcomes", outcome_old, events[2]["new"], "both"),
        (first12[3], "deleted", "_record", "present", "deleted", "both"),
        (first12[4], "status", "recruitment_status", "RECRUITING", "TERMINATED", "both"),
        (first12[5], "date", "completion_date", events[5]["old"], events[5]["new"], "ctgov"),
        (first12[6], "site", "locations", None, events[6]["new"], "both"),
        (first12[8], "status", "recruitment_status", "Recruiting", "Not Recruiting", "who"),
    ]
    assert all(e["day"] == 1 and e["date"] == "2026-01-06" for e in events)
    assert events[4]["why_stopped"]
    assert outcome_old != events[2]["new"]
    # the state behind the events
    s = c.study(first12[4])["protocolSection"]["statusModule"]
    assert s["overallStatus"] == "TERMINATED" and s["whyStopped"] == events[4]["why_stopped"]
    assert c.study(first12[1])["protocolSection"]["designModule"]["enrollmentInfo"]["count"] == events[1]["new"]
    assert c.study(first12[2])["protocolSection"]["outcomesModule"]["primaryOutcomes"][0]["measure"] == events[2]["new"]
    assert c.study(first12[5])["protocolSection"]["statusModule"]["completionDateStruct"]["date"] == events[5]["new"]
    assert c.study(first12[6])["protocolSection"]["contactsLocationsModule"]["locations"][-1]["country"] == events[6]["country"]
    assert b"Not Recruiting" in c.who_page(first12[8])
    # nothing else changed among the first 12; noise moved for everyone
    for tid in (first12[7], first12[9], first12[10], first12[11]):
        s = c.study(tid)
        assert s["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] < "2026-01-06"
        assert s["derivedSection"]["miscInfoModule"]["versionHolder"] == "2026-01-06"
    assert fresh.advance(1) == []  # change_rate 0.0: day 2 is quiet


def test_noise_never_looks_like_a_change(fresh):
    c = fresh.corpus
    tid = c.ids[7]  # untouched on day 1
    study0, page0 = c.study(tid), c.who_page(tid)
    c.advance(1)
    study1 = c.study(tid)
    assert study1["derivedSection"]["miscInfoModule"]["versionHolder"] == "2026-01-06"
    study1["derivedSection"]["miscInfoModule"]["versionHolder"] = "2026-01-05"
    assert study1 == study0
    assert c.who_page(tid) == page0  # WHO refreshes weekly
    c.advance(6)
    page7 = c.who_page(tid)
    assert b"12 January 2026" in page7 and b"5 January 2026" in page0
    assert page7.replace(b"12 January 2026", b"5 January 2026") == page0


def test_deleted_trial_vanishes_and_can_reappear(fresh):
    c = fresh.corpus
    gone = c.ids[3]
    fresh.advance(1)
    with httpx.Client(base_url=fresh.base_url) as h:
        assert h.get(f"/api/v2/studies/{gone}").status_code == 404
        assert h.get(f"/api/int/studies/{gone}", params={"history": "true"}).status_code == 404
        ids, _ = _all_pages(h, {"pageSize": 100})
        assert gone not in ids and len(ids) == 20
        ids, _ = _all_pages(h, {"filter.ids": ",".join(c.nct_ids)})
        assert gone not in ids
        page = h.get("/Trial2.aspx", params={"TrialID": gone})
        assert page.status_code == 200 and b"TrialIDLabel" not in page.content and b'id="DataList8"' in page.content
        ev = h.post("/_sim/restore", params={"id": gone}).json()
        assert ev["kind"] == "restored" and ev["trial_id"] == gone
        assert h.get(f"/api/v2/studies/{gone}").status_code == 200
        assert gone in _all_pages(h, {"pageSize": 100})[0]
        assert b"TrialIDLabel" in h.get("/Trial2.aspx", params={"TrialID": gone}).content
        assert h.post("/_sim/restore", params={"id": gone}).status_code == 400
        assert h.post("/_sim/restore", params={"id": "NCT00000001"}).status_code == 404


def test_random_changes_at_change_rate():
    c = Corpus(size=500, seed=4, change_rate=0.02)
    events = c.advance(1)
    random_events = [e for e in events if not e.get("scripted")]
    assert len(random_events) == round(0.02 * (500 - 12))
    assert {e["trial_id"] for e in random_events}.isdisjoint(c.ids[:12])
    kinds = {e["kind"] for e in c.advance(5)}
    assert {"status", "enrollment"} <= kinds
    for e in c.events:
        t = c.get(e["trial_id"])
        if not t.deleted and t.is_nct and e["kind"] != "restored":
            assert c.study(t.trial_id)["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] >= e["date"]
    assert all(e["source"] in ("ctgov", "who", "both") for e in c.events)
    assert all(e["source"] == "who" for e in c.events if not e["trial_id"].startswith("NCT"))


# ------------------------------------------------------------------------------- WHO


def test_who_pages(server, client, fixtures_dir: Path):
    c = server.corpus
    real = (fixtures_dir / "who" / "html" / "ChiCTR2100045397.html").read_text(encoding="utf-8")
    real_nf = (fixtures_dir / "who" / "html" / "not_found__ChiCTR-2100045397.html").read_text(encoding="utf-8")
    table_ids = re.findall(r'<table id="(DataList\w*)"', real)
    r = client.get("/Trial2.aspx", params={"TrialID": c.ids[0]})
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    page = r.text
    assert re.findall(r'<table id="(DataList\w*)"', page) == ["DataList3"] + table_ids
    real_spans = set(re.findall(r'id="(DataList3_ctl01_\w+)"', real))
    assert set(re.findall(r'id="(DataList3_ctl01_\w+)"', page)) == real_spans
    assert '<span id="DataList3_ctl01_TrialIDLabel">NCT90000001</span>' in page
    assert '<span id="DataList3_ctl01_Recruitment_statusLabel" style="display:inline-block;">Recruiting</span>' in page
    assert re.search(r'id="DataList3_ctl01_Date_registrationLabel">\d\d/\d\d/\d{4}<', page)
    assert 'href="https://clinicaltrials.gov/show/NCT90000001"' in page
    chictr = client.get("/Trial2.aspx", params={"trialid": c.ids[8]}).text
    sci = re.search(r'id="DataList3_ctl01_Scientific_titleLabel">([^<]*)<', chictr).group(1)
    assert len(sci) == 2000 and sci.endswith(" ")
    assert re.search(r'id="DataList3_ctl01_Date_registrationLabel">\d{4}-\d\d-\d\d<', chictr)
    nf = client.get("/Trial2.aspx", params={"TrialID": "ChiCTR-2100045397"}).text
    assert re.findall(r'<table id="(DataList\w*)"', nf) == re.findall(r'<table id="(DataList\w*)"', real_nf)
    assert "DataList3_ctl01" not in nf


def test_who_text_is_escaped():
    c = Corpus(size=12, seed=1)
    t = c.get(c.ids[0])
    view = dict(c.who_view(t))
    view["public_title"] = "A <b>bold</b> & 'odd' \"title\"\nline two"
    from pipeline.simulator.render_who import trial_page

    page = trial_page(view).decode()
    assert ("A &lt;b&gt;bold&lt;/b&gt; &amp; &#x27;odd&#x27; &quot;title&quot;\n<br>line two") in page


# ------------------------------------------------------------------------ the parsers


def test_project_parsers_read_the_simulator(server, client):
    parse_ctgov = pytest.importorskip("pipeline.sources.ctgov.parse")
    parse_who = pytest.importorskip("pipeline.sources.who.page")
    c = server.corpus
    for tid in c.ids[:12]:
        t = c.get(tid)
        who = parse_who.parse_trial_page(client.get("/Trial2.aspx", params={"TrialID": tid}).content, tid)
        assert who["trial_id"] == tid
        assert who["public_title"] == c.protocol(t)["identificationModule"]["briefTitle"]
        assert who["recruitment_status"] == ("recruiting" if t.state["status"] == "RECRUITING" else "not_recruiting")
        if t.is_nct:
            rec = parse_ctgov.normalize_study(parse_ctgov.parse_study(client.get(f"/api/v2/studies/{tid}").content))
            assert rec["trial_id"] == tid
            assert rec["recruitment_status"] == t.state["status"].lower()
            assert rec["target_size"] == t.state["enrollment"][0] == who["target_size"]
            assert rec["public_title"] == who["public_title"]
            assert sorted(rec["countries"]) == sorted(who["countries"])
    body = client.get("/api/v2/studies", params={"pageSize": 5, "countTotal": "true"}).content
    studies, token, total = parse_ctgov.parse_studies_page(body)
    assert len(studies) == 5 and token and total == 21
    v, study = parse_ctgov.parse_history_version(client.get(f"/api/int/studies/{c.nct_ids[0]}/history/0").content)
    assert v == 0
    live = parse_ctgov.normalize_study(c.study(c.nct_ids[0]))
    old = parse_ctgov.normalize_study(study)
    assert old["inclusion_criteria"] == live["inclusion_criteria"]
    assert old["public_title"] == live["public_title"]
    index = parse_ctgov.parse_history_index(client.get(f"/api/int/studies/{c.nct_ids[0]}", params={"history": "true"}).content)
    assert index[0]["version"] == 0 and index[0]["modules"]
    assert parse_who.parse_trial_page(client.get("/Trial2.aspx", params={"TrialID": "NCT00000001"}).content, "NCT00000001") is None


# ----------------------------------------------------------------------------- faults


def test_fault_set_counts_are_exact_under_threads():
    import threading

    fs = FaultSet()
    fs.set([{"match": "/api", "kind": "500", "count": 50}])
    taken = []

    def worker():
        for _ in range(40):
            if fs.take("/api/v2/studies") is not None:
                taken.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(taken) == 50
    with pytest.raises(ValueError):
        fs.set([{"kind": "nope"}])
    assert set(KINDS) >= {"429", "500", "502", "503", "reset", "timeout", "slow_drip", "truncate", "invalid_json",
                          "html_instead_of_json", "empty_200", "bot_check", "access_denied", "error_page",
                          "layout_change", "huge", "deep_json", "script_title", "control_chars"}


def test_fault_429_both_retry_after_forms_and_count(fresh):
    study = f"/api/v2/studies/{fresh.corpus.nct_ids[0]}"
    with httpx.Client(base_url=fresh.base_url) as h:
        r = h.post("/_sim/faults", json=[{"match": "/api/v2/studies/", "kind": "429", "count": 2, "retry_after": 3}])
        assert r.status_code == 200 and r.json()[0]["count"] == 2
        for _ in range(2):
            r = h.get(study)
            assert r.status_code == 429 and r.headers["Retry-After"] == "3"
        assert h.get(study).status_code == 200
        fresh.set_faults([{"match": "^/Trial2", "kind": "429", "count": 1, "retry_after": 5, "retry_after_date": True}])
        r = h.get("/Trial2.aspx", params={"TrialID": fresh.corpus.ids[0]})
        assert r.status_code == 429
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(r.headers["Retry-After"]).timestamp()
        assert 2 < when - time.time() < 8
        stats = h.get("/_sim/stats").json()
        assert stats["faults"]["429"] == 3 and stats["requests"]["ctgov.study"] == 3


def test_fault_status_codes_and_blocked_pages(fresh):
    tid = fresh.corpus.ids[0]
    with httpx.Client(base_url=fresh.base_url) as h:
        for kind in ("500", "502", "503"):
            fresh.set_faults([{"kind": kind, "count": 1}])
            assert h.get(f"/api/v2/studies/{tid}").status_code == int(kind)
        fresh.set_faults([{"kind": "500", "count": 1}])
        r = h.get("/Trial2.aspx", params={"TrialID": tid})
        assert r.status_code == 500 and "Server Error in '/' Application." in r.text
        for kind, marker in (("bot_check", "Just a moment"), ("access_denied", "Access Denied"),
                             ("error_page", "Server Error in '/' Application.")):
            fresh.set_faults([{"match": "/Trial2.aspx", "kind": kind, "count": 1}])
            r = h.get("/Trial2.aspx", params={"TrialID": tid})
            assert r.status_code == 200 and marker in r.text
        fresh.set_faults([{"kind": "html_instead_of_json", "count": 1}])
        r = h.get(f"/api/v2/studies/{tid}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        fresh.set_faults([{"kind": "empty_200", "count": 1}])
        r = h.get(f"/api/v2/studies/{tid}")
        assert r.status_code == 200 and r.content == b""
        assert h.get(f"/api/v2/studies/{tid}").status_code == 200


def test_blocked_pages_and_layout_change_are_recognized_by_the_parser(fresh):
    parse_who = pytest.importorskip("pipeline.sources.who.page")
    from pipeline.errors import BlockedPageError, ParseError

    tid = fresh.corpus.ids[0]
    with httpx.Client(base_url=fresh.base_url) as h:
        for kind in ("bot_check", "access_denied", "error_page"):
            fresh.set_faults([{"kind": kind, "count": 1}])
            with pytest.raises(BlockedPageError):
                parse_who.parse_trial_page(h.get("/Trial2.aspx", params={"TrialID": tid}).content, tid)
        fresh.set_faults([{"kind": "layout_change", "count": 1}])
        page = h.get("/Trial2.aspx", params={"TrialID": tid}).content
        assert b"DataList3_ctl01_" not in page and b"Public_title" in page
        with pytest.raises(ParseError):
            parse_who.parse_trial_page(page, tid)
        fresh.set_faults([{"kind": "layout_change", "count": 1}])
        body = h.get(f"/api/v2/studies/{tid}").content
        assert b'"protocolSection"' not in body and orjson.loads(body)


def test_fault_reset_timeout_slow_drip_truncate(fresh):
    tid = fresh.corpus.nct_ids[0]
    path = f"/api/v2/studies/{tid}"
    with httpx.Client(base_url=fresh.base_url, timeout=5) as h:
        normal = h.get(path).content
        fresh.set_faults([{"kind": "reset", "count": 1}])
        with pytest.raises(httpx.TransportError):
            h.get(path)
        assert h.get(path).content == normal
        fresh.set_faults([{"kind": "timeout", "delay": 1.0, "count": 1}])
        with pytest.raises(httpx.ReadTimeout):
            h.get(path, timeout=0.3)
        fresh.set_faults([{"kind": "timeout", "delay": 0.3, "count": 1}])
        t0 = time.perf_counter()
        assert h.get(path).content == normal and time.perf_counter() - t0 >= 0.3
        fresh.set_faults([{"kind": "slow_drip", "chunk": 2000, "interval": 0.02, "count": 1}])
        t0 = time.perf_counter()
        assert h.get(path).content == normal
        assert time.perf_counter() - t0 >= 0.02 * (len(normal) // 2000)
        fresh.set_faults([{"kind": "truncate", "count": 1}])
        with pytest.raises(httpx.RemoteProtocolError):
            h.get(path)
        fresh.set_faults([{"kind": "truncate", "mode": "cut", "count": 1}])
        r = h.get(path)
        assert r.status_code == 200 and r.content == normal[:len(normal) // 2]
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(r.content)
        assert h.get(path).content == normal


def test_fault_bad_bodies(fresh):
    tid = fresh.corpus.nct_ids[0]
    path = f"/api/v2/studies/{tid}"
    with httpx.Client(base_url=fresh.base_url, timeout=10) as h:
        fresh.set_faults([{"kind": "invalid_json", "count": 1}])
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(h.get(path).content)
        fresh.set_faults([{"kind": "deep_json", "count": 1}])
        body = h.get(path).content
        assert body.startswith(b'{"a":{"a":') and body.count(b"{") == 100_000
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(body)
        for content_length in (False, True):
            fresh.set_faults([{"kind": "huge", "size": 3_000_000, "content_length": content_length, "count": 1}])
            with h.stream("GET", path) as r:
                assert ("content-length" in r.headers) is content_length
                assert sum(len(chunk) for chunk in r.iter_bytes()) == 3_000_000
        fresh.set_faults([{"kind": "huge", "count": 1}])  # default 50 MB: read a little, then hang up
        with h.stream("GET", path) as r:
            got = 0
            for chunk in r.iter_bytes():
                got += len(chunk)
                if got > 5_000_000:
                    break
        assert h.get(path).status_code == 200


def test_fault_hostile_titles(fresh):
    c = fresh.corpus
    tid = c.nct_ids[1]
    with httpx.Client(base_url=fresh.base_url) as h:
        fresh.set_faults([{"kind": "script_title", "count": 2}])
        study = h.get(f"/api/v2/studies/{tid}").json()
        title = study["protocolSection"]["identificationModule"]["briefTitle"]
        assert "<script>alert(1)</script>" in title and "'); DROP TABLE snapshots;--" in title
        page = h.get("/Trial2.aspx", params={"TrialID": tid}).content
        assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page and b"<script>alert" not in page
        parse_who = pytest.importorskip("pipeline.sources.who.page")
        rec = parse_who.parse_trial_page(page, tid)
        assert "<script>alert(1)</script>" in rec["public_title"]
        fresh.set_faults([{"kind": "script_title", "trial": c.nct_ids[2], "count": 1}])
        doc = h.get("/api/v2/studies", params={"filter.ids": ",".join(c.nct_ids[:3])}).json()
        titles = [s["protocolSection"]["identificationModule"]["briefTitle"] for s in doc["studies"]]
        assert ["<script>" in t for t in titles] == [False, False, True]
        fresh.set_faults([{"kind": "control_chars", "count": 2}])
        raw = h.get(f"/api/v2/studies/{tid}").content
        assert b"\xff\xfe" in raw and b"\x00" in raw
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(raw)
        page = h.get("/Trial2.aspx", params={"TrialID": tid}).content
        assert b"\x1b[31m" in page and b"\xff\xfe" in page
        assert parse_who.parse_trial_page(page, tid)["trial_id"] == tid
        fresh.set_faults([{"kind": "control_chars", "mode": "escaped", "count": 1}])
        title = h.get(f"/api/v2/studies/{tid}").json()["protocolSection"]["identificationModule"]["briefTitle"]
        assert "\x00" in title and "\x1b" in title


def test_fault_matching_rules(fresh):
    c = fresh.corpus
    with httpx.Client(base_url=fresh.base_url) as h:
        fresh.set_faults([{"match": "/api/v2/studies", "kind": "503", "trial": c.nct_ids[1]}])
        assert h.get(f"/api/v2/studies/{c.nct_ids[0]}").status_code == 200
        assert h.get(f"/api/v2/studies/{c.nct_ids[1]}").status_code == 503
        assert h.get("/api/v2/studies", params={"filter.ids": f"{c.nct_ids[0]},{c.nct_ids[1]}"}).status_code == 503
        assert h.get("/Trial2.aspx", params={"TrialID": c.nct_ids[1]}).status_code == 200
        fresh.set_faults([{"match": r"^/api/v2/studies\?.*pageToken=", "kind": "500", "count": 1}])
        first = h.get("/api/v2/studies").json()
        assert h.get("/api/v2/studies", params={"pageToken": first["nextPageToken"]}).status_code == 500
        fresh.set_faults([{"kind": "502", "skip": 2, "count": 1}])
        codes = [h.get("/api/v2/version").status_code for _ in range(4)]
        assert codes == [200, 200, 502, 200]
        fresh.set_faults([{"kind": "reset"}])  # the control API is never faulted
        assert h.get("/_sim/faults").json()[0]["kind"] == "reset"
        assert h.delete("/_sim/faults").json() == []
        assert h.post("/_sim/faults", json=[{"kind": "bogus"}]).status_code == 400
        assert h.get("/api/v2/version").status_code == 200


# ---------------------------------------------------------------------- concurrency


def test_concurrent_clients_while_time_passes():
    import threading

    corpus = Corpus(size=300, seed=9, change_rate=0.05)
    errors: list[str] = []
    with SimulatorServer(corpus) as srv:
        stop = threading.Event()

        def client_loop(k: int) -> None:
            with httpx.Client(base_url=srv.base_url, timeout=20) as h:
                i = 0
                while not stop.is_set():
                    tid = corpus.ids[(k * 37 + i) % len(corpus.ids)]
                    i += 1
                    try:
                        if tid.startswith("NCT"):
                            r = h.get(f"/api/v2/studies/{tid}")
                            if r.status_code == 200:
                                orjson.loads(r.content)
                            elif r.status_code != 404:
                                errors.append(f"{tid}: {r.status_code}")
                        r = h.get("/Trial2.aspx", params={"TrialID": tid})
                        if r.status_code != 200 or b"</html>" not in r.content:
                            errors.append(f"WHO {tid}: {r.status_code}")
                        r = h.get("/api/v2/studies", params={"pageSize": 50, "fields": "NCTId",
                                                             "filter.advanced": "AREA[LastUpdatePostDate]RANGE[2026-01-06,MAX]"})
                        if r.status_code != 200:
                            errors.append(f"list: {r.status_code} {r.text[:80]}")
                    except httpx.HTTPError as exc:
                        errors.append(repr(exc))

        threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(6)]
        for th in threads:
            th.start()
        events = []
        for _ in range(5):
            events += srv.advance(1)
            time.sleep(0.1)
        stop.set()
        for th in threads:
            th.join()
    assert not errors, errors[:5]
    assert len(events) > 50


def test_serve_entry_point_prints_urls():
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", "from pipeline.simulator import serve; serve(port=0, size=15, seed=2)"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        url = re.search(r"(http://127\.0\.0\.1:\d+/api/v2)", lines[1]).group(1)
        assert "Trial2.aspx?TrialID=NCT90000001" in lines[2]
        assert httpx.get(url + "/version", timeout=10).json()["apiVersion"] == "2.0.3"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ------------------------------------------------------------------------ throughput


def test_serving_a_thousand_study_page():
    c = Corpus(size=1300, seed=5)
    c.warm()
    with SimulatorServer(c) as srv, httpx.Client(base_url=srv.ctgov_url, timeout=30) as h:
        h.get("/studies", params={"pageSize": 1000})
        t0 = time.perf_counter()
        r = h.get("/studies", params={"pageSize": 1000})
        dt = time.perf_counter() - t0
        assert r.status_code == 200 and len(_ids(r.content)) == 1000
        print(f"1000-study page: {len(r.content) / 1e6:.1f} MB in {dt * 1000:.0f} ms = {1000 / dt:.0f} studies/s")
        assert dt < 5
