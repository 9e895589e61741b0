"""The ``email`` channel (SMTP): the report as a text + HTML message over SMTP.

Plain SMTP, STARTTLS (``starttls = true``) or SMTP over TLS (``ssl = true``); a login
when ``username`` is set, with the password read from the environment variable
``password_env`` names.  The e-mail reporter renders with the same text and HTML
renderers as ``trialwatch report``.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from pipeline.deliver.base import Batch, DeliveryError, env_secret
from pipeline.report import render

SUBJECT_MAX = 140


def build_message(batch: Batch) -> EmailMessage:
    """The e-mail for a batch (pure)."""
    rule = batch.rule
    msg = EmailMessage()
    subject = f"trialwatch: {batch.report.summary()}"
    msg["Subject"] = subject if len(subject) <= SUBJECT_MAX else subject[: SUBJECT_MAX - 1] + "…"
    msg["From"] = rule.options["from"]
    msg["To"] = ", ".join(rule.options["to"])
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="trialwatch.invalid")
    msg.set_content(render(batch.report, "text"))
    if rule.options.get("format", "html") != "text":
        msg.add_alternative(render(batch.report, "html"), subtype="html")
    return msg


def send_email(batch: Batch) -> str:
    rule = batch.rule
    opts = rule.options
    use_ssl, use_starttls = bool(opts.get("ssl")), bool(opts.get("starttls"))
    host = opts["smtp_host"]
    port = opts.get("smtp_port") or (465 if use_ssl else 587 if use_starttls else 25)
    timeout = float(opts.get("timeout", 30))
    password = env_secret(rule, "password_env", batch.environ)
    username = opts.get("username")
    if username and password is None:
        raise DeliveryError(f"alert {rule.name!r}: username is set but password_env is not")
    msg = build_message(batch)
    context = ssl.create_default_context()
    try:
        if use_ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if use_starttls:
                smtp.starttls(context=context)
            if username:
                smtp.login(username, password or "")
            refused = smtp.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"SMTP login as {username!r} refused by {host}:{port} (code {exc.smtp_code})") from None
    except smtplib.SMTPException as exc:
        raise DeliveryError(f"SMTP error from {host}:{port}: {type(exc).__name__}: {exc}") from None
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(f"cannot reach SMTP server {host}:{port}: {exc.strerror or exc}") from None
    if refused:
        raise DeliveryError(f"SMTP server {host}:{port} refused recipients: {', '.join(sorted(refused))}")
    return f"mailed {', '.join(opts['to'])} via {host}:{port}"
