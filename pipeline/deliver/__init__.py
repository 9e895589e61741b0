"""Delivering new alerts to each configured channel, each exactly once.

After a run, :func:`deliver_pending` asks the store, per alert rule, for the
changes and failure events past that channel's cursor, keeps the ones the rule
wants (:func:`pipeline.alert_rules.matches`), and sends them oldest first in
bounded batches (``batch_max_items`` items, ``batch_max_bytes`` of JSON: a five-day
backlog must not become one message no receiver accepts).  Each batch is rendered
and handed to the channel's sender; only after the sender returns does the store
record that batch as delivered.  A sender that raises leaves the batch and
everything after it in the backlog, so a channel that is down gets it, once, on a
later run.  (The one gap left is a crash between a send that succeeded and that
transaction: then the batch is sent again, never lost, with the same
``Idempotency-Key``.)

A receiver that refuses a batch for its size (HTTP 413, SMTP 552) gets it in halves,
down to single items; a single item it still refuses stays in the backlog, is
reported as the channel's error (naming the item), and does not hold back the
items after it.  An SMTP server that refuses some recipients but accepts others
delivered the batch: it is recorded, and the refused recipients are the channel's
error.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Callable, Mapping

from pipeline.alert_rules import matches, wants_failure
from pipeline.config import AlertRule, Config
from pipeline.deliver.base import (
    Batch,
    BatchTooLarge,
    DeliveryError,
    DeliveryStopped,
    PartialDelivery,
    Redactor,
    alert_change_json,
    failure_json,
    item_id,
    secret_values,
)
from pipeline.report import build_report
from pipeline.report.load import load_trial_keys
from pipeline.report.model import printable
from pipeline.clock import utcnow
from pipeline.store import Store

log = logging.getLogger("trialwatch.deliver")


def _sender(channel: str) -> Callable[[Batch], str]:
    if channel == "folder":
        from pipeline.deliver.folder import send_folder

        return send_folder
    if channel == "email":
        from pipeline.deliver.smtp import send_email

        return send_email
    if channel == "webhook":
        from pipeline.deliver.webhook import send_webhook

        return send_webhook
    if channel == "apprise":
        from pipeline.deliver.apprise_url import send_apprise

        return send_apprise
    raise ValueError(channel)


@dataclass
class DeliveryOutcome:
    """What happened to one channel in one delivery pass."""

    name: str
    channel: str
    changes: int = 0                 # in the backlog the rule chose
    failures: int = 0
    ok: bool = True
    detail: str = ""
    delivered_changes: int = 0
    delivered_failures: int = 0
    batches: int = 0                 # messages that went out

    @property
    def sent(self) -> bool:
        return (self.delivered_changes + self.delivered_failures) > 0

    @staticmethod
    def _what(changes: int, failures: int) -> str:
        what = f"{changes} change{'s' if changes != 1 else ''}"
        if failures:
            what += f" and {failures} failure alert{'s' if failures != 1 else ''}"
        return what

    def describe(self) -> str:
        what = self._what(self.changes, self.failures)
        done = self.delivered_changes + self.delivered_failures
        total = self.changes + self.failures
        if self.ok:
            return f"{self.channel} {self.name!r}: delivered {what} ({self.detail})"
        if done == 0:
            return f"{self.channel} {self.name!r}: delivery failed, {what} kept for the next run: {self.detail}"
        if done < total:
            return (
                f"{self.channel} {self.name!r}: delivered {self._what(self.delivered_changes, self.delivered_failures)}"
                f" in {self.batches} message{'s' if self.batches != 1 else ''}, {total - done} kept for the next run: "
                f"{self.detail}"
            )
        return f"{self.channel} {self.name!r}: delivered {what}, with an error: {self.detail}"


def note_failures(config: Config, store: Store) -> list[dict]:
    """Raise the failure alerts (and recoveries) the last runs call for; see Store.note_failure_streaks."""
    events = store.note_failure_streaks(config.failure_alert_after)
    for e in events:
        if e["kind"] == "failing":
            error = printable(e["error"] or "")  # registry bytes may be quoted in it: no ESC into the log
            log.warning("%s (%s) failed %d runs in a row: %s", e["trial_id"], e["source"], e["streak"], error)
        else:
            log.info("%s (%s) recovered", e["trial_id"], e["source"])
    return events


def deliver_pending(
    config: Config,
    store: Store,
    *,
    environ: Mapping[str, str] | None = None,
    senders: Mapping[str, Callable[[Batch], str]] | None = None,
    only: str | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[DeliveryOutcome]:
    """Send each channel what it has not had yet; returns one outcome per channel.

    ``should_stop`` (set by SIGTERM/SIGINT) ends a send in progress at once and starts
    no other: what was not sent stays in the backlog.
    """
    environ = os.environ if environ is None else environ
    stop = should_stop or (lambda: False)
    redact = Redactor(secret_values(config, environ))
    titles = store.trial_titles()
    trial_keys = load_trial_keys(store)
    outcomes = []
    for rule in config.alerts:
        if only and rule.name != only:
            continue
        if stop():
            break
        outcome = _deliver_one(config, store, rule, environ, redact, titles, trial_keys, (senders or {}).get(rule.channel), stop)
        outcomes.append(outcome)
        if not outcome.ok:
            log.error("%s", redact(outcome.describe()))
        elif outcome.sent:
            log.info("%s", redact(outcome.describe()))
    return outcomes


@dataclass
class TestOutcome:
    """What sending one channel a test message came to."""

    name: str
    channel: str
    ok: bool
    detail: str


def send_test_messages(
    config: Config,
    *,
    only: str | None = None,
    environ: Mapping[str, str] | None = None,
    senders: Mapping[str, Callable[[Batch], str]] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[TestOutcome]:
    """Send each alert channel (or only ``only``) one message marked as a test.

    Nothing is read from or written to the store: a test is not a delivery, and no
    channel's cursor moves.  Errors are redacted like a delivery's.
    """
    environ = os.environ if environ is None else environ
    redact = Redactor(secret_values(config, environ))
    now = utcnow()
    out = []
    for rule in config.alerts:
        if only and rule.name != only:
            continue
        report = build_report([], [], generated_at=now, title="trialwatch TEST message (not an alert)")
        report.test = True
        batch = Batch(rule, report, [], [], now, environ, should_stop=should_stop)
        send = (senders or {}).get(rule.channel) or _sender(rule.channel)
        try:
            detail = send(batch)
            out.append(TestOutcome(rule.name, rule.channel, True, redact(f"test message sent ({detail})")))
        except DeliveryError as exc:
            out.append(TestOutcome(rule.name, rule.channel, False, redact(str(exc))))
        except Exception as exc:  # a channel bug must not stop the other channels
            out.append(TestOutcome(rule.name, rule.channel, False, redact(f"unexpected {type(exc).__name__}: {exc}")))
    return out


#: Default bounds of one message (``batch_max_items``, ``batch_max_bytes`` per alert rule):
#: far below the 1 MB body limit that web servers apply by default (nginx, many proxies).
BATCH_MAX_ITEMS = 100
BATCH_MAX_BYTES = 256 * 1024


@dataclass
class Item:
    """One change or failure event of a channel's backlog, with the size of its JSON form."""

    kind: str                   # change | failure
    row: dict
    size: int

    @property
    def id(self) -> str:
        return item_id(self.kind, self.row)

    def label(self) -> str:
        what = self.row.get("field") if self.kind == "change" else self.row.get("kind")
        return f"{self.id} ({self.row.get('trial_id')} {self.row.get('source')}, {what})"


