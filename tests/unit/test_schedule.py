"""Schedules: next fire times from cron expressions and a frozen clock (nothing sleeps)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.config import default_schedule, parse_config
from pipeline.cron import cron_trigger, next_fire_times
from pipeline.daemon import next_runs
from pipeline.errors import ConfigError

UTC = timezone.utc
# A Friday, after the morning runs.
FRIDAY = datetime(2026, 11, 27, 11, 30, tzinfo=UTC)


def test_weekdays_skip_the_weekend():
    times = next_fire_times("0 10 * * 1-5", FRIDAY, 4)
    assert times == [
        datetime(2026, 11, 30, 10, 0, tzinfo=UTC),  # Monday
        datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
        datetime(2026, 12, 2, 10, 0, tzinfo=UTC),
        datetime(2026, 12, 3, 10, 0, tzinfo=UTC),
    ]
    assert {t.isoweekday() for t in times} <= {1, 2, 3, 4, 5}


def test_weekly_saturday_and_crontab_sunday_numbering():
    assert next_fire_times("0 4 * * 6", FRIDAY, 2) == [
        datetime(2026, 11, 28, 4, 0, tzinfo=UTC),
        datetime(2026, 12, 5, 4, 0, tzinfo=UTC),
    ]
    sunday = [datetime(2026, 11, 29, 4, 0, tzinfo=UTC)]
    assert next_fire_times("0 4 * * 0", FRIDAY, 1) == sunday
    assert next_fire_times("0 4 * * 7", FRIDAY, 1) == sunday


def test_six_fields_put_seconds_first():
    start = datetime(2026, 11, 27, 11, 30, 1, tzinfo=UTC)
    assert next_fire_times("*/2 * * * * *", start, 3) == [
        start + timedelta(seconds=1),
        start + timedelta(seconds=3),
        start + timedelta(seconds=5),
    ]


def test_the_shipped_defaults():
    config = parse_config({})
    assert config.schedule == default_schedule()
    runs = next_runs(config, FRIDAY)
    assert runs["ctgov"] == datetime(2026, 11, 27, 14, 0, tzinfo=UTC)  # Friday, later today
    saturday = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    assert next_runs(config, saturday)["ctgov"] == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # Monday
    assert runs["who"] == datetime(2026, 11, 28, 4, 0, tzinfo=UTC)  # Saturday: weekly


def test_disabled_source_has_no_next_run():
    config = parse_config({"sources": {"who": {"enabled": False}}, "schedule": {"ctgov": "30 9 * * *"}})
    assert next_runs(config, FRIDAY) == {"ctgov": datetime(2026, 11, 28, 9, 30, tzinfo=UTC)}


def test_jitter_delays_by_at_most_its_seconds():
    trigger = cron_trigger("0 10 * * *", jitter=300)
    base = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    delays = [(trigger.get_next_fire_time(None, FRIDAY) - base).total_seconds() for _ in range(50)]
    assert all(0 <= d <= 300 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    "schedule, key",
    [
        ({"ctgov": "61 * * * *"}, "schedule.ctgov"),
        ({"who": "* * *"}, "schedule.who"),
        ({"failure_alert_after": 0}, "schedule.failure_alert_after"),
        ({"jitter": -1}, "schedule.jitter"),
    ],
)
def test_bad_schedules_name_their_key(schedule, key):
    with pytest.raises(ConfigError) as err:
        parse_config({"schedule": schedule})
    assert err.value.key == key
