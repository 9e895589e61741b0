"""``trialwatch serve``: every page through Datasette's in-process client (no socket)."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET

import pytest

pytest.importorskip("datasette", reason="the serve extra is not installed: pip install -e '.[serve]'")

from pipeline.serve import build_datasette  # noqa: E402
from tests.serve_support import (  # noqa: E402
    DISCREPANCY_SUMMARY, EUDRACT, FLAG_SUMMARY, HOSTILE, HOSTILE_TITLE, TRIAL, build_database)

#: The hostile flag summary as the HTML pages show it (escaped once).
FLAG_HTML = FLAG_SUMMARY.replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;")


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return build_datasette(build_database(tmp_path_factory.mktemp("serve") / "t.db"))


def get(ds, path):
    async def fetch():
        return await ds.client.get(path)

    return asyncio.run(fetch())


def page(ds, path):
    response = get(ds, path)
    assert response.status_code == 200, (path, response.status_code, response.text[:500])
    return response.text


def no_live_markup(html: str) -> None:
    """The hostile registry values appear only escaped, never as markup."""
    assert "<script>alert" not in html and "<img src=x" not in html and "</td><script>" not in html




def test_trials_page_lists_trials_with_readable_status_copies_tags_and_facets(ds):
    assert get(ds, "/").status_code == 302
    html = page(ds, "/trialwatch/current_trials")
    assert f'href="/trial/{TRIAL}"' in html and "Remdesivir for adults with COVID-19" in html
    assert "Active, not recruiting" in html and "ctgov, who" in html
    for facet in ("status", "source", "tags"):
        assert f'data-column="{facet}"' in html, facet
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt; trial" in html
    no_live_markup(html)


def test_trials_page_searches_and_facets_by_tag(ds):
    html = page(ds, "/trialwatch/current_trials?_search=remdesivir")
    assert TRIAL in html and HOSTILE not in html
    html = page(ds, "/trialwatch/current_trials?_search=script")  # the hostile title, found and escaped
    assert HOSTILE in html and TRIAL not in html
    no_live_markup(html)
    data = get(ds, "/trialwatch/current_trials.json?_shape=array&tags__arraycontains=covid").json()
    assert {r["trial_id"] for r in data} == {TRIAL}


def test_trial_page_copies_timeline_and_default_diff(ds):
    html = page(ds, f"/trial/{TRIAL}")
    copies = html[html.index('id="copies"'):html.index('id="diff"')]
    # the three records of the trial (its WHO copy, and the EudraCT record linked by secondary ID)
    assert (f"<th>ClinicalTrials.gov {TRIAL}</th><th>WHO ICTRP {TRIAL}</th><th>WHO ICTRP {EUDRACT}</th>"
            in copies)
    assert '<tr class="tw-differs">' in copies and "fields empty in every copy not shown" in copies
    assert "Active, not recruiting" in html and "Not recruiting" in html
    timeline = html[html.index('id="timeline"'):html.index('id="copies"')]
    events = re.findall(r'<li class="tw-event ([^"]*)"', timeline)
    # 4 field changes of ctgov, the flag and the status discrepancy (11:00, filed under the EudraCT
    # record), and 1 target-size discrepancy (10:00: last)
    assert len(events) == 7
    assert [e for e in events if "tw-prominent" in e] == ["tw-sig-status tw-kind-field tw-prominent",
                                                          "tw-sig-status tw-kind-discrepancy tw-prominent"]
    assert "tw-kind-discrepancy" in events[-1] and "ctgov 120, who &lt;i&gt;100&lt;/i&gt;" in timeline
    assert "Recruiting" in timeline and "Target size" in timeline and "<ins>Pneumonia</ins>" in timeline
    assert "<del>65</del>" in timeline and "<ins>80</ins>" in timeline  # word diff of the long text
    diff = html[html.index('id="diff"'):]
    assert "Recruitment status" in diff and "Inclusion criteria" in diff and "Target size" not in diff


def test_trials_page_shows_open_flags_and_facets_them(ds):
    html = page(ds, "/trialwatch/current_trials")
    assert ('<span class="tw-flag">discrepancy: recruitment status</span> <span class="tw-flag">results overdue</span>'
            in html)
    assert 'data-column="open_flags"' in html and "open_flags__arraycontains=results+overdue" in html
    rows = get(ds, "/trialwatch/current_trials.json?_shape=array&open_flags__arraycontains=results+overdue").json()
    # every record of the trial carries its flags (through trial_links.trial_key); the other trial none
    assert {(r["trial_id"], r["source"]) for r in rows} == {(TRIAL, "ctgov"), (TRIAL, "who"), (EUDRACT, "who")}
    hostile = get(ds, f"/trialwatch/current_trials.json?_shape=array&trial_id={HOSTILE}").json()
    assert hostile[0]["open_flags"] == "[]"
    copies = {r["trial_id"]: r["copies"] for r in rows}  # the records of the trial, through trial_links
    assert copies == {TRIAL: f"ctgov, who, who {EUDRACT}", EUDRACT: f"who, ctgov {TRIAL}, who {TRIAL}"}


def test_trial_page_open_flags_with_summaries_escaped(ds):
    html = page(ds, f"/trial/{TRIAL}")
    flags = html[html.index('id="flags"'):html.index('id="timeline"')]
    assert "Open flags and discrepancies (2)" in flags
    assert "<strong>Recruitment status</strong>" in flags and DISCREPANCY_SUMMARY in flags
    assert "<strong>Results overdue</strong>" in flags and FLAG_HTML in flags
    assert f"who {EUDRACT}, ctgov {TRIAL}" in flags  # the records a discrepancy is between
    timeline = html[html.index('id="timeline"'):html.index('id="copies"')]
    assert f'raised</span>: <span class="tw-summary">{FLAG_HTML}' in timeline  # the event, not its JSON
    assert '"summary"' not in html
    no_live_markup(html)
    assert "<script>alert('flag')" not in html


def test_linked_record_opens_the_same_trial(ds):
    html = page(ds, f"/trial/{EUDRACT}")
    assert f'<span class="tw-id">{EUDRACT}</span>' in html
    assert f"<th>WHO ICTRP {EUDRACT}</th>" in html and f"<th>ClinicalTrials.gov {TRIAL}</th>" in html
    assert f'(<a href="/trial/{TRIAL}">its page</a>)' in html
    assert "Open flags and discrepancies (2)" in html and DISCREPANCY_SUMMARY in html
    other = page(ds, f"/trial/{HOSTILE}")  # a trial with no open flags says so
    assert "No open flags or discrepancies." in other and 'class="tw-flags"' not in other


def test_trial_page_diff_between_any_two_versions(ds):
    versions = get(ds, f"/trialwatch.json?sql=select+id+from+snapshots+where+trial_id='{TRIAL}'+and+source='ctgov'"
                       "+order+by+id&_shape=array").json()
    first, last = versions[0]["id"], versions[-1]["id"]
    diff = page(ds, f"/trial/{TRIAL}?a={first}&b={last}#diff").split('id="diff"')[1]
    for label in ("Target size", "Conditions", "Recruitment status", "Inclusion criteria"):
        assert f'<th scope="row">{label}</th>' in diff, label
    assert "4 fields differ" in diff
    assert "no such version" in page(ds, f"/trial/{TRIAL}?a={first}&b=99999")


def test_trial_page_escapes_registry_values(ds):
    html = page(ds, f"/trial/{HOSTILE}")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&lt;/td&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    no_live_markup(html)


def test_unknown_trial_is_404(ds):
    response = get(ds, "/trial/NCT99999999")
    assert response.status_code == 404 and "not in the database" in response.text


def test_changes_page_titles_readable_values_facets_and_links(ds):
    html = page(ds, "/trialwatch/change_log")
    assert f'href="/trial/{TRIAL}"' in html and f'href="/trial/{HOSTILE}"' in html
    assert "Remdesivir for adults with COVID-19" in html
    assert "Recruiting" in html and "Active, not recruiting" in html and "COVID-19; Pneumonia" in html
    assert "ctgov 120, who &lt;i&gt;100&lt;/i&gt;" in html  # a discrepancy: its summary
    assert DISCREPANCY_SUMMARY in html and FLAG_HTML in html
    for facet in ("significance", "field", "source", "detected_at"):
        assert f'data-column="{facet}"' in html, facet
    assert "&lt;script&gt;alert(&#39;x&#39;)" in html
    no_live_markup(html)
    rows = get(ds, "/trialwatch/change_log.json?_shape=array&significance=status&kind=field").json()
    assert {(r["trial_id"], r["new_value"]) for r in rows} == {(TRIAL, "Active, not recruiting"), (HOSTILE, "Completed")}


def test_atom_feed_of_changes_per_tag(ds):
    for path, trials in (("/changes.atom", {TRIAL, HOSTILE}), ("/changes.atom?tag=covid", {TRIAL}),
                         ("/changes.atom?query=none", set())):
        response = get(ds, path)
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/atom+xml")
        feed = ET.fromstring(response.text)
        titles = [e.findtext("{http://www.w3.org/2005/Atom}title") for e in feed.iter("{http://www.w3.org/2005/Atom}entry")]
        assert {t.split(":")[0] for t in titles} == trials, path
    assert HOSTILE_TITLE in get(ds, "/changes.atom").text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def test_atom_feed_reads_discrepancies_and_flags_as_their_summary(ds):
    feed = ET.fromstring(get(ds, "/changes.atom").text)
    atom = "{http://www.w3.org/2005/Atom}"
    entries = {e.findtext(f"{atom}title").split(":")[0]: e for e in feed.iter(f"{atom}entry")}
    assert set(entries) == {TRIAL, HOSTILE}  # the EudraCT record's event is in its trial's entry
    entry = entries[TRIAL]
    assert "2 discrepancies (Recruitment status, Target size); 1 flag (Results overdue)" in entry.findtext(f"{atom}title")
    content = entry.findtext(f"{atom}content")  # HTML, as text: what a feed reader renders
    assert f"Discrepancy · Recruitment status</span>: <span class=\"state\">raised</span> — {DISCREPANCY_SUMMARY}" in content
    assert f"WHO ICTRP {EUDRACT}" in content
    assert "Flag · Results overdue" in content and "&lt;script&gt;alert(&#x27;flag&#x27;)&lt;/script&gt;" in content
    assert "<script>" not in content and '"summary"' not in content and "{" not in content


def test_database_is_opened_read_only(ds):
    response = get(ds, "/trialwatch.json?sql=insert+into+meta+values('x','y')")
    assert response.status_code == 400
    assert not ds.get_database("trialwatch").is_memory and ds.get_database("trialwatch").is_mutable
