"""What every channel shares: the batch it is handed, its error, and secret handling.

Secrets (an SMTP password, a webhook token, a URL that carries a token) come from
environment variables named in the config.  Channel code never puts a URL or a
secret in an error message, and :class:`Redactor` is the safety net: every error a
channel raises and every log line the daemon writes pass through it, with each
known secret value replaced by ``***``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl, urlsplit

from pipeline.codec import change_json
from pipeline.config import AlertRule, Config
from pipeline.errors import TrialwatchError
from pipeline.report.model import Report


class DeliveryError(TrialwatchError):
    """A channel could not deliver this batch; it stays in the channel's backlog."""


class BatchTooLarge(DeliveryError):
    """The receiver refused the batch for its size (HTTP 413, SMTP 552): send it in halves."""


class PartialDelivery(DeliveryError):
    """Delivered, but not everywhere (an SMTP server refused some recipients).

    The batch is recorded as delivered (the recipients who got it must not get it
    again) and the message is reported as the channel's error.
    """


class DeliveryStopped(DeliveryError):
    """The send was cut short by a stop request (SIGTERM): the batch stays in the backlog."""


def item_id(kind: str, row: Mapping[str, Any]) -> str:
    """The stable public ID of a stored change or failure event: ``change-<id>``, ``failure-<id>``."""
    return f"{kind}-{row['id']}"


def failure_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """The public JSON form of a failure event (its ``id`` first)."""
    return {"id": item_id("failure", row),
            **{k: row.get(k) for k in ("trial_id", "source", "kind", "streak", "error", "detected_at")}}


def alert_change_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """The public JSON form of a change as channels send it: ``changes --json`` keys plus ``id``."""
    return {"id": item_id("change", row), **change_json(dict(row))}


@dataclass
class Batch:
    """What one channel is sent in one message: some of its backlog, oldest first."""

    rule: AlertRule
    report: Report                       # built from exactly the rows below
    changes: list[dict[str, Any]]        # stored change rows
    failures: list[dict[str, Any]]       # stored failure events
    generated_at: str
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    should_stop: Callable[[], bool] | None = None  # set by SIGTERM: a send in progress ends at once

    @property
    def item_ids(self) -> list[str]:
        return [item_id("change", c) for c in self.changes] + [item_id("failure", f) for f in self.failures]

    @property
    def idempotency_key(self) -> str:
        """The same for the same items re-sent to the same channel (derived from both, nothing else)."""
        text = "\n".join([self.rule.name, *self.item_ids])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def env_secret(rule: AlertRule, key: str, environ: Mapping[str, str]) -> str | None:
    """The value of the environment variable that ``rule.options[key]`` names (None if no key).

    DeliveryError when the config names a variable that is not set: the message names
    the variable, never a value.
    """
    name = rule.options.get(key)
    if not name:
        return None
    value = environ.get(name)
    if not value:
        raise DeliveryError(f"environment variable {name} (alert {rule.name!r}, {key}) is not set")
    return value


def channel_url(rule: AlertRule, environ: Mapping[str, str]) -> str:
    """The rule's ``url``, or the value of the variable ``url_env`` names."""
    from_env = env_secret(rule, "url_env", environ)
    url = from_env or rule.options.get("url")
    if not url:
        raise DeliveryError(f"alert {rule.name!r} has no url")
    return url


_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$")


def _url_secrets(url: str) -> list[str]:
    """The parts of a URL that may be credentials: password, long path segments, query values.

    Services put tokens in any of these (``tgram://BOTTOKEN/CHAT``,
    ``https://hooks.example/services/T000/B000/XXXX``), and libraries log the URL in
    a rewritten form, so the whole URL alone is not enough to redact.
    """
    parts = urlsplit(url)
    out = [url]
    if parts.password:
        out.append(parts.password)
    if parts.username and len(parts.username) >= 8:
        out.append(parts.username)
    host = parts.netloc.rpartition("@")[2]
    if host and not _HOST.match(host):  # e.g. tgram://BOTID:TOKEN/CHAT keeps its token where a host goes
        out.append(host)
    out += [seg for seg in parts.path.split("/") if len(seg) >= 8]
    out += [v for _, v in parse_qsl(parts.query) if len(v) >= 8]
    return out


def secret_values(config: Config, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every value that must never be printed: env secrets, URL passwords and tokens."""
    environ = os.environ if environ is None else environ
    out: list[str] = []
    for rule in config.alerts:
        for key in ("password_env", "token_env"):
            name = rule.options.get(key)
            if name and environ.get(name):
                out.append(environ[name])
        urls = []
        if rule.options.get("url_env") and environ.get(rule.options["url_env"]):
            urls.append(environ[rule.options["url_env"]])
        if rule.options.get("url"):
            urls.append(rule.options["url"])
        for url in urls:
            out += _url_secrets(url)
    # Longest first, so a secret that contains another is replaced whole.
    return sorted({v for v in out if len(v) >= 4}, key=len, reverse=True)


class Redactor(logging.Filter):
    """Replace known secrets in text and in log records."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = secrets

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            clean = self(message)
            if clean != message or record.args:
                record.msg, record.args = clean, None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self(record.exc_text)
        return True
