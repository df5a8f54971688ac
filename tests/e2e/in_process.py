"""Run a project folder's DAGs in the test process (`dag.test()`), as `skylift run` would in its own."""

from __future__ import annotations

import sys
from pathlib import Path

from operators.project import Project


def activate_project(monkeypatch, root: Path, home: Path, packages: tuple[str, ...]) -> Path:
    """Point this process at the project (its specs, its packages importable, its generated DAG
    files as the DAGs folder); returns the DAG file of its first spec."""
    import airflow.settings

    project = Project(root=root, home=home)
    monkeypatch.setenv("SKYLIFT_PROJECT", str(root))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(project.dags_folder))
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(project.dags_folder))  # read once at import
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m.split(".")[0] in packages]:
        monkeypatch.delitem(sys.modules, name)
    return project.write_dag_files()[0]
