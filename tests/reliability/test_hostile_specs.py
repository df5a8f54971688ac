"""Hostile pipeline specs are refused with a clear message, and no credential reaches a log.

Each hostile spec is the shipped `churn.yaml` with one edit. It goes through the real compile
path twice: `dags_from_spec_file` (what a DAG file calls) and Airflow's own `DagBag` on a dags
folder that also holds a good spec, which must keep loading.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from include.errors import SpecError

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "dags" / "pipelines" / "churn.yaml"
KEY_ID = "AKIASKYLIFTTESTKEY01"
SECRET = "skylift-very-secret-value"
NO_SECRETS = ("specs must not hold secrets: keep credentials in an Airflow connection and name it by its id")
NOT_A_FEATURE_PACKAGE = "is not in an allowed feature package ['include.features'] (set SKYLIFT_FEATURE_PACKAGES to " \
                        "allow more)"
NAME_PATTERN = "String should match pattern '^[a-z][a-z0-9_]{0,62}$'"
CHURN_DAGS = {"churn_nightly", "churn_retrain", "churn_score"}
STUB = '''"""An Airflow DAG file like dags/churn_pipeline.py, for one spec."""
from pathlib import Path

from operators.spec.compiler import dags_from_spec_file

globals().update(dags_from_spec_file(Path({spec!r})))
'''


@dataclass(frozen=True)
class Hostile:
    id: str
    old: str  # text of the shipped spec ...
    new: str  # ... replaced by this (SENTINEL: a file the spec must never manage to create)
    at: str  # the line the message points at: the first line of the edited spec containing this
    message: str  # after "<file>:<line>: "
    secrets: tuple[str, ...] = ()  # must not appear in any message

    def write(self, folder: Path) -> tuple[Path, Path]:
        shipped = SHIPPED.read_text()
        assert self.old in shipped, f"the shipped spec changed: {self.old!r} is gone"
        spec = folder / "pipelines" / "hostile.yaml"
        spec.parent.mkdir(parents=True, exist_ok=True)
        sentinel = folder / "pwned"
        spec.write_text(shipped.replace(self.old, self.new.replace("SENTINEL", str(sentinel)), 1))
        return spec, sentinel

    def expected(self, spec: Path) -> str:
        text = spec.read_text()
        line = text[: text.index(self.at)].count("\n") + 1
        return f"{spec}:{line}: {self.message}"


URI = 'uri: "activity/{ds}/"'
SCHEMA = "schema: include/schemas/customer_activity.yaml"
SUITE = "suite: include/expectations/customer_activity.yaml"
JOB = "job: include.features.churn:build"
OWNER = "owner: ml-platform"
HOSTILE = [
    Hostile("uri-climbs-out-of-the-drops-root", URI, 'uri: "../../../etc/{ds}/"', "uri:",
            "sources.activity.uri: Value error, must not contain '..' path segments"),
    Hostile("uri-climbs-out-after-the-date", URI, 'uri: "activity/{ds}/../../../../etc"', "uri:",
            "sources.activity.uri: Value error, must not contain '..' path segments"),
    Hostile("schema-climbs-out-of-the-project", SCHEMA, "schema: include/../../../etc/passwd", "schema:",
            f"sources.activity.schema: path 'include/../../../etc/passwd' escapes the project folder {ROOT}"),
    Hostile("suite-absolute-path", SUITE, "suite: /etc/passwd", "suite:",
            f"sources.activity.validate.suite: path '/etc/passwd' escapes the project folder {ROOT}"),
    Hostile("dataset-climbs-out-of-the-lake", "dataset: customer_activity", "dataset: ../../customer_activity",
            "dataset:", f"sources.activity.dataset: {NAME_PATTERN}"),
    Hostile("features-dataset-climbs-out-of-the-lake", "lookback_days: 7", "lookback_days: 7\n  dataset: ../raw",
            "dataset: ../raw", f"features.dataset: {NAME_PATTERN}"),
    Hostile("python-object-apply-os-system", OWNER, 'owner: !!python/object/apply:os.system ["touch SENTINEL"]',
            "owner:", "not valid YAML: could not determine a constructor for the tag "
                      "'tag:yaml.org,2002:python/object/apply:os.system'"),
    Hostile("python-object-new-popen", OWNER, "owner: !!python/object/new:subprocess.Popen [[touch, SENTINEL]]",
            "owner:", "not valid YAML: could not determine a constructor for the tag "
                      "'tag:yaml.org,2002:python/object/new:subprocess.Popen'"),
    Hostile("python-name-os-system", OWNER, "owner: !!python/name:os.system", "owner:",
            "not valid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/name:os.system'"),
    Hostile("password-in-spec", "register:\n", f"register:\n  password: {SECRET}\n", "password:",
            f"register.password: key 'password' looks like a credential; {NO_SECRETS}", (SECRET,)),
    Hostile("aws-key-id-in-spec", OWNER, f"owner: {KEY_ID}", "owner:",
            f"owner: the value looks like a credential; {NO_SECRETS}", (KEY_ID,)),
    Hostile("credentials-in-a-uri", URI, f'uri: "s3://{KEY_ID}:{SECRET}@landing/activity/{{ds}}/"', "uri:",
            f"sources.activity.uri: the value looks like a credential; {NO_SECRETS}", (KEY_ID, SECRET)),
    Hostile("private-key-in-spec", "tags: [xgboost, classification]",
            'tags: [xgboost, "-----BEGIN OPENSSH PRIVATE KEY-----b3BlbnNzaC1rZXktdjE"]', "tags:",
            f"tags.1: the value looks like a credential; {NO_SECRETS}", ("b3BlbnNzaC1rZXktdjE",)),
    Hostile("token-under-kubernetes", 'node_selector: {nvidia.com/gpu.present: "true"}',
            f'node_selector: {{api_token: "{SECRET}"}}', "node_selector:",
            f"train.kubernetes.node_selector.api_token: key 'api_token' looks like a credential; {NO_SECRETS}",
            (SECRET,)),
    Hostile("feature-job-os-system", JOB, "job: os:system", "job:",
            f"features.job: module 'os' {NOT_A_FEATURE_PACKAGE}"),
    Hostile("feature-job-subprocess-run", JOB, "job: subprocess:run", "job:",
            f"features.job: module 'subprocess' {NOT_A_FEATURE_PACKAGE}"),
    Hostile("feature-job-lookalike-package", JOB, "job: include.features_evil:build", "job:",
            f"features.job: module 'include.features_evil' {NOT_A_FEATURE_PACKAGE}"),
]
# Mistakes that used to pass the loader and fail later, far from the spec line.
HOSTILE += [
    Hostile("cron-out-of-range", 'schedule: "0 2 * * *"', 'schedule: "0 25 * * *"', "schedule:",
            "dags.nightly.schedule: '0 25 * * *' is not a cron expression ([0 25 * * *] is not acceptable, out of "
            "range); use five fields like '0 2 * * *', one of ['@daily', '@hourly', '@monthly', '@quarterly', "
            "'@weekly', '@yearly'], 'on_new_features' or null"),
    Hostile("feature-job-module-missing", JOB, "job: include.features.nope:build", "job:",
            "features.job: module 'include.features.nope' not found (is the package installed, the name spelled "
            "right?)"),
    Hostile("model-param-typo", "params: {max_depth: 4,", "params: {max_dept: 4,", "params: {max_dept",
            "train.params.max_dept: not a xgboost parameter; did you mean 'max_depth'? (train.framework is xgboost)"),
]
CREDENTIAL_AS_KEY = Hostile("aws-key-id-as-a-key", "params: {max_depth: 4,", f"params: {{{KEY_ID}: 1, max_depth: 4,",
                            KEY_ID, f"train.params: a key of this mapping looks like a credential; {NO_SECRETS}",
                            (KEY_ID,))


def bag_for(tmp_path: Path, spec: Path):
    """Airflow's DagBag over a dags folder with a stub for `spec` and one for the shipped churn spec."""
    from airflow.dag_processing.dagbag import DagBag

    dags = tmp_path / "dags"
    dags.mkdir()
    hostile_stub = dags / "hostile_pipeline.py"
    hostile_stub.write_text(STUB.format(spec=str(spec)))
    (dags / "churn_pipeline.py").write_text(STUB.format(spec=str(SHIPPED)))
    return DagBag(dag_folder=str(dags)), hostile_stub


