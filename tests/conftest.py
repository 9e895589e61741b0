"""Shared test fixtures.

The real recorded registry responses live outside the repository, in
``../shared/fixtures`` beside the checkout (never copied in).  This module is the one
place that finds them; ``TRIALWATCH_FIXTURES`` overrides the location.  Where the
folder is absent (a user's clone), tests that need it skip with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_DEFAULT_FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"


def fixtures_root() -> Path | None:
    """The real-fixture folder, or None where it is absent."""
    path = Path(os.environ.get("TRIALWATCH_FIXTURES", _DEFAULT_FIXTURES))
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Path of ../shared/fixtures (or $TRIALWATCH_FIXTURES); skips when it is absent."""
    root = fixtures_root()
    if root is None:
        pytest.skip(
            "real registry fixtures not found at ../shared/fixtures "
            "(set TRIALWATCH_FIXTURES to their folder to run these tests)"
        )
    return root
