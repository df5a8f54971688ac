"""The Kubernetes API double itself: the scheduler's reasons, and a pod's process lifecycle through the
kubernetes client and an ordinary kubeconfig."""

from __future__ import annotations

import time

import pytest

from tests.k8s_double import KubeDouble, Node
from tests.k8s_double.scheduling import choose_node

TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
NODES = [Node("cpu-a", cpu="4", memory="8Gi"),
         Node("gpu-a", gpu=1, labels={"nvidia.com/gpu.product": "A100"}, taints=(TAINT,))]
TOLERATE_GPU = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def _pod(limits=None, requests=None, selector=None, tolerations=None, affinity=None) -> dict:
    resources = {"limits": limits or {}, "requests": requests or {}}
    return {"spec": {"containers": [{"name": "base", "resources": resources}],
                     "nodeSelector": selector or {}, "tolerations": tolerations or [], "affinity": affinity}}


@pytest.mark.parametrize(("pod", "message"), [
    (_pod(limits={"nvidia.com/gpu": "2"}, tolerations=TOLERATE_GPU),
     "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."),
    (_pod(limits={"nvidia.com/gpu": "1"}),
     "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) had untolerated taint "
     "{nvidia.com/gpu: present}."),
    (_pod(selector={"pool": "tpu"}, tolerations=TOLERATE_GPU),
     "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."),
    (_pod(requests={"cpu": "10", "memory": "1Gi"}, tolerations=TOLERATE_GPU),
     "0/2 nodes are available: 2 Insufficient cpu."),
    (_pod(tolerations=TOLERATE_GPU, affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                                                     "values": ["H100"]}]}]}}}),
     "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."),
])
def test_an_unschedulable_pod_gets_the_schedulers_wording(pod, message):
    assert choose_node(NODES, pod, {}) == (None, message)


def test_a_pod_goes_to_a_node_that_fits_counting_what_is_already_bound():
    gpu_pod = _pod(limits={"nvidia.com/gpu": "1"}, tolerations=TOLERATE_GPU)
    node, _ = choose_node(NODES, gpu_pod, {})
    assert node.name == "gpu-a"
    _, message = choose_node(NODES, gpu_pod, {"gpu-a": {"nvidia.com/gpu": 1}})
    assert message == "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    assert choose_node(NODES, _pod(requests={"cpu": "500m", "memory": "512Mi"}), {})[0].name == "cpu-a"


@pytest.fixture
def api(tmp_path, monkeypatch):
    from kubernetes import client, config

    monkeypatch.setenv("SKYLIFT_TEST_LEAK", "from-the-test-process")
    with KubeDouble(NODES, secrets={"creds": {"LAKE_KEY": "k3y"}}) as double:
        api_client = config.new_client_from_config(str(double.write_kubeconfig(tmp_path / "kubeconfig")))
        yield double, client.CoreV1Api(api_client), client.AppsV1Api(api_client)


def _container_pod(name: str, code: str, secret: str = "creds"):
    from kubernetes.client import models as k8s

    return k8s.V1Pod(metadata=k8s.V1ObjectMeta(name=name, labels={"app": "t"}), spec=k8s.V1PodSpec(containers=[
        k8s.V1Container(name="base", image="ignored:1", command=["python", "-c", code],
                        env=[k8s.V1EnvVar(name="GREETING", value="hello")],
                        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=secret))])]))


