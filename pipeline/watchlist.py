"""Editing the watchlist in ``config.toml`` (``trialwatch watch add|remove``).

The config file is the single source of truth for what is watched, so the watch
commands edit it in place with tomlkit, which keeps the user's comments and layout.
IDs are validated before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import tomlkit

from pipeline.errors import ConfigError
from pipeline.trial_ids import normalize_trial_id


def _load(path: Path) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except Exception as exc:  # tomlkit raises its own parse errors
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _trials_array(doc: tomlkit.TOMLDocument):
    if "watch" not in doc:
        doc["watch"] = tomlkit.table()
    watch = doc["watch"]
    if "trials" not in watch:
        arr = tomlkit.array()
        arr.multiline(True)
        watch["trials"] = arr
    return watch["trials"]


def add_trials(path: Path, ids: list[str]) -> list[str]:
    """Add IDs to ``watch.trials``; returns the ones that were not there yet."""
    wanted = [normalize_trial_id(i) for i in ids]
    doc = _load(path)
    arr = _trials_array(doc)
    present = {str(x) for x in arr}
    added = []
    for trial in wanted:
        if trial not in present:
            arr.append(trial)
            present.add(trial)
            added.append(trial)
    if added:
        path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return added


def remove_trials(path: Path, ids: list[str]) -> list[str]:
    """Remove IDs from ``watch.trials``; returns the ones that were there."""
    wanted = {normalize_trial_id(i) for i in ids}
    doc = _load(path)
    arr = _trials_array(doc)
    removed = []
    for index in range(len(arr) - 1, -1, -1):
        if str(arr[index]) in wanted:
            removed.append(str(arr[index]))
            del arr[index]
    if removed:
        path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return sorted(removed)
