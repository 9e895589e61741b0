"""The ``apprise`` channel: any notification service Apprise knows, by URL.

The URL (``url``, or the variable ``url_env`` names) usually carries a token, so it
is treated as a secret: it is never logged and is redacted from Apprise's own log
lines.  The body is the Markdown report.
"""

from __future__ import annotations

from pipeline.deliver.base import Batch, DeliveryError, channel_url
from pipeline.report import render


def send_apprise(batch: Batch) -> str:
    import apprise

    rule = batch.rule
    url = channel_url(rule, batch.environ)
    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise DeliveryError(f"apprise does not understand the URL of alert {rule.name!r}")
    ok = notifier.notify(
        title=f"trialwatch: {batch.report.summary()}",
        body=render(batch.report, "markdown"),
        body_format=apprise.NotifyFormat.MARKDOWN,
    )
    if not ok:
        raise DeliveryError(f"apprise could not deliver alert {rule.name!r} (its warning above says why)")
    return "notified via apprise"
