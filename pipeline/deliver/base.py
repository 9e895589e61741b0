"""What every channel shares: the batch it is handed, its error, and secret handling.

Secrets (an SMTP password, a webhook token, a URL that carries a token) come from
environment variables named in the config.  Channel code never puts a URL or a
secret in an error message, and :class:`Redactor` is the safety net: every error a
channel raises and every log line the daemon writes pass through it, with each
known secret value replaced by ``***``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from pipeline.config import AlertRule, Config
from pipeline.errors import TrialwatchError
from pipeline.report.model import Report


class DeliveryError(TrialwatchError):
    """A channel could not deliver this batch; it stays in the channel's backlog."""


@dataclass
class Batch:
    """What one channel is sent after one run: the chosen changes and failure events."""

    rule: AlertRule
    report: Report                       # built from exactly the rows below
    changes: list[dict[str, Any]]        # stored change rows
    failures: list[dict[str, Any]]       # stored failure events
    generated_at: str
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)


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


def secret_values(config: Config, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every value that must never be printed: env secrets, URL passwords and tokens."""
    environ = os.environ if environ is None else environ
    out: list[str] = []
    for rule in config.alerts:
        for key in ("password_env", "token_env", "url_env"):
            name = rule.options.get(key)
            if name and environ.get(name):
                out.append(environ[name])
        url = rule.options.get("url")
        if url:
            if rule.channel == "apprise":
                out.append(url)  # apprise URLs carry their credentials in the URL itself
            parts = urlsplit(url)
            if parts.password:
                out.append(parts.password)
            if parts.query:
                out.append(parts.query)
    for value in list(out):
        if value.startswith(("http://", "https://")) or "://" in value:
            parts = urlsplit(value)
            if parts.password:
                out.append(parts.password)
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
