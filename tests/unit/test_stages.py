"""The stage registry (operators/spec/stages.py) and custom stages (operators/spec/custom_stages.py)."""

from __future__ import annotations

import pytest

from include.errors import SpecError
from operators.spec.loader import load_spec
from operators.spec.stages import BUILTIN, RESERVED_PARAMS
from tests.e2e.custom_stage_project import CUSTOM, write_custom_stage_project


@pytest.fixture
def project(tmp_path, monkeypatch):
    import sys

    root = write_custom_stage_project(tmp_path / "project")
    monkeypatch.setenv("SKYLIFT_PROJECT", str(root))
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m.split(".")[0] in ("parcel_stages", "parcel_jobs")]:
        monkeypatch.delitem(sys.modules, name)
    return root


def test_the_loaders_tables_derive_from_the_registry():
    assert list(BUILTIN) == ["ingest", "validate", "features", "train", "register", "deploy", "score", "monitor",
                             "evaluate"]
    assert RESERVED_PARAMS == {"ds", "rebuild", "train_start", "train_end", "gpu", "search", "search_trials",
                               "force_deploy"}
    assert {name: s.needs_in_dag for name, s in BUILTIN.items() if s.needs_in_dag} == {"register": "train",
                                                                                         "deploy": "register",
                                                                                         "monitor": "score"}


def test_a_custom_stage_is_wired_between_built_in_ones(project):
    from operators.spec.compiler import dags_from_spec_file

    dag = dags_from_spec_file(project / "dags" / "pipelines" / "parcels.yaml")["parcels_daily"]
    assert [t.task_id for t in dag.topological_sort()] == ["ingest", "validate", "heavy_share", "features"]
    task = dag.get_task("heavy_share")
    assert (task.inputs, task.zone, task.dataset) == ([("validated", "shipments")], "reports", "parcels_heavy_share")
    assert task.config == {"min_weight_kg": 20}


def test_an_unregistered_stage_is_refused_with_its_line(project):
    spec = project / "dags" / "pipelines" / "parcels.yaml"
    spec.write_text(spec.read_text().replace("heavy_share, features]", "heavy_shares, features]"))
    with pytest.raises(SpecError, match=r"parcels.yaml:\d+: dags.daily.stages.2: unknown stage 'heavy_shares'; "
                                        r"built-in stages are .*custom stages registered: \['heavy_share'\]"):
        load_spec(spec)


def test_the_stages_own_model_checks_its_config(project):
    spec = project / "dags" / "pipelines" / "parcels.yaml"
    spec.write_text(spec.read_text().replace(CUSTOM, CUSTOM.replace("min_weight_kg: 20", "min_weight: 20")))
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    lines = str(caught.value).splitlines()
    assert any("custom.heavy_share.config.min_weight_kg: Field required" in line for line in lines)
    assert any("custom.heavy_share.config.min_weight: Extra inputs are not permitted" in line for line in lines)


def test_a_custom_stage_needs_its_section_and_no_class_path_is_read_from_yaml(project):
    spec = project / "dags" / "pipelines" / "parcels.yaml"
    spec.write_text(spec.read_text().replace(CUSTOM, "\ncustom:\n  heavy_share:\n    reads: [validated/shipments]\n"
                                                     "    operator: parcel_stages.shares:HeavyShare\n"))
    with pytest.raises(SpecError, match=r"custom.heavy_share.operator: unknown key"):
        load_spec(spec)
    spec.write_text(spec.read_text().split("\ncustom:")[0])
    with pytest.raises(SpecError, match=r"stage 'heavy_share' needs a `custom.heavy_share` section"):
        load_spec(spec)


def test_two_specs_publishing_one_custom_dataset_are_refused(project):
    spec = project / "dags" / "pipelines" / "parcels.yaml"
    text = spec.read_text().replace("pipeline: parcels\n", "pipeline: parcels_copy\n")
    text = text.replace("dataset: shipments", "dataset: shipments_copy").replace("model_name: parcels",
                                                                               "model_name: parcels_copy")
    spec.with_name("parcels_copy.yaml").write_text(text.replace(
        "    reads: [validated/shipments]\n", "    reads: [validated/shipments]\n    dataset: parcels_heavy_share\n"))
    with pytest.raises(SpecError, match=r"custom stage dataset 'parcels_heavy_share' is also written by .*copy"):
        load_spec(spec)


def test_a_stage_registered_as_an_entry_point_needs_no_stage_modules(project, monkeypatch):
    """The other explicit registration: a `skylift.stages` entry point of an installed package
    (`heavy_share = "parcel_stages.shares:HEAVY_SHARE"`), with no `stage_modules:` in `_defaults.yaml`."""
    from importlib.metadata import EntryPoint

    from operators.spec import custom_stages
    from operators.spec.compiler import dags_from_spec_file

    (project / "dags" / "pipelines" / "_defaults.yaml").write_text("owner: logistics-team\n")
    points = [EntryPoint("heavy_share", "parcel_stages.shares:HEAVY_SHARE", custom_stages.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(custom_stages, "entry_points",
                        lambda group: points if group == custom_stages.ENTRY_POINT_GROUP else [])
    dag = dags_from_spec_file(project / "dags" / "pipelines" / "parcels.yaml")["parcels_daily"]
    assert [t.task_id for t in dag.topological_sort()] == ["ingest", "validate", "heavy_share", "features"]
    assert dag.get_task("heavy_share").stage_module == "parcel_stages.shares"

    points[0] = EntryPoint("heavy", "parcel_stages.shares:HEAVY_SHARE", custom_stages.ENTRY_POINT_GROUP)
    with pytest.raises(SpecError, match="entry point 'heavy' .* must be a CustomStage named 'heavy'"):
        load_spec(project / "dags" / "pipelines" / "parcels.yaml")