def _until(condition, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_pods_command_runs_with_its_env_and_secrets_and_its_exit_code_ends_it(api):
    double, core, _ = api
    code = ("import os, sys; print(os.environ['GREETING'], os.environ['LAKE_KEY'], "
            "os.environ.get('SKYLIFT_TEST_LEAK')); sys.exit(3)")
    core.create_namespaced_pod("ml", _container_pod("p1", code))
    stream = core.read_namespaced_pod_log("p1", "ml", follow=True, _preload_content=False)
    assert b"".join(stream.stream()).decode() == "hello k3y None\n"  # the test's own env does not leak in
    _until(lambda: core.read_namespaced_pod("p1", "ml").status.phase == "Failed")
    status = core.read_namespaced_pod("p1", "ml").status
    assert status.container_statuses[0].state.terminated.exit_code == 3
    assert [p.metadata.name for p in core.list_namespaced_pod("ml", label_selector="app=t").items] == ["p1"]
    assert core.list_namespaced_pod("ml", label_selector="app=other").items == []
    events = core.list_namespaced_event("ml", field_selector="involvedObject.name=p1").items
    assert [e.reason for e in events][:2] == ["Scheduled", "Started"]


def test_deleting_a_running_pod_ends_its_process(api):
    double, core, _ = api
    core.create_namespaced_pod("ml", _container_pod("sleeper", "import time; time.sleep(300)"))
    _until(lambda: core.read_namespaced_pod("sleeper", "ml").status.phase == "Running")
    core.delete_namespaced_pod("sleeper", "ml")
    _until(lambda: double.cluster.processes["sleeper"].poll() is not None, timeout=30)
    assert core.list_namespaced_pod("ml").items == []


def test_a_missing_secret_keeps_the_container_waiting(api):
    _, core, _ = api
    core.create_namespaced_pod("ml", _container_pod("nosecret", "print(1)", secret="absent"))
    waiting = core.read_namespaced_pod("nosecret", "ml").status.container_statuses[0].state.waiting
    assert (waiting.reason, waiting.message) == ("CreateContainerConfigError", 'secret "absent" not found')


SERVER = """
import http.server, json, os, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        body = json.dumps({"pod": os.environ["HOSTNAME"], "answer": os.environ["ANSWER"], "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
"""


def _deployment(answer: str, command: list[str] | None = None, replicas: int = 2):
    from kubernetes.client import models as k8s

    command = command or ["python", "-c", SERVER, "$(POD_IP)", "8080"]
    probe = k8s.V1Probe(http_get=k8s.V1HTTPGetAction(path="/ping", port="http"), period_seconds=1)
    container = k8s.V1Container(
        name="s", image="serve:1", command=command, readiness_probe=probe,
        ports=[k8s.V1ContainerPort(name="http", container_port=8080)],
        env=[k8s.V1EnvVar(name="ANSWER", value=answer), k8s.V1EnvVar(name="POD_IP", value_from=k8s.V1EnvVarSource(
            field_ref=k8s.V1ObjectFieldSelector(field_path="status.podIP")))])
    template = k8s.V1PodTemplateSpec(metadata=k8s.V1ObjectMeta(labels={"app": "serve"}),
                                     spec=k8s.V1PodSpec(containers=[container]))
    return k8s.V1Deployment(metadata=k8s.V1ObjectMeta(name="serve"), spec=k8s.V1DeploymentSpec(
        replicas=replicas, selector=k8s.V1LabelSelector(match_labels={"app": "serve"}), template=template,
        progress_deadline_seconds=3))


def _proxied(core, service: str, path: str) -> dict:
    import json

    answer = core.connect_get_namespaced_service_proxy_with_path(service, "ml", path, _preload_content=False)
    return json.loads(answer.data)


def _rolled_out(apps) -> bool:
    d = apps.read_namespaced_deployment("serve", "ml")
    s = d.status
    return (s.observed_generation == d.metadata.generation and s.updated_replicas == d.spec.replicas
            == s.ready_replicas == s.replicas)


def test_a_deployment_rolls_out_ready_pods_behind_a_service_and_keeps_the_old_ones_while_new_never_get_ready(api):
    from kubernetes.client import models as k8s

    double, core, apps = api
    apps.create_namespaced_deployment("ml", _deployment("one"))
    core.create_namespaced_service("ml", k8s.V1Service(metadata=k8s.V1ObjectMeta(name="serve"), spec=k8s.V1ServiceSpec(
        selector={"app": "serve"}, ports=[k8s.V1ServicePort(name="web", port=80, target_port="http")])))
    _until(lambda: _rolled_out(apps))
    pods = core.list_namespaced_pod("ml", label_selector="app=serve").items
    assert len({p.status.pod_ip for p in pods}) == 2 and all(p.status.pod_ip.startswith("127.") for p in pods)
    answers = [_proxied(core, "serve:web", "version") for _ in range(4)]
    assert {a["pod"] for a in answers} == {p.metadata.name for p in pods}  # round robin over both endpoints
    assert {(a["answer"], a["path"]) for a in answers} == {("one", "/version")}
    assert apps.read_namespaced_deployment("serve", "ml").metadata.annotations[
        "deployment.kubernetes.io/revision"] == "1"

    current = apps.read_namespaced_deployment("serve", "ml")
    apps.replace_namespaced_deployment("serve", "ml", _deployment("two"))  # no resourceVersion: last write wins
    _until(lambda: _rolled_out(apps) and apps.read_namespaced_deployment("serve", "ml").metadata.generation == 2)
    assert _proxied(core, "serve", "y")["answer"] == "two"
    assert not {p.metadata.name for p in pods} & {
        p.metadata.name for p in core.list_namespaced_pod("ml", label_selector="app=serve").items}
    stale = _deployment("three")
    stale.metadata.resource_version = current.metadata.resource_version
    with pytest.raises(Exception, match="Conflict"):
        apps.replace_namespaced_deployment("serve", "ml", stale)

    # a template whose pods never answer their probe: the old pods keep serving, the deadline passes
    sleeper = ["python", "-c", "import time; time.sleep(60)"]
    apps.patch_namespaced_deployment("serve", "ml", _deployment("four", sleeper))
    _until(lambda: any(c.reason == "ProgressDeadlineExceeded"
                       for c in apps.read_namespaced_deployment("serve", "ml").status.conditions or []))
    status = apps.read_namespaced_deployment("serve", "ml").status
    assert (status.updated_replicas, status.ready_replicas, status.replicas) == (2, 2, 4)
    assert _proxied(core, "serve", "z")["answer"] == "two"
    events = [e.message for e in core.list_namespaced_event("ml").items if e.reason == "Unhealthy"]
    assert events and events[0].startswith('Readiness probe failed: Get "http://127.')

    apps.delete_namespaced_deployment("serve", "ml")
    _until(lambda: not core.list_namespaced_pod("ml", label_selector="app=serve").items)
    with pytest.raises(Exception, match="no endpoints available for service"):
        _proxied(core, "serve", "z")


def test_env_references_expand_as_the_kubelet_expands_them():
    from tests.k8s_double.kubelet import expand, field_value

    assert expand("--host $(POD_IP) $(MISSING) $$(POD_IP)", {"POD_IP": "127.1.0.9"}) == (
        "--host 127.1.0.9 $(MISSING) $(POD_IP)")
    pod = {"metadata": {"name": "p", "namespace": "ml", "labels": {"a": "b"}}, "spec": {"nodeName": "n"},
           "status": {"podIP": "127.1.0.9"}}
    assert [field_value(pod, f) for f in ("status.podIP", "metadata.name", "metadata.labels['a']")] == [
        "127.1.0.9", "p", "b"]


def test_a_container_failing_its_liveness_probe_is_restarted_in_its_pod(api):
    from kubernetes.client import models as k8s

    double, core, _ = api
    probe = k8s.V1Probe(http_get=k8s.V1HTTPGetAction(path="/", port=9), period_seconds=1, failure_threshold=2)
    container = k8s.V1Container(name="s", image="serve:1", command=["python", "-c", SERVER, "$(POD_IP)", "8080"],
                                liveness_probe=probe, env=[
                                    k8s.V1EnvVar(name="ANSWER", value="x"),
                                    k8s.V1EnvVar(name="POD_IP", value_from=k8s.V1EnvVarSource(
                                        field_ref=k8s.V1ObjectFieldSelector(field_path="status.podIP")))])
    core.create_namespaced_pod("ml", k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="flaky"),
                                               spec=k8s.V1PodSpec(containers=[container])))
    _until(lambda: core.read_namespaced_pod("flaky", "ml").status.container_statuses[0].restart_count >= 1)
    pod = core.read_namespaced_pod("flaky", "ml")
    assert pod.status.phase == "Running" and pod.status.container_statuses[0].state.running is not None
    reasons = [e.reason for e in core.list_namespaced_event("ml", field_selector="involvedObject.name=flaky").items]
    assert reasons.count("Killing") >= 1 and reasons.count("Started") >= 2 and "Unhealthy" in reasons
