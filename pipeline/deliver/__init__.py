"""Delivering new alerts to each configured channel, each exactly once.

After a run, :func:`deliver_pending` asks the store, per alert rule, for the
changes and failure events past that channel's cursor, keeps the ones the rule
wants (:func:`pipeline.alert_rules.matches`), renders them and hands them to the
channel's sender.  Only after the sender returns does the store record the
delivery and move the cursor, in one transaction; a sender that raises leaves
both alone, so a channel that is down keeps its whole backlog and gets it, once,
on a later run.  (The one gap left is a crash between a send that succeeded and
that transaction: then the batch is sent again, never lost.)
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable, Mapping

from pipeline.alert_rules import matches, wants_failure
from pipeline.config import AlertRule, Config
from pipeline.deliver.base import Batch, DeliveryError, Redactor, secret_values
from pipeline.report import build_report
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
    changes: int = 0
    failures: int = 0
    ok: bool = True
    detail: str = ""

    @property
    def sent(self) -> bool:
        return self.ok and (self.changes + self.failures) > 0

    def describe(self) -> str:
        what = f"{self.changes} change{'s' if self.changes != 1 else ''}"
        if self.failures:
            what += f" and {self.failures} failure alert{'s' if self.failures != 1 else ''}"
        if not self.ok:
            return f"{self.channel} {self.name!r}: delivery failed, {what} kept for the next run: {self.detail}"
        return f"{self.channel} {self.name!r}: delivered {what} ({self.detail})"


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
) -> list[DeliveryOutcome]:
    """Send each channel what it has not had yet; returns one outcome per channel."""
    environ = os.environ if environ is None else environ
    redact = Redactor(secret_values(config, environ))
    titles = store.trial_titles()
    outcomes = []
    for rule in config.alerts:
        if only and rule.name != only:
            continue
        outcome = _deliver_one(config, store, rule, environ, redact, titles, (senders or {}).get(rule.channel))
        outcomes.append(outcome)
        if not outcome.ok:
            log.error("%s", redact(outcome.describe()))
        elif outcome.sent:
            log.info("%s", redact(outcome.describe()))
    return outcomes


def _deliver_one(config, store, rule: AlertRule, environ, redact, titles, sender) -> DeliveryOutcome:
    store.ensure_channel(rule.name, rule.channel)
    changes, failures, upto_change, upto_failure = store.undelivered(rule.name)
    chosen = [c for c in changes if matches(rule, c, config.tags)]
    chosen_failures = [f for f in failures if wants_failure(rule, f, config.tags)]
    outcome = DeliveryOutcome(rule.name, rule.channel, len(chosen), len(chosen_failures))
    if not chosen and not chosen_failures:
        store.advance_channel(rule.name, upto_change, upto_failure)
        return outcome
    now = utcnow()
    report = build_report(chosen, chosen_failures, titles=titles, generated_at=now, title="trialwatch alerts")
    batch = Batch(rule, report, chosen, chosen_failures, now, environ)
    try:
        outcome.detail = (sender or _sender(rule.channel))(batch)
    except DeliveryError as exc:
        outcome.ok, outcome.detail = False, redact(str(exc))
    except Exception as exc:  # a channel bug must not stop the other channels
        outcome.ok, outcome.detail = False, redact(f"unexpected {type(exc).__name__}: {exc}")
    if outcome.ok:
        store.record_delivery(
            rule.name, [c["id"] for c in chosen], [f["id"] for f in chosen_failures], upto_change, upto_failure
        )
    else:
        store.record_delivery_failure(rule.name, outcome.detail)
    return outcome


__all__ = ["Batch", "DeliveryError", "DeliveryOutcome", "Redactor", "deliver_pending", "note_failures", "secret_values"]
