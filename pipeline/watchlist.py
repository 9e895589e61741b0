"""Editing the watchlist in ``config.toml`` (``trialwatch watch add|remove``).

The config file is the single source of truth for what is watched, so the watch
commands edit it in place with tomlkit, which keeps the user's comments and layout.
IDs are validated before anything is written.

``watch add --tag T`` also lists the IDs under ``[watch.tags] T = [...]`` (the table the
config loader validates and alert rules select by), and ``watch add --from FILE`` /
``watch add -`` read one ID per line (:func:`parse_id_lines`: ``#`` comments, blank
lines; every bad line is reported with its number and nothing is written).

Each edit is a read-modify-write under the config's lock (:func:`pipeline.lock.config_lock`),
so two ``watch add`` at once both land, and the new text replaces the file atomically
(:func:`save_config_text`), so a reader (the daemon re-reading its config) sees the old
file or the new one, never an empty or half-written one.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Iterable

import tomlkit

from pipeline.errors import ConfigError, InvalidTrialId
from pipeline.lock import config_lock
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


#: A tag name: what ``--tag`` accepts (a plain TOML key, so the file stays readable).
TAG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")


def check_tag(name: str) -> str:
    """``name`` when it is a usable tag name, else ConfigError saying what is allowed."""
    if not TAG_NAME.match(name):
        raise ConfigError(f"not a tag name: {name!r} (letters, digits, '-' and '_', starting with a letter or digit)",
                          "watch.tags")
    return name


def parse_id_lines(text: str, where: str) -> tuple[list[str], list[str]]:
    """Trial IDs from ``text``, one per line (pure): ``(ids, errors)``.

    Blank lines and ``#`` comments (whole lines or after an ID) are skipped; each ID
    is normalized.  An error names ``where`` and the line number:
    ``ids.txt:3: invalid trial ID 'NCT123': <why>``.
    """
    ids: list[str] = []
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        try:
            ids.append(normalize_trial_id(value))
        except InvalidTrialId as exc:
            errors.append(f"{where}:{number}: {exc}")
    return ids, errors


def _tag_array(doc: tomlkit.TOMLDocument, tag: str):
    watch = doc["watch"]
    if "tags" not in watch:
        watch["tags"] = tomlkit.table()
    tags = watch["tags"]
    if tag not in tags:
        tags[tag] = tomlkit.array()
    return tags[tag]


def add_trials(path: Path, ids: list[str], tags: Iterable[str] = ()) -> list[str]:
    """Add IDs to ``watch.trials`` (and to each of ``tags``) in one locked, atomic write.

    Returns the IDs that were not watched yet.
    """
    wanted = [normalize_trial_id(i) for i in ids]
    tags = [check_tag(t) for t in tags]
    with config_lock(path):
        doc = _load(path)
        arr = _trials_array(doc)
        added = _append_new(arr, wanted)
        tagged = False
        for tag in tags:
            tag_arr = _tag_array(doc, tag)
            if len(tag_arr) + len(wanted) > 3:
                tag_arr.multiline(True)
            tagged = bool(_append_new(tag_arr, wanted)) or tagged
        if added or tagged:
            save_config_text(path, tomlkit.dumps(doc))
    return added


def _append_new(arr, wanted: list[str]) -> list[str]:
    present = {str(x) for x in arr}
    added = []
    for trial in wanted:
        if trial not in present:
            arr.append(trial)
            present.add(trial)
            added.append(trial)
    return added


def remove_trials(path: Path, ids: list[str]) -> list[str]:
    """Remove IDs from ``watch.trials``; returns the ones that were there."""
    wanted = {normalize_trial_id(i) for i in ids}
    with config_lock(path):
        doc = _load(path)
        arr = _trials_array(doc)
        removed = []
        for index in range(len(arr) - 1, -1, -1):
            if str(arr[index]) in wanted:
                removed.append(str(arr[index]))
                del arr[index]
        if removed:
            save_config_text(path, tomlkit.dumps(doc))
    return sorted(removed)


def save_config_text(path: Path, text: str) -> None:
    """Replace the config file with ``text`` atomically, keeping its permissions.

    A temporary file in the same folder is written and fsynced, given the old file's
    mode (and owner, where allowed), then renamed over the file (``os.replace``); a symlinked config is replaced
    at its target, so the link stays.  On any error the old file is left as it was.
    """
    real = Path(os.path.realpath(path))
    try:
        old = real.stat()
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fchmod(out.fileno(), old.st_mode & 0o7777 if old else 0o644)
            if old is not None and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                try:  # root editing a user's config: the file stays the user's
                    os.fchown(out.fileno(), old.st_uid, old.st_gid)
                except OSError:
                    pass
            os.fsync(out.fileno())
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(real.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
