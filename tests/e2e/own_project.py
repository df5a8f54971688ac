"""A small pipeline of a new user's own, in a project folder outside this repository.

The project is the README tutorial's, shipped in include/examples/parcels: each day a CSV drop
of shipments (weight, distance, priority) with whether the parcel arrived late; its spec,
contract, suite and feature job (the project's own package `parcel_jobs`). Tests copy it into a
temporary folder, as a user would copy it to start their own, so they see only what the README shows.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

from include.examples.parcels.make_drops import SHIPMENTS, write_drop  # noqa: F401 (re-exported for tests)
from tests.conftest import ROOT

TUTORIAL = ROOT / "include" / "examples" / "parcels"
START = date(2026, 3, 1)
SPEC = (TUTORIAL / "dags" / "pipelines" / "parcels.yaml").read_text()


def write_project(root: Path) -> Path:
    """A copy of the tutorial project at `root` (the drop generator stays behind: it is no project file)."""
    shutil.copytree(TUTORIAL, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "make_drops.py"))
    return root


def days(count: int, first: date = START) -> list[date]:
    return [first + timedelta(days=n) for n in range(count)]
