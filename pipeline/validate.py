"""Small value checks shared by config validation and the CLI."""

from __future__ import annotations

from urllib.parse import urlsplit

from pipeline.errors import ConfigError


def check_url(value: str, key: str) -> str:
    """An http(s) URL with a host (trailing slash dropped), or ConfigError naming ``key``."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"{key}: not a valid URL: {value!r}", key) from None
    if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in value):
        raise ConfigError(f"{key}: not an http(s) URL: {value!r}", key)
    return value.rstrip("/")
