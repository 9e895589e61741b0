"""Delivery: each change to each channel once; a channel that is down keeps its backlog.

Real local servers on loopback ports: an aiosmtpd SMTP server (with STARTTLS and
login), an http.server webhook receiver, Apprise posting to that receiver, and a
folder on disk.  Secrets come from environment variables and must not show up in
logs, stored errors or what is delivered.
"""

from __future__ import annotations

import logging
import ssl
import subprocess
from email import message_from_bytes
from email.policy import default as email_policy

import pytest

from alert_support import HookServer, fail, free_port, populate, record, save
from pipeline.config import parse_config
from pipeline.deliver import deliver_pending, note_failures
from pipeline.deliver.base import Redactor, secret_values
from pipeline.store import Store

TOKEN = "tok-7f3a9c1e5b-SECRET"
PASSWORD = "pw-2b8d4e6f0a-SECRET"
APPRISE_PASSWORD = "ap-9e1c3a5b7d-SECRET"
PATH_TOKEN = "pathtoken-4c2e8a6f1b"


def make_config(tmp_path, *alerts, **top):
    return parse_config(
        {
            "database": {"path": str(tmp_path / "t.db")},
            "watch": {"trials": ["NCT01000001", "NCT01000002"], "tags": {"onc": ["NCT01000002"]}},
            "alerts": list(alerts),
            **top,
        },
        base_dir=tmp_path,
    )


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "t.db")
    yield s
    s.close()


def first_sightings(store):
    for t in ("NCT01000001", "NCT01000002"):
        save(store, None, record(t))


def change_status(store, trial, status):
    old = store.load_state(trial, "ctgov").record
    return save(store, old, {**old, "recruitment_status": status})


