"""Which stored changes an alert rule wants, and the options each channel needs.

Pure functions: the daemon asks :func:`matches` for every new change and hands the
chosen ones to the channel's sender.
"""

from __future__ import annotations

from typing import Any

from pipeline.validate import check_url
from pipeline.errors import ConfigError

REQUIRED_OPTIONS = {
    "webhook": ("url",),
    "email": ("smtp_host", "from", "to"),
    "folder": ("path",),
    "apprise": ("url",),
}


def validate_alert_options(channel: str, options: dict[str, Any], key: str) -> None:
    """ConfigError naming the key when a channel lacks what it needs."""
    for name in REQUIRED_OPTIONS[channel]:
        if name == "url" and options.get("url_env"):
            continue
        if not options.get(name):
            raise ConfigError(f"{key}.{name}: required for channel {channel!r}", f"{key}.{name}")
    if channel == "webhook" and options.get("url"):
        check_url(options["url"], f"{key}.url")
    if channel == "email":
        port = options.get("smtp_port", 25)
        if not 0 < port < 65536:
            raise ConfigError(f"{key}.smtp_port: not a port number: {port}", f"{key}.smtp_port")
        if options.get("starttls") and options.get("ssl"):
            raise ConfigError(f"{key}: choose starttls or ssl, not both", f"{key}.starttls")
    fmt = options.get("format")
    if fmt is not None and fmt not in ("text", "markdown", "html", "json", "csv", "atom"):
        raise ConfigError(f"{key}.format: unknown report format {fmt!r}", f"{key}.format")
