"""`make test` on a fresh machine: tests/tools/ensure_chromium.sh finds the browser the browser suite
drives, or (not root, so it may not install it) stops at once with the one command to run."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT

SCRIPT = ROOT / "tests" / "tools" / "ensure_chromium.sh"


def run(tmp_path: Path, chromium: Path, uid: str) -> subprocess.CompletedProcess:
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "id").write_text(f"#!/bin/sh\necho {uid}\n")  # who the script thinks it runs as
    (fake / "id").chmod(0o755)
    env = {"PATH": f"{fake}:{os.environ['PATH']}", "SKYLIFT_CHROMIUM": str(chromium)}
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False)


def test_an_installed_chromium_is_found(tmp_path):
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    result = run(tmp_path, browser, "1000")
    assert result.returncode == 0 and result.stderr == ""


def test_a_missing_chromium_stops_at_once_with_the_command(tmp_path):
    started = time.monotonic()
    result = run(tmp_path, tmp_path / "no-chromium", "1000")
    assert result.returncode == 1
    assert "install it with: sudo apt-get install -y chromium" in result.stderr
    assert f"the browser tests need Chromium at {tmp_path / 'no-chromium'}" in result.stderr
    assert time.monotonic() - started < 10