def test_webhook_gets_one_post_per_run_with_the_changes_json_keys(tmp_path, store, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    with HookServer() as hook:
        config = make_config(tmp_path, {"channel": "webhook", "name": "hook", "url": hook.url, "token_env": "HOOK_TOKEN"})
        first_sightings(store)
        deliver_pending(config, store)  # the channel starts from here: no history flood
        assert hook.requests == []
        change_status(store, "NCT01000001", "completed")
        change_status(store, "NCT01000002", "terminated")
        (outcome,) = deliver_pending(config, store)
        assert outcome.ok and outcome.changes == 2
        (req,) = hook.requests
        assert req["headers"]["Authorization"] == f"Bearer {TOKEN}"
        body = req["body"]
        from pipeline.codec import change_json

        stored = store.changes()
        # the keys of `changes --json`, plus each change's stable id and the trial it belongs to
        assert body["changes"] == [
            {"id": f"change-{c['id']}", "trial": c["trial_id"], **change_json(c)} for c in stored[-2:]
        ]
        assert req["headers"]["Idempotency-Key"] == body["idempotency_key"]
        assert body["alert"] == "hook" and "2 changes in 2 trials" in body["summary"]
        # nothing new: nothing sent
        assert deliver_pending(config, store)[0].sent is False
        assert len(hook.requests) == 1


def test_down_channel_keeps_its_backlog_and_gets_it_once(tmp_path, store, caplog, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    caplog.set_level(logging.INFO)
    with HookServer(statuses=[503, 500]) as hook:
        config = make_config(tmp_path, {"channel": "webhook", "name": "hook", "url": hook.url, "token_env": "HOOK_TOKEN"})
        first_sightings(store)
        deliver_pending(config, store)
        change_status(store, "NCT01000001", "completed")
        (down,) = deliver_pending(config, store)  # 503
        assert not down.ok and "HTTP 503" in down.detail
        change_status(store, "NCT01000002", "terminated")
        (still_down,) = deliver_pending(config, store)  # 500: backlog now 2
        assert not still_down.ok and still_down.changes == 2
        assert store.channel("hook")["last_error"] == "webhook 'hook' answered HTTP 500"
        (back,) = deliver_pending(config, store)
        assert back.ok and back.changes == 2
        (req,) = hook.requests
        assert [(c["trial_id"], c["new"]) for c in req["body"]["changes"]] == [
            ("NCT01000001", "completed"),
            ("NCT01000002", "terminated"),
        ]
        assert store.channel("hook")["last_error"] is None
        for _ in range(2):
            deliver_pending(config, store)
        assert len(hook.requests) == 1  # never twice
    delivered = store.conn.execute("SELECT COUNT(*) FROM deliveries WHERE channel = 'hook'").fetchone()[0]
    assert delivered == 2
    assert TOKEN not in caplog.text


def test_unreachable_channel_does_not_stop_the_others(tmp_path, store):
    dead = f"http://127.0.0.1:{free_port()}/hook"
    with HookServer() as hook:
        config = make_config(
            tmp_path,
            {"channel": "webhook", "name": "dead", "url": dead, "timeout": 2},
            {"channel": "webhook", "name": "alive", "url": hook.url},
        )
        first_sightings(store)
        deliver_pending(config, store)
        change_status(store, "NCT01000001", "completed")
        dead_outcome, alive_outcome = deliver_pending(config, store)
        assert not dead_outcome.ok and "cannot reach webhook 'dead'" in dead_outcome.detail
        assert alive_outcome.ok and len(hook.requests) == 1


def test_rules_choose_per_channel(tmp_path, store):
    with HookServer() as hook:
        config = make_config(
            tmp_path,
            {"channel": "webhook", "name": "status", "url": hook.url + "/status", "significance": ["status"]},
            {"channel": "webhook", "name": "onc", "url": hook.url + "/onc", "tags": ["onc"],
             "significance": ["status", "enrollment"]},
        )
        first_sightings(store)
        deliver_pending(config, store)
        old = store.load_state("NCT01000001", "ctgov").record
        save(store, old, {**old, "recruitment_status": "completed", "target_size": 5})
        old = store.load_state("NCT01000002", "ctgov").record
        save(store, old, {**old, "target_size": 7, "acronym": "ONC"})
        deliver_pending(config, store)
        got = {r["path"]: [(c["trial_id"], c["field"]) for c in r["body"]["changes"]] for r in hook.requests}
        assert got == {
            "/hook/status": [("NCT01000001", "recruitment_status")],
            "/hook/onc": [("NCT01000002", "target_size")],
        }
        # the changes no rule wanted are skipped over, not re-sent later
        assert [o.sent for o in deliver_pending(config, store)] == [False, False]


def test_a_status_change_is_alerted_once_not_with_its_raw_wording(tmp_path, store):
    with HookServer() as hook:
        config = make_config(tmp_path, {"channel": "webhook", "name": "hook", "url": hook.url})
        save(store, None, record("NCT01000001", recruitment_status_raw="RECRUITING"))
        deliver_pending(config, store)
        old = store.load_state("NCT01000001", "ctgov").record
        changes = save(store, old, {**old, "recruitment_status": "completed", "recruitment_status_raw": "COMPLETED"})
        assert sorted(c["kind"] for c in changes) == ["detail", "field"]
        deliver_pending(config, store)
        (req,) = hook.requests
        assert [c["field"] for c in req["body"]["changes"]] == ["recruitment_status"]


def test_backfilled_changes_are_never_alerts(tmp_path, store):
    with HookServer() as hook:
        config = make_config(tmp_path, {"channel": "webhook", "name": "hook", "url": hook.url})
        first_sightings(store)
        deliver_pending(config, store)
        old = store.load_state("NCT01000001", "ctgov").record
        save(store, old, {**old, "recruitment_status": "completed"}, backfilled=True)
        assert deliver_pending(config, store)[0].sent is False
        assert hook.requests == []


def test_folder_writes_one_report_per_delivery(tmp_path, store):
    out = tmp_path / "reports"
    config = make_config(tmp_path, {"channel": "folder", "name": "files", "path": str(out), "format": "markdown"})
    populate(store)
    deliver_pending(config, store)
    assert not out.exists()
    change_status(store, "NCT01000001", "withdrawn")
    (outcome,) = deliver_pending(config, store)
    (path,) = out.iterdir()
    assert outcome.ok and path.name.startswith("trialwatch-") and path.suffix == ".md"
    assert "Withdrawn" in path.read_text()  # the status's label, not its code
    deliver_pending(config, store)
    assert len(list(out.iterdir())) == 1


def test_failing_trial_raises_one_alert_and_one_recovery(tmp_path, store):
    with HookServer() as hook:
        config = make_config(tmp_path, {"channel": "webhook", "name": "hook", "url": hook.url},
                             schedule={"failure_alert_after": 3})
        first_sightings(store)
        deliver_pending(config, store)
        for run in range(5):  # five failed runs: one alert, after the third
            fail(store, "NCT01000001", error="HTTP 503 Service Unavailable")
            events = note_failures(config, store)
            assert [e["kind"] for e in events] == (["failing"] if run == 2 else [])
            deliver_pending(config, store)
        (alert,) = hook.requests
        assert alert["body"]["changes"] == []
        assert alert["body"]["failures"][0] | {"detected_at": None, "id": None} == {
            "id": None, "trial": "NCT01000001", "trial_id": "NCT01000001", "source": "ctgov", "kind": "failing",
            "streak": 3,
            "error": "HTTP 503 Service Unavailable", "detected_at": None,
        }
        save(store, store.load_state("NCT01000001", "ctgov").record, record("NCT01000001"))  # fetched again
        assert [e["kind"] for e in note_failures(config, store)] == ["recovered"]
        assert note_failures(config, store) == []
        deliver_pending(config, store)
        assert [r["body"]["failures"][0]["kind"] for r in hook.requests] == ["failing", "recovered"]
        # the streak of a recovery is the one its failure alert reported
        assert hook.requests[1]["body"]["failures"][0]["streak"] == 3


# -- e-mail --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    result = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        capture_output=True,
    )
    if result.returncode != 0:
        pytest.skip("openssl could not make a test certificate")
    return cert, key


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, message_from_bytes(envelope.content, policy=email_policy)))
        return "250 OK"


