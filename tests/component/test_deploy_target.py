"""Deploy targets without a cluster: the spec block, the rendered Deployment / Service / HPA checked
field by field against the kubernetes client models (and as the API server receives them), how a
Deployment's status reads as a rollout, and the smoke test of a live endpoint."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from include.deploy.manifests import VERSION_ANNOTATION, Release, render
from include.errors import RolloutFailed
from operators.spec.models import DeploySpec

DIGEST = "skylift-serving@sha256:" + "a" * 64
RELEASE = Release(pipeline="churn_eu", model_name="churn", version="7", tracking_uri="http://mlflow.ml:5000")


def deploy_spec(**kubernetes) -> DeploySpec:
    return DeploySpec.model_validate({"gate": {"metric": "auc"}, "target": "kubernetes",
                                      "kubernetes": {"image": DIGEST, **kubernetes}})


def test_the_deployment_runs_the_serving_app_pinned_to_the_version_with_probes_and_resources():
    from kubernetes.client import models as k8s

    spec = deploy_spec(namespace="serving", replicas=3, autoscaling=None, env_from_secret=["mlflow-creds"],
                       resources={"cpu": "250m", "memory": "512Mi", "cpu_limit": "1", "memory_limit": "768Mi"},
                       readiness={"period_seconds": 2, "failure_threshold": 2},
                       liveness={"initial_delay_seconds": 40, "timeout_seconds": 3}).kubernetes
    deployment = render(spec, RELEASE).deployment
    assert isinstance(deployment, k8s.V1Deployment)
    assert (deployment.metadata.name, deployment.metadata.namespace) == ("skylift-churn-eu", "serving")
    assert deployment.spec.replicas == 3 and deployment.spec.progress_deadline_seconds == 300
    assert deployment.spec.strategy.rolling_update.max_unavailable == 0
    selector = deployment.spec.selector.match_labels
    assert selector == {"app.kubernetes.io/name": "skylift-serving", "app.kubernetes.io/instance": "skylift-churn-eu"}
    template = deployment.spec.template
    assert selector.items() <= template.metadata.labels.items()
    assert template.metadata.annotations[VERSION_ANNOTATION] == "7"

    (container,) = template.spec.containers
    assert isinstance(container, k8s.V1Container)
    assert container.image == DIGEST
    assert container.command == ["python", "-m", "include.serving.server", "churn", "--version", "7", "--tracking-uri",
                                 "http://mlflow.ml:5000", "--host", "$(POD_IP)", "--port", "8080"]
    pod_ip = next(e for e in container.env if e.name == "POD_IP")
    assert pod_ip.value_from.field_ref.field_path == "status.podIP"
    assert [(p.name, p.container_port) for p in container.ports] == [("http", 8080)]
    assert container.resources.requests == {"cpu": "250m", "memory": "512Mi"}
    assert container.resources.limits == {"cpu": "1", "memory": "768Mi"}
    assert [s.secret_ref.name for s in container.env_from] == ["mlflow-creds"]
    ready, live = container.readiness_probe, container.liveness_probe
    assert isinstance(ready, k8s.V1Probe)
    assert (ready.http_get.path, ready.http_get.port) == ("/ping", "http") == (live.http_get.path, live.http_get.port)
    assert (ready.period_seconds, ready.failure_threshold, ready.initial_delay_seconds) == (2, 2, 0)
    assert (live.initial_delay_seconds, live.timeout_seconds, live.period_seconds) == (40, 3, 10)


def test_the_service_and_the_autoscaler_point_at_the_deployment():
    from kubernetes.client import models as k8s

    spec = deploy_spec(service={"type": "ClusterIP", "port": 8000},
                       autoscaling={"min_replicas": 2, "max_replicas": 12, "target_cpu_percent": 65}).kubernetes
    objects = render(spec, RELEASE)
    service, hpa = objects.service, objects.autoscaler
    assert isinstance(service, k8s.V1Service) and isinstance(hpa, k8s.V2HorizontalPodAutoscaler)
    assert service.spec.type == "ClusterIP"
    assert service.spec.selector == objects.deployment.spec.selector.match_labels
    (port,) = service.spec.ports
    assert (port.port, port.target_port, port.protocol) == (8000, "http", "TCP")
    assert objects.deployment.spec.replicas == 2  # autoscaled: starts at the minimum
    ref = hpa.spec.scale_target_ref
    assert (ref.api_version, ref.kind, ref.name) == ("apps/v1", "Deployment", "skylift-churn-eu")
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (2, 12)
    (metric,) = hpa.spec.metrics
    assert (metric.type, metric.resource.name, metric.resource.target.type,
            metric.resource.target.average_utilization) == ("Resource", "cpu", "Utilization", 65)
    assert render(deploy_spec(autoscaling=None).kubernetes, RELEASE).autoscaler is None
    assert render(spec, RELEASE, replicas=5).deployment.spec.replicas == 5  # what the HPA had chosen is kept


def test_the_objects_reach_the_api_server_under_its_own_field_names():
    from kubernetes.client import ApiClient

    objects = render(deploy_spec().kubernetes, RELEASE)
    body = ApiClient().sanitize_for_serialization(objects.deployment)
    container = body["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    assert container["env"][0] == {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    assert body["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%",
                                                                                   "maxUnavailable": 0}}
    hpa = ApiClient().sanitize_for_serialization(objects.autoscaler)
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}


@pytest.mark.parametrize(("block", "message"), [
    ({"target": "kubernetes"}, "target: kubernetes needs a `kubernetes:` block"),
    ({"kubernetes": {"image": DIGEST}}, "a `kubernetes:` block is set but target is 'alias'"),
    ({"target": "kubernetes", "kubernetes": {"image": DIGEST, "autoscaling": {"min_replicas": 4, "max_replicas": 2}}},
     "max_replicas (2) is below min_replicas (4)"),
    ({"target": "kubernetes", "kubernetes": {"image": DIGEST, "name": "Churn_Serving"}}, "should match pattern"),
    ({"target": "local", "local": {"url": "ftp://x"}}, "should match pattern"),
    ({"target": "canary"}, "Input should be 'alias', 'local' or 'kubernetes'"),
])
def test_a_deploy_block_that_does_not_fit_its_target_is_refused(block, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DeploySpec.model_validate({"gate": {"metric": "auc"}, **block})


def test_the_alias_target_stays_the_default_and_local_has_defaults():
    assert DeploySpec.model_validate({"gate": {"metric": "auc"}}).target == "alias"
    local = DeploySpec.model_validate({"gate": {"metric": "auc"}, "target": "local"})
    assert (local.local_target.url, local.local_target.wait_seconds) == ("http://127.0.0.1:5050", 60)


def test_the_deploy_task_gets_the_specs_target(tmp_path):
    from operators.spec.loader import load_spec
    from operators.spec.stages import BuildRequest, builtin

    root = Path(__file__).resolve().parents[2]
    text = (root / "dags" / "pipelines" / "churn.yaml").read_text()
    gate = "  gate: {metric: auc, min: 0.70, beat_champion: true, min_delta: 0.005, require_significant: true}\n"
    assert gate in text
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "churn.yaml").write_text(text.replace(gate, gate + f"  target: kubernetes\n  kubernetes: {{image: "
                                                                 f"'{DIGEST}', namespace: serving}}\n"))
    spec = load_spec(folder / "churn.yaml")
    nightly = spec.dags["nightly"]
    request = BuildRequest(spec=spec, dag_spec=nightly, stages=tuple(spec.dag_stages(nightly)))
    deploy = builtin("deploy").build(request)
    assert deploy.serving.target == "kubernetes" and deploy.serving.kubernetes.namespace == "serving"


def _deployment(generation=2, observed=2, replicas=2, updated=2, total=2, available=2, deadline=False):
    from kubernetes.client import models as k8s

    conditions = [k8s.V1DeploymentCondition(type="Progressing", status="False", reason="ProgressDeadlineExceeded",
                                            message='ReplicaSet "s-1" has timed out progressing.')] if deadline else []
    return k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name="s", namespace="ml", generation=generation),
        spec=k8s.V1DeploymentSpec(replicas=replicas, progress_deadline_seconds=60, selector=k8s.V1LabelSelector(),
                                  template=k8s.V1PodTemplateSpec()),
        status=k8s.V1DeploymentStatus(observed_generation=observed, updated_replicas=updated, replicas=total,
                                      available_replicas=available, conditions=conditions))


@pytest.mark.parametrize(("status", "expected"), [
    (dict(observed=1), (False, "the controller has not seen the new spec yet")),
    (dict(updated=1, total=3, available=2), (False, "1 of 2 new replicas have been updated")),
    (dict(total=3, available=2), (False, "1 old replicas are pending termination")),
    (dict(available=1), (False, "1 of 2 updated replicas are available")),
    (dict(), (True, "rolled out")),
])
def test_a_deployments_status_reads_as_kubectl_rollout_status_reads_it(status, expected):
    from include.deploy.kube import rollout_state

    assert rollout_state(_deployment(**status)) == expected


def test_a_rollout_past_its_progress_deadline_fails_at_once():
    from include.deploy.kube import rollout_state

    with pytest.raises(RolloutFailed, match=r"deployment ml/s exceeded its progress deadline \(60s\): ReplicaSet"):
        rollout_state(_deployment(updated=1, total=3, deadline=True))


# ---- the smoke test of a live endpoint (the local target), against a small server on loopback ----

class FakeServing:
    """A stand-in serving process: it says which version it serves and scores every row with `score`."""

    def __init__(self, version: str, score=lambda row: row[0] / 10, answered_by: str | None = None):
        self.version, self.score, self.answered_by = version, score, answered_by
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                if owner.answered_by:  # the serving app names the version that scored
                    self.send_header("X-Skylift-Model-Version", owner.answered_by)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"name": "churn", "version": owner.version})

            def do_POST(self):
                rows = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["dataframe_split"]["data"]
                self._send(200, {"predictions": [owner.score(r) for r in rows]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    servers = []

    def start(*args, **kwargs):
        servers.append(FakeServing(*args, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _local(url: str, wait: int = 1):
    from include.deploy.targets import LocalTarget, SmokeSample

    spec = DeploySpec.model_validate({"gate": {"metric": "auc"}, "target": "local",
                                      "local": {"url": url, "wait_seconds": wait}}).local_target
    rows = pd.DataFrame({"tenure": [1.0, 2.0, 3.0]})
    return LocalTarget(spec, RELEASE), SmokeSample(rows=rows, expected=np.array([0.1, 0.2, 0.3]))


def test_the_local_target_passes_when_the_server_serves_the_version_and_answers_like_batch(fake):
    target, sample = _local(fake("7").url)
    assert target.roll_out(sample).endswith("serves version 7; 3 smoke-test rows equal batch scoring")


def test_the_local_target_waits_for_the_server_to_follow_the_alias(fake):
    server = fake("6")
    threading.Timer(0.5, lambda: setattr(server, "version", "7")).start()
    target, sample = _local(server.url, wait=10)
    assert "serves version 7" in target.roll_out(sample)


@pytest.mark.parametrize(("version", "score", "message"), [
    ("6", lambda row: row[0] / 10, "did not serve version 7 within 1s: it serves version 6 (is `skylift serve "
                                   "churn_eu` running there?)"),
    ("7", lambda row: 0.5, "does not answer like batch scoring of version 7: 3 of 3 smoke-test rows differ (row 0: "
                           "served 0.5, batch 0.1)"),
])
def test_the_local_target_fails_on_another_version_or_other_answers(fake, version, score, message):
    target, sample = _local(fake(version, score).url)
    with pytest.raises(RolloutFailed) as failed:
        target.roll_out(sample)
    assert message in str(failed.value)


def test_answers_scored_by_another_version_fail_the_smoke_test(fake):
    """/version of one replica said 7, but another one (an old pod still behind the Service) scored."""
    target, sample = _local(fake("7", answered_by="6").url)
    with pytest.raises(RolloutFailed) as failed:
        target.roll_out(sample)
    assert "/invocations was answered by version 6, not 7" in str(failed.value)


def test_the_local_target_names_the_url_when_nothing_listens():
    from operators.ui import free_port

    target, sample = _local(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RolloutFailed, match=r"did not serve version 7 within 1s: no answer from http://127"):
        target.roll_out(sample)