def backlog_items(changes: list[dict], failures: list[dict]) -> list[Item]:
    """The chosen backlog, oldest first (pure)."""
    items = [Item("change", c, _json_size(alert_change_json(c))) for c in changes]
    items += [Item("failure", f, _json_size(failure_json(f))) for f in failures]
    items.sort(key=lambda i: (i.row.get("detected_at") or "", i.kind, i.row["id"]))
    return items


def _json_size(value: dict) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def plan_batches(items: list[Item], max_items: int, max_bytes: int) -> list[list[Item]]:
    """Consecutive batches of at most ``max_items`` items and ``max_bytes`` of JSON (pure).

    An item larger than ``max_bytes`` on its own goes alone.
    """
    batches: list[list[Item]] = []
    current: list[Item] = []
    size = 0
    for item in items:
        if current and (len(current) >= max_items or size + item.size > max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(item)
        size += item.size
    if current:
        batches.append(current)
    return batches


def _deliver_one(config, store, rule: AlertRule, environ, redact, titles, trial_keys, sender, stop) -> DeliveryOutcome:
    row = store.ensure_channel(rule.name, rule.channel)
    changes, failures, upto_change, upto_failure = store.undelivered(rule.name)
    chosen = [c for c in changes if matches(rule, c, config.tags)]
    chosen_failures = [f for f in failures if wants_failure(rule, f, config.tags)]
    outcome = DeliveryOutcome(rule.name, rule.channel, len(chosen), len(chosen_failures))
    if not chosen and not chosen_failures:
        store.advance_channel(rule.name, upto_change, upto_failure)
        return outcome
    send = sender or _sender(rule.channel)
    max_items = int(rule.options.get("batch_max_items", BATCH_MAX_ITEMS))
    max_bytes = int(rule.options.get("batch_max_bytes", BATCH_MAX_BYTES))
    errors: list[str] = []
    details: list[str] = []
    held: list[Item] = []
    stopped = False

    def record(items: list[Item]) -> None:
        # Each batch is recorded as soon as it went out; the cursor stays where it is
        # until the whole backlog is through (the deliveries table skips what went).
        store.record_delivery(
            rule.name,
            [i.row["id"] for i in items if i.kind == "change"],
            [i.row["id"] for i in items if i.kind == "failure"],
            row["change_cursor"],
            row["failure_cursor"],
        )
        outcome.delivered_changes += sum(1 for i in items if i.kind == "change")
        outcome.delivered_failures += sum(1 for i in items if i.kind == "failure")
        outcome.batches += 1

    def send_items(items: list[Item]) -> bool:
        """Send ``items`` (halving on "too large"); False when the channel is down or stopped."""
        nonlocal stopped
        if stop():
            stopped = True
            return False
        now = utcnow()
        batch_changes = [i.row for i in items if i.kind == "change"]
        batch_failures = [i.row for i in items if i.kind == "failure"]
        report = build_report(batch_changes, batch_failures, titles=titles, trial_keys=trial_keys, generated_at=now,
                              title="trialwatch alerts")
        batch = Batch(rule, report, batch_changes, batch_failures, now, environ, should_stop=stop)
        try:
            details.append(send(batch))
        except BatchTooLarge as exc:
            if len(items) > 1:
                half = len(items) // 2
                return send_items(items[:half]) and send_items(items[half:])
            held.append(items[0])
            errors.append(
                f"{items[0].label()} alone is larger than the channel accepts ({redact(str(exc))}): it stays in "
                "the backlog and is tried again on every delivery; the items after it went on"
            )
            return True
        except PartialDelivery as exc:
            record(items)
            errors.append(redact(str(exc)))
            return True
        except DeliveryStopped:
            stopped = True
            return False
        except DeliveryError as exc:
            errors.append(redact(str(exc)))
            return False
        except Exception as exc:  # a channel bug must not stop the other channels
            errors.append(redact(f"unexpected {type(exc).__name__}: {exc}"))
            return False
        record(items)
        return True

    for planned in plan_batches(backlog_items(chosen, chosen_failures), max_items, max_bytes):
        if not send_items(planned):
            break
    done = outcome.delivered_changes + outcome.delivered_failures
    if done == len(chosen) + len(chosen_failures):
        store.advance_channel(rule.name, upto_change, upto_failure)  # what the rule did not want: skipped
    if outcome.batches > 1:
        details = [f"{outcome.batches} messages", *details[-1:]]
    outcome.detail = "; ".join(dict.fromkeys(details))
    if stopped:
        outcome.ok = False
        outcome.detail = "stopped (SIGTERM/SIGINT) before the backlog was through"
    if errors:
        outcome.ok = False
        outcome.detail = "; ".join(errors)
        store.record_delivery_failure(rule.name, outcome.detail)
    return outcome


__all__ = ["TestOutcome", "send_test_messages", "Batch", "BatchTooLarge", "DeliveryError", "DeliveryStopped", "PartialDelivery", "DeliveryOutcome", "Redactor", "deliver_pending", "note_failures", "secret_values"]
