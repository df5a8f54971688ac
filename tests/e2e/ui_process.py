"""`skylift ui` as a user starts it: a subprocess that prints the URL and login, stopped by SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

BANNER = re.compile(r"Airflow UI: (http://127\.0\.0\.1:\d+)\s+\(user (\w+), password (\S+)\)")


def clean_environment() -> dict[str, str]:
    """This process's environment without the settings tests point at their own folders."""
    leaked = ("MLFLOW_", "AIRFLOW_VAR_", "AIRFLOW_CONN_", "AIRFLOW__", "AIRFLOW_HOME", "SKYLIFT_")
    return {k: v for k, v in os.environ.items() if not k.startswith(leaked)}


@dataclass
class UiProcess:
    proc: subprocess.Popen
    url: str
    user: str
    password: str

    def stop(self) -> tuple[str, str]:
        """SIGTERM, as a service manager or Ctrl-C would; returns what it printed."""
        os.kill(self.proc.pid, signal.SIGTERM)
        return self.proc.communicate(timeout=120)


def start_ui(project: Path, home: Path, timeout: float = 300) -> UiProcess:
    proc = subprocess.Popen([sys.executable, "-m", "operators.cli", "--home", str(home), "ui", "--port", "0",
                             "--project", str(project)], env=clean_environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            pytest.fail(f"skylift ui exited with {proc.returncode}:\n{''.join(seen)}{proc.stderr.read()}")
        seen.append(line)
        match = BANNER.search(line)
        if match:
            return UiProcess(proc, *match.groups())
    os.kill(proc.pid, signal.SIGTERM)
    pytest.fail(f"skylift ui printed no login in {timeout}s:\n{''.join(seen)}")


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc), the Airflow services' own children included."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