@pytest.fixture
def smtp_server(tls_files):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        ok = auth_data.password == PASSWORD.encode()
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=server_ctx, require_starttls=True,
        authenticator=authenticator, auth_required=True,
    )
    controller.start()
    inbox.port, inbox.logins, inbox.cert = port, logins, cert
    try:
        yield inbox
    finally:
        controller.stop()


def test_email_over_starttls_with_login(tmp_path, store, smtp_server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    client_ctx = ssl.create_default_context(cafile=str(smtp_server.cert))
    monkeypatch.setattr("pipeline.deliver.smtp.ssl.create_default_context", lambda *a, **k: client_ctx)
    config = make_config(tmp_path, {
        "channel": "email", "name": "mail", "smtp_host": "127.0.0.1", "smtp_port": smtp_server.port,
        "from": "trialwatch@example.org", "to": ["me@example.org"], "starttls": True,
        "username": "watcher", "password_env": "SMTP_PASSWORD", "timeout": 10,
    })
    populate(store)
    deliver_pending(config, store)
    old = store.load_state("NCT01000001", "ctgov").record
    save(store, old, {**old, "recruitment_status": "suspended", "public_title": "<b>bold</b> move"})
    (outcome,) = deliver_pending(config, store)
    assert outcome.ok, outcome.detail
    (mail_from, rcpt, msg) = smtp_server.messages[0]
    assert mail_from == "trialwatch@example.org" and rcpt == ["me@example.org"]
    assert smtp_server.logins == [(b"watcher", PASSWORD.encode())]
    # the title edit is "other": not in the default rule; the new title shows as the trial's name
    assert msg["Subject"] == "trialwatch: 1 change in 1 trial (status 1)"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Completed -> Suspended" in text
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html
    assert PASSWORD not in caplog.text and PASSWORD not in msg.as_string()


def test_email_with_a_wrong_password_keeps_the_backlog(tmp_path, store, smtp_server, monkeypatch, caplog):
    wrong = "wrong-" + PASSWORD
    monkeypatch.setenv("SMTP_PASSWORD", wrong)
    client_ctx = ssl.create_default_context(cafile=str(smtp_server.cert))
    monkeypatch.setattr("pipeline.deliver.smtp.ssl.create_default_context", lambda *a, **k: client_ctx)
    config = make_config(tmp_path, {
        "channel": "email", "name": "mail", "smtp_host": "127.0.0.1", "smtp_port": smtp_server.port,
        "from": "t@example.org", "to": ["me@example.org"], "starttls": True,
        "username": "watcher", "password_env": "SMTP_PASSWORD", "timeout": 10,
    })
    first_sightings(store)
    deliver_pending(config, store)
    change_status(store, "NCT01000001", "completed")
    (outcome,) = deliver_pending(config, store)
    assert not outcome.ok and "SMTP login as 'watcher' refused" in outcome.detail
    assert smtp_server.messages == []
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    (outcome,) = deliver_pending(config, store)
    assert outcome.ok and outcome.changes == 1 and len(smtp_server.messages) == 1
    assert wrong not in caplog.text and wrong not in (store.channel("mail")["last_error"] or "")


def test_missing_password_variable_is_named_not_guessed(tmp_path, store, monkeypatch):
    monkeypatch.delenv("NO_SUCH_PASSWORD", raising=False)
    config = make_config(tmp_path, {
        "channel": "email", "name": "mail", "smtp_host": "127.0.0.1", "smtp_port": free_port(),
        "from": "t@example.org", "to": ["me@example.org"], "username": "u", "password_env": "NO_SUCH_PASSWORD",
    })
    first_sightings(store)
    deliver_pending(config, store)
    change_status(store, "NCT01000001", "completed")
    (outcome,) = deliver_pending(config, store)
    assert not outcome.ok and "NO_SUCH_PASSWORD" in outcome.detail and "not set" in outcome.detail


# -- apprise ------------------------------------------------------------------------------


def test_apprise_url_delivers_and_its_credentials_stay_secret(tmp_path, store, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="apprise")
    with HookServer(statuses=[500]) as hook:
        port = hook.url.split(":")[2].split("/")[0]
        url = f"json://watcher:{APPRISE_PASSWORD}@127.0.0.1:{port}/hook/{PATH_TOKEN}"
        monkeypatch.setenv("APPRISE_URL", url)
        config = make_config(tmp_path, {"channel": "apprise", "name": "push", "url_env": "APPRISE_URL"})
        redactor = Redactor(secret_values(config))
        logging.getLogger().addFilter(redactor)
        for handler in logging.getLogger().handlers:
            handler.addFilter(redactor)
        try:
            first_sightings(store)
            deliver_pending(config, store)
            change_status(store, "NCT01000002", "completed")
            (down,) = deliver_pending(config, store)
            assert not down.ok
            (outcome,) = deliver_pending(config, store)
        finally:
            for handler in logging.getLogger().handlers:
                handler.removeFilter(redactor)
            logging.getLogger().removeFilter(redactor)
        assert outcome.ok, outcome.detail
        (req,) = hook.requests
        assert "NCT01000002" in req["body"]["message"] and req["body"]["title"].startswith("trialwatch: 1 change")
        assert req["headers"]["Authorization"].startswith("Basic ") and req["path"] == f"/hook/{PATH_TOKEN}"
    assert "JSON POST URL" in caplog.text  # apprise logs the URL it posts to (path included) ...
    assert APPRISE_PASSWORD not in caplog.text and PATH_TOKEN not in caplog.text  # ... redacted
    assert APPRISE_PASSWORD not in (store.channel("push")["last_error"] or "")


def test_redactor_replaces_every_known_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("T", TOKEN)
    monkeypatch.setenv("P", PASSWORD)
    config = make_config(
        tmp_path,
        {"channel": "webhook", "name": "a", "url": "http://127.0.0.1:9/h", "token_env": "T"},
        {"channel": "email", "name": "b", "smtp_host": "h", "from": "f@x", "to": ["t@x"], "username": "u",
         "password_env": "P"},
        {"channel": "apprise", "name": "c", "url": "tgram://123456:ABCDEF-bot-token/987"},
        {"channel": "webhook", "name": "d", "url": "https://hooks.example.org/services/T0001/B0002/XXXXYYYYZZZZ"},
    )
    redact = Redactor(secret_values(config))
    text = f"a {TOKEN} b {PASSWORD} c tgram://123456:ABCDEF-bot-token/987 d"
    assert redact(text) == "a *** b *** c *** d"
    # rewritten forms of a URL that libraries log still lose their tokens
    assert redact("posting to https://123456:ABCDEF-bot-token@api.telegram.org") == "posting to https://***@api.telegram.org"
    assert "XXXXYYYYZZZZ" not in redact("POST https://hooks.example.org/services/T0001/B0002/XXXXYYYYZZZZ: 500")


def test_email_over_implicit_tls(tmp_path, store, tls_files, monkeypatch):
    from aiosmtpd.controller import Controller

    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=server_ctx)
    controller.start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(cert))
        monkeypatch.setattr("pipeline.deliver.smtp.ssl.create_default_context", lambda *a, **k: client_ctx)
        config = make_config(tmp_path, {
            "channel": "email", "name": "mail", "smtp_host": "127.0.0.1", "smtp_port": port, "ssl": True,
            "from": "t@example.org", "to": ["a@example.org", "b@example.org"], "format": "text", "timeout": 10,
        })
        first_sightings(store)
        deliver_pending(config, store)
        change_status(store, "NCT01000001", "completed")
        (outcome,) = deliver_pending(config, store)
        assert outcome.ok, outcome.detail
        (_, rcpt, msg) = inbox.messages[0]
        assert rcpt == ["a@example.org", "b@example.org"]
        assert not msg.is_multipart() and "Recruiting -> Completed" in msg.get_content()  # format = "text"
    finally:
        controller.stop()


