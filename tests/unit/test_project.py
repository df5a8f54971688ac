"""Project folders: locating them, their generated DAG files, their environment, their packages."""

from __future__ import annotations

import sys
from datetime import date

import pytest

from include.errors import SpecError
from operators.project import SKYLIFT_ROOT, Project, day_range
from operators.spec.loader import feature_packages, project_root
from tests.e2e.own_project import write_project


def test_locate_defaults_and_refuses_a_folder_without_specs(tmp_path, monkeypatch):
    monkeypatch.delenv("SKYLIFT_PROJECT", raising=False)
    repo = Project.locate(None, None)
    assert repo.root == SKYLIFT_ROOT and repo.home == SKYLIFT_ROOT / ".skylift"
    with pytest.raises(SpecError, match="has no dags/pipelines/ folder"):
        Project.locate(tmp_path, tmp_path / "home")


def test_one_generated_dag_file_per_spec_and_stale_ones_removed(tmp_path):
    project = Project.locate(write_project(tmp_path / "p"), tmp_path / "home")
    (project.dags_folder).mkdir(parents=True)
    (project.dags_folder / "gone_pipeline.py").write_text("")
    files = project.write_dag_files()
    assert [f.name for f in files] == ["parcels_pipeline.py"]
    assert not (project.dags_folder / "gone_pipeline.py").exists()
    assert str(project.pipelines_dir / "parcels.yaml") in files[0].read_text()


def test_environment_points_everything_at_the_home_and_project(tmp_path):
    project = Project.locate(write_project(tmp_path / "p"), tmp_path / "home")
    env = project.environment()
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path / "home" / "dags")
    assert env["AIRFLOW_VAR_SKYLIFT_LAKE_ROOT"] == f"file://{tmp_path}/home/skylift/lake"
    assert env["AIRFLOW_VAR_SKYLIFT_DROPS_ROOT"] == f"file://{tmp_path}/home/skylift/drops"
    assert env["SKYLIFT_PROJECT"] == str(tmp_path / "p")
    assert env["PYTHONPATH"].split(":")[0] == str(tmp_path / "p")


def test_the_projects_own_package_is_allowed_but_no_module_from_elsewhere(tmp_path, monkeypatch):
    root = write_project(tmp_path / "p")
    for name in ("json", "operators"):  # the standard library and Skylift itself are not the project's
        (root / name).mkdir()
        (root / name / "__init__.py").write_text("")
    monkeypatch.setenv("SKYLIFT_PROJECT", str(root))
    # another test's project of the same name, imported earlier in this process, is not this one's
    monkeypatch.delitem(sys.modules, "parcel_jobs", raising=False)
    assert project_root() == root
    allowed = feature_packages()
    assert "parcel_jobs" in allowed
    assert "json" not in allowed and "operators" not in allowed
    monkeypatch.delenv("SKYLIFT_PROJECT")
    assert "parcel_jobs" not in feature_packages()


def test_a_package_of_the_same_name_imported_earlier_from_elsewhere_does_not_hide_the_projects(tmp_path, monkeypatch):
    """A long-lived process (a test session, a notebook) that imported another copy of the project
    still lints this one by where sys.path finds it now."""
    import importlib

    earlier = write_project(tmp_path / "earlier")
    monkeypatch.syspath_prepend(str(earlier))
    monkeypatch.delitem(sys.modules, "parcel_jobs", raising=False)
    importlib.import_module("parcel_jobs")  # teardown restores sys.modules as it was
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(earlier)])
    root = write_project(tmp_path / "p")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("SKYLIFT_PROJECT", str(root))
    assert "parcel_jobs" in feature_packages()


def test_day_range():
    assert day_range(date(2026, 2, 27), date(2026, 3, 1)) == [date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)]
    with pytest.raises(SpecError, match="after --to"):
        day_range(date(2026, 3, 2), date(2026, 3, 1))


def test_the_drops_may_be_elsewhere(tmp_path, monkeypatch):
    """`--drops` (or SKYLIFT_DROPS_ROOT): the drops are read where they land, not only under the home."""
    import contextlib
    import io

    from operators.cli import main

    project = Project.locate(write_project(tmp_path / "p"), tmp_path / "home")
    monkeypatch.setenv("SKYLIFT_DROPS_ROOT", "s3://landing/drops")
    assert project.environment()["AIRFLOW_VAR_SKYLIFT_DROPS_ROOT"] == "s3://landing/drops"
    monkeypatch.setenv("SKYLIFT_DROPS_ROOT", str(tmp_path / "landing"))
    for key, value in project.environment().items():
        monkeypatch.setenv(key, value)  # what the command sets, put back after the test
    assert project.environment()["AIRFLOW_VAR_SKYLIFT_DROPS_ROOT"] == f"file://{tmp_path}/landing"
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in [m for m in sys.modules if m.split(".")[0] == "parcel_jobs"]:
        monkeypatch.delitem(sys.modules, name)

    monkeypatch.delenv("SKYLIFT_DROPS_ROOT")
    out = io.StringIO()  # not capsys: Airflow's logging, set up on first use, would keep its closed stream
    try:
        with contextlib.redirect_stdout(out):
            assert main(["plan", "parcels", "--project", str(project.root), "--date", "2026-03-02",
                         "--drops", str(tmp_path / "elsewhere")]) == 0
    finally:  # this project's feature package is no later test's
        for name in [m for m in sys.modules if m.split(".")[0] == "parcel_jobs"]:
            del sys.modules[name]
    assert f"reads   file://{tmp_path}/elsewhere/shipments/2026-03-02/\n" in out.getvalue()
