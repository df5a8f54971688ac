"""Which spec `skylift rollback MODEL` rolls the deploy target of (operators/registry_cli.py
`deploying_spec`): the project's one spec registering MODEL, or the one `--pipeline` names when
two claim it (which the spec loader refuses: a model belongs to one spec)."""

from __future__ import annotations

import sys

import pytest

from include.errors import SpecError
from operators.registry_cli import deploying_spec
from tests.e2e.own_project import write_project

GATE = "  gate: {metric: auc, min: 0.5, beat_champion: false, min_holdout_rows: 10}\n"
KUBERNETES = "  target: kubernetes\n  kubernetes: {image: 'serve@sha256:" + "b" * 64 + "'}\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The tutorial project; its spec deploys model `parcels` to kubernetes."""
    root = write_project(tmp_path / "project")
    monkeypatch.setenv("SKYLIFT_PROJECT", str(root))  # what reading the specs sets is put back
    for name in [m for m in sys.modules if m.split(".")[0] == "parcel_jobs"]:
        monkeypatch.delitem(sys.modules, name)  # another test's copy of the project
    spec = root / "dags" / "pipelines" / "parcels.yaml"
    spec.write_text(spec.read_text().replace(GATE, GATE + KUBERNETES))
    return root


def copy_as(project, pipeline: str) -> None:
    """A second spec registering the same model, the copy of a pipeline under another name."""
    pipelines = project / "dags" / "pipelines"
    text = (pipelines / "parcels.yaml").read_text().replace(KUBERNETES, "")
    (pipelines / f"{pipeline}.yaml").write_text(
        text.replace("pipeline: parcels", f"pipeline: {pipeline}").replace("dataset: shipments", "dataset: eu"))


def test_the_one_spec_registering_the_model_is_found_and_none_for_another_model(project):
    spec = deploying_spec("parcels", None, str(project), None)
    assert (spec.pipeline, spec.deploy.target, spec.deploy.kubernetes.namespace) == ("parcels", "kubernetes", "default")
    assert deploying_spec("churn", None, str(project), None) is None


def test_two_specs_registering_one_model_need_pipeline_to_choose(project, capsys):
    from operators.cli import main

    copy_as(project, "parcels_eu")
    pipelines = project / "dags" / "pipelines"
    both = "parcels (parcels.yaml:31), parcels_eu (parcels_eu.yaml:31)"
    assert main(["rollback", "parcels", "--project", str(project)]) == 2
    assert capsys.readouterr().err == (
        f"2 specs in {pipelines} register model 'parcels': {both}. A model belongs to one spec (rename the others); "
        "until then say whose deploy target to roll out: --pipeline NAME\n")
    assert deploying_spec("parcels", "parcels", str(project), None).deploy.target == "kubernetes"
    assert deploying_spec("parcels", "parcels_eu", str(project), None).deploy.target == "alias"
    with pytest.raises(SpecError) as refused:
        deploying_spec("parcels", "parcels_us", str(project), None)
    assert str(refused.value) == f"pipeline 'parcels_us' does not register model 'parcels' in {pipelines}; these do: " \
                                 f"{both}"
