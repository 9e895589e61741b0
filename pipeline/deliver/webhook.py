"""The ``webhook`` channel: one JSON POST per run with the new changes.

The body::

    {"trialwatch": VERSION, "alert": NAME, "generated_at": ISO, "summary": TEXT,
     "changes": [ {keys of `trialwatch changes --json`}, ... ],
     "failures": [ {"trial_id", "source", "kind", "streak", "error", "detected_at"}, ... ]}

An ``Authorization: Bearer`` header is sent when ``token_env`` names a variable.
Any 2xx answer is success; anything else keeps the batch for the next run.
"""

from __future__ import annotations

from typing import Any

import httpx

from pipeline import __version__
from pipeline.deliver.base import Batch, DeliveryError, channel_url, env_secret
from pipeline.codec import change_json


def webhook_payload(batch: Batch) -> dict[str, Any]:
    """The JSON body for a batch (pure)."""
    return {
        "trialwatch": __version__,
        "alert": batch.rule.name,
        "generated_at": batch.generated_at,
        "summary": batch.report.summary(),
        "changes": [change_json(c) for c in batch.changes],
        "failures": [
            {k: f.get(k) for k in ("trial_id", "source", "kind", "streak", "error", "detected_at")}
            for f in batch.failures
        ],
    }


def send_webhook(batch: Batch, client: httpx.Client | None = None) -> str:
    rule = batch.rule
    url = channel_url(rule, batch.environ)
    headers = {"User-Agent": f"trialwatch/{__version__}"}
    token = env_secret(rule, "token_env", batch.environ)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = float(rule.options.get("timeout", 30))
    own = client is None
    client = client or httpx.Client(timeout=timeout, follow_redirects=False)
    try:
        response = client.post(url, json=webhook_payload(batch), headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        raise DeliveryError(f"webhook {rule.name!r} did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"cannot reach webhook {rule.name!r}: {type(exc).__name__}: {exc}") from None
    finally:
        if own:
            client.close()
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"webhook {rule.name!r} answered HTTP {response.status_code}")
    return f"posted to webhook (HTTP {response.status_code})"
