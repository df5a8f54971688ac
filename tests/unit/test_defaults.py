"""`_defaults.yaml`: shared settings under every spec of a pipelines folder (operators/spec/defaults.py)."""

from __future__ import annotations

import sys

import pytest

from include.errors import SpecError
from operators.project import Project
from operators.spec.loader import load_spec
from tests.e2e.own_project import write_project


@pytest.fixture
def folder(tmp_path, monkeypatch):
    root = write_project(tmp_path / "project")
    monkeypatch.setenv("SKYLIFT_PROJECT", str(root))
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m.split(".")[0] == "parcel_jobs"]:
        monkeypatch.delitem(sys.modules, name)  # another test's copy of the project
    spec = root / "dags" / "pipelines" / "parcels.yaml"
    # the spec keeps its own retries (0) and drops its owner and tags
    spec.write_text(spec.read_text().replace("owner: logistics\n", "").replace("tags: [xgboost, classification]\n",
                                                                                 ""))
    return root / "dags" / "pipelines"


def test_values_are_inherited_and_a_spec_overrides_them(folder):
    (folder / "_defaults.yaml").write_text(
        "owner: data-platform\nretries: 3\ntags: [team-logistics]\nstart_date: 2025-01-01\n"
        "train:\n  resources: {memory: 8Gi, cpu: '4'}\n")
    spec = load_spec(folder / "parcels.yaml")
    assert spec.owner == "data-platform" and spec.tags == ["team-logistics"]
    assert spec.retries == 0  # the spec's own value
    assert spec.start_date.isoformat() == "2026-03-01"  # the spec's own value
    assert (spec.train.resources.memory, spec.train.resources.cpu) == ("8Gi", "4")

    text = (folder / "parcels.yaml").read_text()
    text = text.replace("  window_days: 1\n", "  window_days: 1\n  resources: {cpu: '1'}\n")
    (folder / "parcels.yaml").write_text(text)
    spec = load_spec(folder / "parcels.yaml")
    assert (spec.train.resources.memory, spec.train.resources.cpu) == ("8Gi", "1")  # merged key by key


def test_an_error_in_the_defaults_names_their_file_and_line(folder):
    defaults = folder / "_defaults.yaml"
    defaults.write_text("owner: data-platform\n# shared by every spec here\nretries: 99\n")
    with pytest.raises(SpecError, match=rf"^{defaults}:3: retries: Input should be less than or equal to 10$"):
        load_spec(folder / "parcels.yaml")
    defaults.write_text("owner: data-platform\nschedule: '0 3 * * *'\n")
    with pytest.raises(SpecError, match=rf"^{defaults}:2: schedule: unknown key; shared defaults may set "):
        load_spec(folder / "parcels.yaml")


def test_the_defaults_file_is_no_spec(folder, tmp_path):
    (folder / "_defaults.yaml").write_text("owner: data-platform\n")
    project = Project(root=folder.parent.parent, home=tmp_path / "home")
    assert [p.name for p in project.spec_files()] == ["parcels.yaml"]
    assert [p.name for p in project.write_dag_files()] == ["parcels_pipeline.py"]


def test_a_date_before_an_inherited_start_date_names_the_defaults_line(folder, tmp_path):
    from datetime import date

    from operators.runner import RunRequest, plan

    spec = folder / "parcels.yaml"
    spec.write_text(spec.read_text().replace("start_date: 2026-03-01\n", ""))
    (folder / "_defaults.yaml").write_text("owner: data-platform\nstart_date: 2026-02-01\n")
    project = Project(root=folder.parent.parent, home=tmp_path / "home")
    with pytest.raises(SpecError, match=rf"set start_date in {folder / '_defaults.yaml'}:2: start_date or pick"):
        plan(project, RunRequest("parcels", None, (date(2026, 1, 31),), None))


def test_lint_takes_the_defaults_for_no_spec_but_checks_them_when_named(folder):
    from operators.spec.lint import lint_spec, spec_files

    defaults = folder / "_defaults.yaml"
    defaults.write_text("owner: data-platform\nretries: -1\n")
    assert spec_files([folder]) == [folder / "parcels.yaml"]
    (problem,) = lint_spec(defaults).problems
    assert problem.lint_line() == f"{defaults}:2:1: retries: Input should be greater than or equal to 0"
