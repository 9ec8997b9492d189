"""The notebook harness's noise check, on hand-made executed notebooks (no kernel, no TensorFlow)."""

from __future__ import annotations

import json
import logging

import pytest
from notebook_runner import check_no_noise, papermill_log

CUINIT = ("E0000 00:00:1796320245.909978   11951 cuda_platform.cc:52] failed call to cuInit: "
          "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")


def executed_notebook(tmp_path, stderr: str):
    cells = [{"cell_type": "code", "source": [], "metadata": {}, "outputs": [
        {"output_type": "stream", "name": "stdout", "text": ["vocabulary: 39   corpus: 40,000\n"]},
        {"output_type": "stream", "name": "stderr", "text": [stderr]},
    ]}]
    path = tmp_path / "executed.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    return path


@pytest.mark.parametrize("line", [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    CUINIT,
    "I0000 00:00:1796320232.126557   11951 cpu_feature_guard.cc:227] This TensorFlow binary is optimized",
    "oneDNN custom operations are on. You may see slightly different numerical results",
    "INFO:tensorflow:Using MirroredStrategy with devices ('/job:localhost/replica:0/task:0/device:CPU:0',)",
])
def test_a_noise_line_in_the_outputs_fails_quoting_it(tmp_path, line):
    with pytest.raises(AssertionError) as failure:
        check_no_noise(executed_notebook(tmp_path, f"some warning a user should see\n{line}\n"))
    assert line in str(failure.value) and "some warning a user should see" not in str(failure.value)


def test_clean_outputs_pass(tmp_path):
    check_no_noise(executed_notebook(tmp_path, "UserWarning: a warning a user should see\n"))


def test_a_papermill_warning_fails(tmp_path):
    with papermill_log() as log:
        logging.getLogger("papermill").warning("Passed unknown parameter: preset")
        logging.getLogger("papermill").info("Executing notebook with kernel: python3")
    assert log == ["Passed unknown parameter: preset"]
    with pytest.raises(AssertionError, match="Passed unknown parameter: preset"):
        check_no_noise(executed_notebook(tmp_path, ""), log)