@pytest.mark.parametrize("case", [*HOSTILE, CREDENTIAL_AS_KEY], ids=lambda c: c.id)
def test_hostile_spec_is_refused_with_a_clear_message(case, tmp_path, capfd):
    from operators.spec.compiler import dags_from_spec_file

    spec, sentinel = case.write(tmp_path)
    with pytest.raises(SpecError) as caught:
        dags_from_spec_file(spec)
    expected = case.expected(spec)
    assert str(caught.value) == expected

    bag, hostile_stub = bag_for(tmp_path, spec)
    assert set(bag.import_errors) == {str(hostile_stub)}, bag.import_errors
    assert bag.import_errors[str(hostile_stub)].rstrip().endswith(f"SpecError: {expected}")
    assert CHURN_DAGS <= set(bag.dags)  # the good spec in the same folder still loads

    assert not sentinel.exists()
    out, err = capfd.readouterr()
    for secret in case.secrets:
        for text in (str(caught.value), bag.import_errors[str(hostile_stub)], out, err):
            assert secret not in text


def alias_bomb(levels: int, width: int = 9) -> str:
    """The 'billion laughs': each level lists the one before `width` times."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_is_refused(tmp_path):
    from operators.spec.loader import load_spec

    spec = tmp_path / "bomb.yaml"
    spec.write_text(alias_bomb(levels=5))
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    assert "alias" in str(caught.value).replace(str(spec), "<spec>")  # the path names this test


def test_no_credential_reaches_the_logs_of_a_night(tmp_path):
    """A whole night (`skylift demo`, one run) with an AWS connection in the environment: neither
    the key id nor the secret may appear in its output, its task logs, or any file it wrote.

    The lake is local here, so the connection is never used for I/O; this catches code that
    prints the environment, connections or settings.
    """
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_VAR_", "AIRFLOW_CONN_"))}
    env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps({
        "conn_type": "aws", "login": KEY_ID, "password": SECRET, "extra": {"region_name": "eu-west-1"},
    })
    done = subprocess.run(
        [sys.executable, "-m", "operators.cli", "--home", str(home), "demo", "--runs", "1", "--days", "1",
         "--customers", "800", "--end", "2026-11-10"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=540, check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    # the night ran to its last task (the first night of a pipeline whose outcomes land later
    # trains and scores nothing: its last tasks end skipped)
    assert re.search(r"^\s+evaluate\s+(success|skipped)", output, re.M), output[-4000:]
    for secret in (KEY_ID, SECRET):
        assert secret not in output
    written = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "_manifest.json" for p in written)
    leaks = [str(p) for p in written if KEY_ID.encode() in p.read_bytes() or SECRET.encode() in p.read_bytes()]
    assert leaks == []
    logs = home / "airflow" / "logs"
    assert not [p for p in logs.rglob("*") if p.is_file() and SECRET in p.read_text(errors="replace")]


def test_s3_lake_settings_never_show_the_secret(monkeypatch, capfd):
    """With an S3 lake the connection is used: the hook, the lake and their logs keep the keys hidden."""
    from operators.hooks.lake import LakeHook

    monkeypatch.setenv("AIRFLOW_CONN_SKYLIFT_S3", json.dumps({
        "conn_type": "aws", "login": KEY_ID, "password": SECRET,
        "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1"},
    }))
    hook = LakeHook(root="s3://skylift-lake/prefix", conn_id="skylift_s3")
    assert hook.storage_options()["secret"] == SECRET  # the connection really is used ...
    lake = hook.get_lake()
    out, err = capfd.readouterr()
    for text in (repr(hook), repr(lake), str(lake), lake.partition_uri("raw", "customer_activity", "2026-11-10"),
                 out, err):
        assert KEY_ID not in text and SECRET not in text  # ... and shown nowhere


def test_a_spec_that_claims_another_specs_model_breaks_both_dag_files(tmp_path):
    """Taking over: a second spec in the folder names churn's model. Both DAG files show the clash
    (each naming both files and lines), neither pipeline's DAGs load, and a spec elsewhere still does."""
    from airflow.dag_processing.dagbag import DagBag

    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    owner = pipelines / "churn.yaml"
    owner.write_text(SHIPPED.read_text())
    intruder = pipelines / "intruder.yaml"
    intruder.write_text(SHIPPED.read_text().replace("pipeline: churn", "pipeline: intruder", 1)
                        .replace("dataset: customer_activity", "dataset: intruder_activity", 1)
                        .replace("  churn_labels:", "  churn_labels:\n    dataset: intruder_labels", 1))
    dags = tmp_path / "dags"
    dags.mkdir()
    stubs = {}
    for spec in (owner, intruder):
        stubs[spec] = dags / f"{spec.stem}_pipeline.py"
        stubs[spec].write_text(STUB.format(spec=str(spec)))
    (dags / "elsewhere_pipeline.py").write_text(STUB.format(spec=str(ROOT / "dags" / "pipelines" / "spend.yaml")))

    bag = DagBag(dag_folder=str(dags))
    assert set(bag.import_errors) == {str(stub) for stub in stubs.values()}
    at = {spec: spec.read_text()[: spec.read_text().index("model_name:")].count("\n") + 1 for spec in stubs}
    for spec, other in ((owner, intruder), (intruder, owner)):
        error = bag.import_errors[str(stubs[spec])].rstrip()
        assert error.endswith(f"SpecError: {spec}:{at[spec]}: register.model_name: registered model 'churn' is also "
                              "written by "
                              f"{other}:{at[other]} (pipeline {yaml_pipeline(other)!r}); a pipeline name, a model "
                              "and a dataset each belong to one spec: rename one of them")
    assert not {d for d in bag.dags if d.startswith(("churn_", "intruder_"))}
    assert {"spend_nightly", "spend_retrain"} <= set(bag.dags)


def yaml_pipeline(spec: Path) -> str:
    import yaml

    return yaml.safe_load(spec.read_text())["pipeline"]
