"""The README, the package and the presets document; they are no lab log: no dates, clock times or hashes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "charrnn").rglob("*.py")),
         *sorted((ROOT / "configs").glob("*.yaml"))]
DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")
CLOCK = re.compile(r"\b[0-2]\d:[0-5]\d(:[0-5]\d)?\s*(UTC)?\b")
COMMIT = re.compile(r"\b(commit|at) [0-9a-f]{7,40}\b")


@pytest.mark.parametrize("path", FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_dates_clock_times_or_commit_hashes(path):
    text = path.read_text(encoding="utf-8")
    for pattern in (DATE, CLOCK, COMMIT):
        found = pattern.search(text)
        assert found is None, f"{path.name}: {found.group(0)!r}: history belongs in git log, not here"


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text(encoding="utf-8")) <= 15_000
