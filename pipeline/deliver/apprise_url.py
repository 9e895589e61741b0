"""The ``apprise`` channel: any notification service Apprise knows, by URL.

The URL (``url``, or the variable ``url_env`` names) usually carries a token, so it
is treated as a secret: it is never logged and is redacted from Apprise's own log
lines.  The body is the Markdown report.

Apprise has per-operation timeouts only, so the notification runs in a helper thread
that is given up after ``timeout`` seconds (default 30), or at once on a stop request:
the batch stays in the backlog.  (The abandoned thread may still finish later, so such
a notification can arrive twice; never not at all.)
"""

from __future__ import annotations

import threading
import time

from pipeline.deliver.base import Batch, DeliveryError, DeliveryStopped, channel_url
from pipeline.http_client import SLICE
from pipeline.report import render


def send_apprise(batch: Batch) -> str:
    import apprise

    rule = batch.rule
    url = channel_url(rule, batch.environ)
    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise DeliveryError(f"apprise does not understand the URL of alert {rule.name!r}")
    timeout = float(rule.options.get("timeout", 30))
    result: list[bool] = []

    def notify() -> None:
        result.append(
            notifier.notify(
                title=f"trialwatch: {batch.report.summary()}",
                body=render(batch.report, "markdown"),
                body_format=apprise.NotifyFormat.MARKDOWN,
            )
        )

    worker = threading.Thread(target=notify, name="apprise-notify", daemon=True)
    worker.start()
    end = time.monotonic() + timeout
    while worker.is_alive():
        if batch.should_stop is not None and batch.should_stop():
            raise DeliveryStopped(f"apprise {rule.name!r}: stopped (SIGTERM/SIGINT) during the notification")
        left = end - time.monotonic()
        if left <= 0:
            raise DeliveryError(f"apprise could not deliver alert {rule.name!r} within {timeout:g} s")
        worker.join(min(left, SLICE))
    ok = bool(result and result[0])
    if not ok:
        raise DeliveryError(f"apprise could not deliver alert {rule.name!r} (its warning above says why)")
    return "notified via apprise"
