"""Schema v4's readable part: the ``watch_tags`` table and the views ``current_trials`` and
``change_log`` (for ``trialwatch serve``, Datasette and any SQL user).

Part of :data:`pipeline.store.schema.SCHEMA`; kept here so the schema module stays short.
The views read only what they show: the trials list takes title and status from
``trials`` (no JSON parsed to count, sort or facet), and the JSON record only for the
columns of the rows on a page.
"""

from __future__ import annotations

from pipeline.record import STATUS_LABELS


def _status_label(code: str) -> str:
    """SQL: the readable label of the status code ``code`` (an unknown code as it is)."""
    whens = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in STATUS_LABELS.items())
    return f"CASE {code} {whens} ELSE {code} END"


def _from_record(field: str) -> str:
    """SQL: one field of the trial's current record.  A subquery, not a join: counting,
    sorting and faceting the view then never read a record (20,000 trials: 0.4 ms, not 30)."""
    return f"(SELECT json_extract(s.record, '$.{field}') FROM snapshots s WHERE s.id = t.snapshot_id)"


def _readable(column: str) -> str:
    """SQL: a change's JSON ``old``/``new`` as text: strings bare, lists '; '-joined, a summary."""
    return f"""CASE
        WHEN {column} IS NULL OR {column} IN ('null', '""', '[]') THEN NULL
        WHEN NOT json_valid({column}) THEN {column}
        WHEN json_type({column}) = 'object' AND json_extract({column}, '$.summary') IS NOT NULL
            THEN json_extract({column}, '$.summary')
        WHEN json_type({column}) = 'array'
            THEN (SELECT group_concat(CAST(value AS TEXT), '; ') FROM json_each({column}))
        WHEN json_type({column}) = 'true' THEN 'yes'
        WHEN json_type({column}) = 'false' THEN 'no'
        WHEN c.field IN ('recruitment_status', 'status') THEN {_status_label(f"json_extract({column}, '$')")}
        ELSE CAST(json_extract({column}, '$') AS TEXT) END"""


#: v8: the open discrepancies and flags of the trial a record belongs to (through
#: ``trial_links.trial_key``), as a JSON array of readable kinds, sorted:
#: ``["discrepancy: recruitment status", "results overdue"]`` (``[]`` when none).
OPEN_FLAGS = """(SELECT json_group_array(label) FROM (
        SELECT DISTINCT CASE f.kind WHEN 'discrepancy' THEN 'discrepancy: ' ELSE '' END
            || replace(f.subject, '_', ' ') AS label
        FROM trial_links l JOIN trial_flags f ON f.trial_key = l.trial_key AND f.cleared_at IS NULL
        WHERE l.trial_id = t.trial_id AND l.source = t.source ORDER BY label))"""


#: v8: the records of the trial a record belongs to (``trial_links``), its own ID first:
#: ``ctgov, who, who EUCTR2020-001234-56-DE`` (a record with another ID named with it);
#: a record not linked yet: the registries holding its ID (as in v7).
COPIES = """coalesce((SELECT group_concat(CASE WHEN m.other THEN m.source || ' ' || m.trial_id
            ELSE m.source END, ', ') FROM (
        SELECT m.trial_id, m.source, m.trial_id != t.trial_id AS other
        FROM trial_links l JOIN trial_links m ON m.trial_key = l.trial_key
        WHERE l.trial_id = t.trial_id AND l.source = t.source ORDER BY other, m.source, m.trial_id) m),
        (SELECT group_concat(o.source, ', ') FROM trials o WHERE o.trial_id = t.trial_id))"""


#: v4: the tags of ``[watch.tags]`` as of the last run, and two readable views (Datasette,
#: ``trialwatch serve`` and any SQL user).  The views read only what they show: the trials
#: list takes title and status from ``trials``, and the JSON record only for its page of rows
#: (one subquery per column: only the columns asked for are read).
VIEWS_AND_TAGS = f"""
-- v4: [watch.tags] of the config, written by each refresh run (tag -> trial ID).
CREATE TABLE IF NOT EXISTS watch_tags (
    tag TEXT NOT NULL,
    trial_id TEXT NOT NULL,
    PRIMARY KEY (tag, trial_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS watch_tags_trial ON watch_tags (trial_id);

-- v4: one row per trial and registry, with the main fields of its current record;
-- v8: and the open discrepancies and flags of its trial (open_flags, a JSON array).
CREATE VIEW IF NOT EXISTS current_trials AS
SELECT
    t.trial_id,
    t.source,
    t.title,
    {_status_label("t.recruitment_status")} AS status,
    {COPIES} AS copies,
    (SELECT json_group_array(w.tag) FROM watch_tags w WHERE w.trial_id = t.trial_id) AS tags,
    {OPEN_FLAGS} AS open_flags,
    t.last_changed,
    t.state,
    {_from_record("phase")} AS phase,
    {_from_record("primary_sponsor")} AS sponsor,
    {_from_record("target_size")} AS target_size,
    {_from_record("date_registration")} AS registered,
    {_from_record("completion_date")} AS completion_date,
    (SELECT group_concat(j.value, '; ') FROM snapshots s, json_each(s.record, '$.conditions') j
        WHERE s.id = t.snapshot_id) AS conditions,
    t.last_updated AS registry_updated,
    t.last_checked,
    t.recruitment_status AS status_code,
    t.snapshot_id
FROM trials t;

-- v4: the change log with the trial's title and old / new as text (the title a subquery,
-- so counts and facets read `changes` and its indexes alone).  Change rows of any
-- kind (field, detail, missing, reappeared, and later ones) show; a JSON object value
-- shows its "summary".
CREATE VIEW IF NOT EXISTS change_log AS
SELECT
    c.id,
    c.detected_at,
    c.trial_id,
    (SELECT t.title FROM trials t WHERE t.trial_id = c.trial_id AND t.source = c.source) AS title,
    c.field,
    CASE c.kind WHEN 'missing' THEN 'present' WHEN 'reappeared' THEN 'missing'
        ELSE {_readable("c.old")} END AS old_value,
    CASE c.kind WHEN 'missing' THEN 'no longer returned by the registry'
        WHEN 'reappeared' THEN 'returned by the registry again'
        ELSE {_readable("c.new")} END AS new_value,
    c.significance,
    c.source,
    c.kind,
    c.backfilled,
    c.snapshot_id,
    c.run_id
FROM changes c;
"""
