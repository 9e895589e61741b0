"""The ``webhook`` channel: one JSON POST per batch of new changes.

The body::

    {"trialwatch": VERSION, "alert": NAME, "generated_at": ISO, "summary": TEXT,
     "idempotency_key": KEY,
     "changes": [ {"id": "change-<n>", "trial": TRIAL, keys of `trialwatch changes --json`}, ... ],
     "failures": [ {"id": "failure-<n>", "trial": TRIAL, "trial_id", "source", "kind", "streak", "error",
                    "detected_at"}, ... ]}

``trial`` is the trial an item belongs to: the record's ``trial_id`` (so the WHO copy of
an NCT trial has the NCT ID), or the key that links records of one trial across
registries.  Discrepancies and integrity flags are changes of ``kind`` ``discrepancy`` /
``flag`` whose ``new`` (raised) or ``old`` (resolved) is an object with a ``summary``.

Every item has a stable ``id``, and every POST an ``Idempotency-Key`` header (also in
the body) derived from the channel's name and the IDs of the items it carries: a
batch sent again (the receiver read it but answered too late) carries the same key,
so a receiver can drop repeats.

An ``Authorization: Bearer`` header is sent when ``token_env`` names a variable.
Any 2xx answer is success; 413 splits the batch (see :mod:`pipeline.deliver`);
anything else keeps the batch for the next run.  The whole POST (connect, body,
answer) must finish within ``timeout`` seconds, and a stop request ends it at once.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from pipeline import __version__
from pipeline.deliver.base import (
    Batch,
    BatchTooLarge,
    DeliveryError,
    DeliveryStopped,
    alert_change_json,
    channel_url,
    env_secret,
    failure_json,
)
from pipeline.http_client import Deadline, install_deadlines, total_deadline


def _with_trial(item: dict[str, Any], trial: str) -> dict[str, Any]:
    """``item`` with the ``trial`` it belongs to right after its ``id``."""
    return {"id": item["id"], "trial": trial, **{k: v for k, v in item.items() if k != "id"}}


def webhook_payload(batch: Batch) -> dict[str, Any]:
    """The JSON body for a batch (pure)."""
    change_trials = {c.id: g.key for g in batch.report.groups for c in g.changes}
    failure_trials = {f.row["id"]: f.trial for f in batch.report.failures}
    return {
        "trialwatch": __version__,
        "alert": batch.rule.name,
        "generated_at": batch.generated_at,
        "summary": batch.report.summary(),
        "idempotency_key": batch.idempotency_key,
        "changes": [_with_trial(alert_change_json(c), change_trials.get(c["id"], c["trial_id"]))
                    for c in batch.changes],
        "failures": [_with_trial(failure_json(f), failure_trials.get(f["id"], f["trial_id"])) for f in batch.failures],
        **({"test": True} if batch.report.test else {}),
    }


def send_webhook(batch: Batch, client: httpx.Client | None = None) -> str:
    rule = batch.rule
    url = channel_url(rule, batch.environ)
    body = json.dumps(webhook_payload(batch), ensure_ascii=False).encode("utf-8")
    headers = {
        "User-Agent": f"trialwatch/{__version__}",
        "Content-Type": "application/json",
        "Idempotency-Key": batch.idempotency_key,
    }
    token = env_secret(rule, "token_env", batch.environ)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = float(rule.options.get("timeout", 30))
    own = client is None
    client = client or install_deadlines(httpx.Client(timeout=timeout, follow_redirects=False))
    deadline = Deadline(timeout, should_stop=batch.should_stop)
    try:
        with total_deadline(deadline):
            response = client.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        if deadline.reason == "stop":
            raise DeliveryStopped(f"webhook {rule.name!r}: stopped (SIGTERM/SIGINT) during the POST") from None
        raise DeliveryError(f"webhook {rule.name!r} did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"cannot reach webhook {rule.name!r}: {type(exc).__name__}: {exc}") from None
    finally:
        if own:
            client.close()
    if response.status_code == 413:
        raise BatchTooLarge(
            f"webhook {rule.name!r} answered HTTP 413 (payload too large) to {len(batch.item_ids)} "
            f"item{'s' if len(batch.item_ids) != 1 else ''}, {len(body)} bytes"
        )
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"webhook {rule.name!r} answered HTTP {response.status_code}")
    return f"posted to webhook (HTTP {response.status_code})"