def test_alerts_take_the_trial_as_the_unit(tmp_path, store):
    """A trial's ClinicalTrials.gov and WHO changes and a discrepancy: one trial in the summary, each
    webhook item with its ``trial``, the e-mail with one block per trial and labelled registries;
    a store linking records across registries (trial_key_map) lights up the same way."""
    from alert_support import event
    from pipeline.deliver.webhook import webhook_payload

    for source in ("ctgov", "who"):
        save(store, None, record("NCT01000001", source))
    euctr = record("EUCTR2020-001234-56-DE", "who")
    save(store, None, euctr)
    config = make_config(tmp_path, {"channel": "webhook", "name": "hook", "url": "http://127.0.0.1:9/",
                                    "significance": ["status", "enrollment"]})
    deliver_pending(config, store)
    for source in ("ctgov", "who"):
        old = store.load_state("NCT01000001", source).record
        save(store, old, {**old, "recruitment_status": "completed"})
    save(store, euctr, {**euctr, "target_size": 300})
    event(store, "NCT01000001", "who", "discrepancy", "recruitment_status", "WHO says <b>recruiting</b>")

    class Linked:
        """The store once cross-registry links land: the EudraCT record belongs to the NCT trial."""

        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def trial_key_map(self):
            return {("EUCTR2020-001234-56-DE", "who"): "NCT01000001"}

    sent = []
    (outcome,) = deliver_pending(config, Linked(store), senders={"webhook": lambda b: sent.append(b) or "ok"})
    assert outcome.ok and outcome.changes == 4
    (batch,) = sent
    body = webhook_payload(batch)
    assert body["summary"] == "3 changes in 1 trial (status 2, enrollment 1); 1 discrepancy"
    assert [(c["trial"], c["trial_id"], c["source"], c["kind"]) for c in body["changes"]] == [
        ("NCT01000001", "NCT01000001", "ctgov", "field"), ("NCT01000001", "NCT01000001", "who", "field"),
        ("NCT01000001", "EUCTR2020-001234-56-DE", "who", "field"),
        ("NCT01000001", "NCT01000001", "who", "discrepancy"),
    ]
    assert list(body["changes"][0])[:3] == ["id", "trial", "trial_id"]  # every earlier key still there
    assert body["changes"][3]["new"]["summary"] == "WHO says <b>recruiting</b>"
    from pipeline.report import render

    text = render(batch.report, "text")
    assert text.count("\nNCT01000001  ") == 1
    assert "Completed" in text and "Recruitment status · WHO ICTRP" in text
    assert "Target size · WHO ICTRP EUCTR2020-001234-56-DE" in text
    assert "Discrepancy · Recruitment status: raised — WHO says <b>recruiting</b>" in text
    html = render(batch.report, "html")
    assert "WHO says &lt;b&gt;recruiting&lt;/b&gt;" in html and "<b>recruiting</b>" not in html
