"""The ``email`` channel (SMTP): the report as a text + HTML message over SMTP.

Plain SMTP, STARTTLS (``starttls = true``) or SMTP over TLS (``ssl = true``); a login
when ``username`` is set, with the password read from the environment variable
``password_env`` names.  The e-mail reporter renders with the same text and HTML
renderers as ``trialwatch report``.

The whole conversation (connect, greeting, TLS, login, message, QUIT) must end within
``timeout`` seconds: a socket timeout alone would let a server that answers one byte
at a time hold the send forever, so a watchdog thread shuts the socket down at the
deadline, or at once on a stop request (SIGTERM).

Recipients the server refuses while it accepts others do not make the message fail:
the others got it, so the batch is delivered (:class:`PartialDelivery`) and the
refused addresses are reported as the channel's error.  A 552 (message too large)
asks for smaller batches (:class:`BatchTooLarge`).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from pipeline.deliver.base import Batch, BatchTooLarge, DeliveryError, DeliveryStopped, PartialDelivery, env_secret
from pipeline.http_client import SLICE, Deadline
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


class _Watchdog:
    """Shuts the SMTP connection's socket down once ``deadline`` is cut (time or stop)."""

    def __init__(self, smtp: smtplib.SMTP, deadline: Deadline):
        self.smtp = smtp
        self.deadline = deadline
        self.fired = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="smtp-watchdog", daemon=True)

    def _watch(self) -> None:
        while not self._done.wait(SLICE):
            if self.fired or self.deadline.remaining() <= 0:
                self.fired = True
                sock = getattr(self.smtp, "sock", None)
                if sock is not None:
                    try:
                        # the plain socket's shutdown, also for TLS: the blocked read sees EOF at once
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
                    except OSError:
                        pass

    def __enter__(self) -> "_Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


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
    deadline = Deadline(timeout, should_stop=batch.should_stop)
    # Made unconnected, so that the watchdog watches the greeting too; connect() does
    # not set _host, which TLS checks the server's certificate against.
    smtp: smtplib.SMTP = smtplib.SMTP_SSL(timeout=timeout, context=context) if use_ssl else smtplib.SMTP(timeout=timeout)
    smtp._host = host  # type: ignore[attr-defined]
    watchdog = _Watchdog(smtp, deadline)
    try:
        with watchdog:
            try:
                smtp.connect(host, port)
                if use_starttls:
                    smtp.starttls(context=context)
                if username:
                    smtp.login(username, password or "")
                refused = smtp.send_message(msg)
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    pass  # the message was accepted: a QUIT that fails must not send it again
            finally:
                smtp.close()
    except Exception as exc:
        if watchdog.fired:
            if deadline.reason == "stop":
                raise DeliveryStopped(f"SMTP to {host}:{port}: stopped (SIGTERM/SIGINT) during the send") from None
            raise DeliveryError(f"SMTP server {host}:{port} did not finish within {timeout:g} s") from None
        _raise_delivery_error(exc, host, port, username)
        raise
    if refused:
        bad = ", ".join(f"{addr} ({code} {_text(resp)})" for addr, (code, resp) in sorted(refused.items()))
        good = [a for a in opts["to"] if a not in refused]
        raise PartialDelivery(
            f"SMTP server {host}:{port} refused recipient{'s' if len(refused) != 1 else ''} {bad}; "
            f"delivered to {', '.join(good)}"
        )
    return f"mailed {', '.join(opts['to'])} via {host}:{port}"


def _text(resp: bytes | str) -> str:
    text = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
    return " ".join(text.split())[:200]


def _raise_delivery_error(exc: Exception, host: str, port: int, username: str | None) -> None:
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        raise DeliveryError(f"SMTP login as {username!r} refused by {host}:{port} (code {exc.smtp_code})") from None
    if isinstance(exc, (smtplib.SMTPDataError, smtplib.SMTPSenderRefused)) and exc.smtp_code == 552:
        raise BatchTooLarge(f"SMTP server {host}:{port}: message too large ({exc.smtp_code} {_text(exc.smtp_error)})") from None
    if isinstance(exc, smtplib.SMTPException):
        raise DeliveryError(f"SMTP error from {host}:{port}: {type(exc).__name__}: {exc}") from None
    if isinstance(exc, (OSError, ssl.SSLError)):
        raise DeliveryError(f"cannot reach SMTP server {host}:{port}: {exc.strerror or exc}") from None
