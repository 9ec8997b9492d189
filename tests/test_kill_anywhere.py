"""The kill-anywhere check as a test (slow: `pytest -m slow`; `make kill-test` runs it with N = 20)."""

from __future__ import annotations

import os

import pytest
from kill_anywhere import kill_anywhere


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["stateless", "stateful"])
def test_every_kill_resumes_and_the_run_ends_identical(mode, tmp_path):
    kills = int(os.environ.get("KILLS", "3"))
    result = kill_anywhere(mode, kills=kills, seed=0, workdir=tmp_path)
    assert result["landed"] == kills, "every kill hit a run that was still unfinished"
    assert all(result["identical"].values()), result
