"""Pipeline specs: typed, safe, and errors that say file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from include.errors import SpecError
from operators.spec.loader import load_spec

ROOT = Path(__file__).resolve().parents[2]
CHURN = (ROOT / "dags" / "pipelines" / "churn.yaml").read_text()


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "pipe.yaml"
    path.write_text(text)
    return path


def mutate(tmp_path, change) -> Path:
    body = yaml.safe_load(CHURN)
    change(body)
    return write(tmp_path, yaml.safe_dump(body, sort_keys=False))


@pytest.mark.parametrize("name", ["churn.yaml", "spend.yaml"])
def test_shipped_specs_load(name):
    spec = load_spec(ROOT / "dags" / "pipelines" / name)
    assert spec.dags["nightly"].stage_list[0] == "ingest"


def test_sources_and_labels_of_the_shipped_churn_spec():
    spec = load_spec(ROOT / "dags" / "pipelines" / "churn.yaml")
    assert [(b.name, b.dataset, b.task_id("ingest")) for b in spec.source_bindings] == [
        ("activity", "customer_activity", "ingest_activity"), ("churn_labels", "churn_labels", "ingest_churn_labels")]
    assert [b.name for b in spec.feature_sources] == ["activity"]  # outcomes never reach the feature job
    assert spec.label_source.dataset == "churn_labels" and spec.labels.delay_days == 3
    assert spec.dag_stages(spec.dags["nightly"])[-1] == "evaluate"


def test_the_one_source_shorthand_keeps_its_task_ids_and_has_no_evaluate(tmp_path):
    def shorthand(body):
        activity = body.pop("sources")["activity"]
        body["validate"] = activity.pop("validate")
        body["source"] = activity
        body.pop("labels")
        body["train"].pop("holdout_days")

    spec = load_spec(mutate(tmp_path, shorthand))
    (binding,) = spec.source_bindings
    assert (binding.dataset, binding.task_id("ingest"), binding.task_id("validate")) == (
        "customer_activity", "ingest", "validate")
    assert "evaluate" not in spec.dag_stages(spec.dags["nightly"])


def test_unknown_key_names_line_and_suggests(tmp_path):
    path = write(tmp_path, CHURN.replace("  lookback_days: 7", "  lookback_dayz: 7"))
    line = CHURN.splitlines().index("  lookback_days: 7") + 1
    with pytest.raises(SpecError, match=rf"pipe.yaml:{line}: features.lookback_dayz: unknown key; did you mean "
                                        r"'lookback_days'\?"):
        load_spec(path)


def test_wrong_type_names_the_key(tmp_path):
    path = write(tmp_path, CHURN.replace("lookback_days: 7", "lookback_days: seven"))
    with pytest.raises(SpecError, match=r"pipe.yaml:\d+: features.lookback_days: Input should be a valid integer"):
        load_spec(path)


def test_bad_enum_value(tmp_path):
    path = write(tmp_path, CHURN.replace("on_failure: quarantine", "on_failure: ignore"))
    with pytest.raises(SpecError, match=r"sources.activity.validate.on_failure: Input should be 'fail', 'warn' or "
                                        r"'quarantine'"):
        load_spec(path)


def test_python_object_tags_are_refused(tmp_path):
    path = write(tmp_path, CHURN + "\nextra: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match=r"pipe.yaml:\d+: not valid YAML"):
        load_spec(path)


@pytest.mark.parametrize("patch,needle", [
    (lambda b: b["sources"]["activity"].update(password="hunter22"),
     "sources.activity.password: key 'password' looks like a credential"),
    (lambda b: b["sources"]["activity"].update(uri="s3://AKIAABCDEFGHIJKLMNOP@bucket/{ds}/"),
     "the value looks like a credential"),
    (lambda b: b["sources"]["activity"].update(uri="s3://user:pw@bucket/{ds}/"), "the value looks like a credential"),
    (lambda b: b["train"]["params"].update(api_key="x"), "train.params.api_key"),
])
def test_secrets_are_refused_without_echoing_them(tmp_path, patch, needle):
    path = mutate(tmp_path, patch)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert needle in str(err.value)
    for secret in ("hunter22", "AKIAABCDEFGHIJKLMNOP", ":pw@"):
        assert secret not in str(err.value)


@pytest.mark.parametrize("patch,needle", [
    (lambda b: b["sources"]["activity"].update(schema="../../etc/passwd"), "escapes the project folder"),
    (lambda b: b["sources"]["activity"].update(uri="../{ds}/"), "must not contain '..'"),
    (lambda b: b["sources"]["activity"].update(uri="activity/"), "must contain {ds}"),
    (lambda b: b["sources"]["activity"].update(dataset="../x"),
     "sources.activity.dataset: String should match pattern"),
    (lambda b: b["features"].update(job="os:system"), "module 'os' is not in an allowed feature package"),
    (lambda b: b["features"].update(job="include.features.churn.build"), "must look like"),
    (lambda b: b["sources"]["activity"]["validate"].update(suite="include/expectations/nope.yaml"),
     "sources.activity.validate.suite: file"),
    (lambda b: b.update(source={"uri": "a/{ds}/", "schema": "include/schemas/customer_activity.yaml"}), "not both"),
    (lambda b: b["labels"].update(source="outcomes"), "labels.source 'outcomes' must name an entry of `sources:`"),
    (lambda b: b["train"].update(target="next_30d_spend"), "must be labels.column 'churned'"),
    (lambda b: (b.pop("labels"), b["dags"]["nightly"].update(stages=["score", "evaluate"])),
     "stage 'evaluate' needs a top-level 'labels' section"),
    (lambda b: b["deploy"]["gate"].update(metric="aucc"), "did you mean 'auc'"),
    (lambda b: b["deploy"].update(gate={"metrics": [{"metric": "auc"}, {"metric": "logloss"}, {"metric": "f11"}]}),
     "deploy.gate.metrics.2.metric: 'f11' is not a classification metric"),
    (lambda b: b["deploy"]["gate"].update(metrics=[{"metric": "auc"}]), "give either `metric`"),
    (lambda b: b["deploy"].update(gate={"metrics": [{"metric": "auc", "must_beat": {"margin": -0.1}}]}),
     "deploy.gate.metrics.0.must_beat.margin"),
    (lambda b: b["dags"]["retrain"].update(stages=["deploy"]), "stage 'deploy' needs 'register' in the same DAG"),
    (lambda b: b["dags"]["retrain"]["params"].update(gpu={"type": "integer"}), "'gpu' is a built-in parameter"),
    (lambda b: b.pop("features"), "stage 'features' needs a top-level 'features' section"),
    (lambda b: b["dags"].update(Nightly={"schedule": None}), "dags.Nightly"),
    (lambda b: b["train"]["kubernetes"].update(tolerations=[{"key": "nvidia.com/gpu", "efect": "NoSchedule"}]),
     "train.kubernetes.tolerations.0.efect: unknown key"),
    (lambda b: b["train"]["kubernetes"].update(tolerations=[{"key": "gpu", "effect": "NoSchedul"}]),
     "train.kubernetes.tolerations.0.effect"),
])
def test_spec_errors(tmp_path, patch, needle):
    path = mutate(tmp_path, patch)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_a_gate_of_several_metrics_loads_and_becomes_one_gate_each(tmp_path):
    from include.gate import gates_from

    metrics = [{"metric": "auc", "min": 0.7, "must_beat": {"margin": 0.0}},
               {"metric": "logloss", "must_beat": {"margin": 0.05, "relative": True}},
               {"metric": "accuracy", "min": 0.6, "must_beat": None}]
    spec = load_spec(mutate(tmp_path, lambda b: b["deploy"].update(gate={"metrics": metrics,
                                                                         "min_holdout_rows": 80})))
    gates = gates_from("classification", spec.deploy.gate.model_dump())
    assert [(g.metric, g.min, g.beat_champion, g.min_delta, g.relative, g.min_holdout_rows) for g in gates] == [
        ("auc", 0.7, True, 0.0, False, 80), ("logloss", None, True, -0.05, True, 80),
        ("accuracy", 0.6, False, 0.0, False, 80)]
    shorthand = load_spec(ROOT / "dags" / "pipelines" / "churn.yaml").deploy.gate
    assert [(g.metric, g.min) for g in gates_from("classification", shorthand.model_dump())] == [("auc", 0.7)]


def test_not_a_mapping(tmp_path):
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(write(tmp_path, "- a\n- b\n"))


def line_of(path: Path, text: str, after: str = "") -> int:
    body = path.read_text()
    return body[: body.index(text, body.index(after))].count("\n") + 1


@pytest.mark.parametrize("framework,params,needle", [
    ("xgboost", {"max_dept": 4}, "train.params.max_dept: not a xgboost parameter; did you mean 'max_depth'?"),
    ("xgboost", {"eta": "fast"}, "train.params.eta: Input should be a valid number"),
    ("pytorch", {"hiden": [32]}, "train.params.hiden: not a pytorch parameter; did you mean 'hidden'?"),
    ("pytorch", {"hidden": [32, -1]}, "train.params.hidden: hidden.1: Input should be greater than or equal to 1"),
    ("pytorch", {"epochs": "30"}, "train.params.epochs: Input should be a valid integer"),
])
def test_train_params_are_typed_per_framework(tmp_path, framework, params, needle):
    def change(b):
        b["train"].update(framework=framework, params=params)
        b["dags"]["retrain"]["params"] = {}

    path = mutate(tmp_path, change)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    key = next(iter(params))
    assert str(err.value).startswith(f"{path}:{line_of(path, key + ':')}: {needle}")
    assert f"(train.framework is {framework})" in str(err.value)


RETRAIN = ("dags", "retrain", "params")


@pytest.mark.parametrize("param,needle", [
    ({"max_dept": {"type": "integer", "default": 4}}, "max_dept: not a xgboost parameter; did you mean 'max_depth'?"),
    ({"eta": {"type": "number", "minimum": 0.5, "maximum": 0.1}}, "minimum 0.5 is above maximum 0.1"),
    ({"eta": {"type": "number", "default": 0.9, "minimum": 0.01, "maximum": 0.5}},
     "default 0.9 is outside the bounds [0.01, 0.5]"),
    ({"eta": {"type": "number", "minimum": 0, "maximum": 1}},
     "minimum 0.0 is outside what xgboost accepts: Input should be greater than 0"),
    ({"max_depth": {"type": "integer", "minimum": 1, "maximum": 100}},
     "maximum 100 is outside what xgboost accepts: Input should be less than or equal to 64"),
    ({"max_depth": {"type": "number", "minimum": 1, "maximum": 12}},
     "type 'number' does not fit the xgboost parameter, which is of type 'integer'"),
    ({"subsample": {"type": "number"}}, "needs a default: give `default:` here or set train.params.subsample"),
    ({"grow_policy": {"type": "string", "default": "depthwise", "enum": ["depthwise", "leafwise"]}},
     "enum value 'leafwise' is outside what xgboost accepts"),
])
def test_trigger_params_are_parameters_of_the_model_within_its_bounds(tmp_path, param, needle):
    path = mutate(tmp_path, lambda b: b["dags"]["retrain"].update(params=param))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    name = next(iter(param))
    where = f"{path}:{line_of(path, name + ':', after='retrain:')}: dags.retrain.params.{name}"
    assert str(err.value).startswith(f"{where}: {needle}")


def test_trigger_params_need_a_train_stage(tmp_path):
    path = mutate(tmp_path, lambda b: b["dags"]["score"].update(params={"eta": {"type": "number", "default": 0.1}}))
    with pytest.raises(SpecError, match=r"dags.score.params.eta: only a DAG with a train stage takes "
                                        r"hyper-parameters \(stages of 'score': \['score'\]\)"):
        load_spec(path)


@pytest.mark.parametrize("schedule", ["0 25 * * *", "every night", "* * * *", "@nightly"])
def test_invalid_cron_is_a_spec_error_with_its_line(tmp_path, schedule):
    path = mutate(tmp_path, lambda b: b["dags"]["nightly"].update(schedule=schedule))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}:{line_of(path, 'schedule:')}: dags.nightly.schedule: "
                                     f"{schedule!r} is not a cron expression")


@pytest.mark.parametrize("schedule", ["@daily", "@once", "on_new_features", None, "*/15 6-18 * * 1-5"])
def test_valid_schedules_load(tmp_path, schedule):
    load_spec(mutate(tmp_path, lambda b: b["dags"]["nightly"].update(schedule=schedule)))


@pytest.mark.parametrize("job,needle", [
    ("include.features.chrun:build", "module 'include.features.chrun' not found (is the package installed, the "
                                     "name spelled right?)"),
    ("include.features.churn:buld", "module 'include.features.churn' defines no function 'buld'; did you mean "
                                    "include.features.churn:build?"),
])
def test_feature_job_must_exist(tmp_path, job, needle):
    path = mutate(tmp_path, lambda b: b["features"].update(job=job))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(err.value) == f"{path}:{line_of(path, 'job:')}: features.job: {needle}"


def test_checking_a_spec_imports_neither_its_feature_job_nor_pyspark_nor_numpy():
    """A fresh interpreter: in this one, other tests may have imported them already. (numpy: the
    gate's metrics are read at parse time, its arithmetic only when a deploy runs.)"""
    import json
    import subprocess
    import sys

    code = ("import json, sys; from operators.spec.loader import load_spec; "
            f"load_spec({str(ROOT / 'dags' / 'pipelines' / 'churn.yaml')!r}); "
            "print(json.dumps(sorted(m for m in ('pyspark', 'numpy', 'include.features.churn') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_every_problem_is_raised_at_once(tmp_path):
    """The DAG file shows one SpecError listing each problem on its own line, not just the first."""
    path = write(tmp_path, CHURN.replace("metric: auc", "metric: acu").replace('"0 2 * * *"', '"0 2 * *"')
                 .replace("max_depth: 4, eta", "max_dept: 4, eta"))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    lines = str(err.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["deploy.gate.metric", "dags.nightly.schedule",
                                                       "train.params.max_dept"]
    assert all(line.startswith(f"{path}:") for line in lines)


def test_a_schema_error_does_not_hide_a_bad_cron(tmp_path):
    path = write(tmp_path, CHURN.replace("  lookback_days: 7", "  lookback_dayz: 7")
                 .replace('"0 2 * * *"', '"0 2 * *"'))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert [line.split(": ")[1] for line in str(err.value).splitlines()] == ["features.lookback_dayz",
                                                                             "dags.nightly.schedule"]


def test_a_label_source_that_feeds_the_features_too_is_enough_alone_and_reaches_the_job(tmp_path):
    """`labels.feeds_features`: rows that carry features and, once known, their outcome (one source)."""
    from operators.spec.compiler import dags_from_spec_file

    def one_source(body, feeds: bool):
        body["sources"] = {"activity": {**body["sources"]["activity"], "schema": "include/schemas/churn_labels.yaml"}}
        body["labels"]["source"] = "activity"
        if feeds:
            body["labels"]["feeds_features"] = True

    with pytest.raises(SpecError, match="unless labels.feeds_features says the label source's rows carry the features"):
        load_spec(mutate(tmp_path, lambda b: one_source(b, feeds=False)))
    path = mutate(tmp_path, lambda b: one_source(b, feeds=True))
    spec = load_spec(path)
    assert spec.feature_inputs == {"activity": "customer_activity"} and spec.label_source.name == "activity"
    nightly = dags_from_spec_file(path)["churn_nightly"]
    assert nightly.get_task("features").sources == {"activity": "customer_activity"}
    assert "validate_activity" in nightly.get_task("features").upstream_task_ids
    assert nightly.get_task("train").labels_dataset == "customer_activity"
