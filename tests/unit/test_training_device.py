"""Choosing the training device: `auto` asks the framework that trains, and XGBoost is asked
without importing torch (seconds of start-up in every training and search-trial process)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from include.errors import TrainingError
from include.training.entrypoint import resolve_device


def test_asking_xgboost_for_a_gpu_does_not_import_torch():
    code = ("import sys; from include.training.entrypoint import resolve_device; "
            "print(resolve_device('auto', 'xgboost')); assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("cpu", "cuda")


def test_no_visible_device_means_cpu_and_cuda_on_request_is_an_error(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert resolve_device("auto", "xgboost") == "cpu"
    with pytest.raises(TrainingError, match="device 'cuda' was requested but xgboost sees no GPU here"):
        resolve_device("cuda", "xgboost")
    assert resolve_device("cpu", "xgboost") == "cpu"
