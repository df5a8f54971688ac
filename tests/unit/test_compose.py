"""The production-like stack (docker-compose.yaml, .env.example, include/docker/) checked statically.

No container runs here: the file is parsed with PyYAML (which resolves the `x-*` anchors and `<<`
merge keys as compose does) and its cross-references are checked: services, health checks,
start-up order, ports, volumes, the hosts Airflow is pointed at, the variables `.env` must define,
Skylift's settings, and the Dockerfiles' pins.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
CONSTRAINTS = ROOT / "constraints.txt"
DOCKER_DIR = ROOT / "include" / "docker"
INIT_SQL = DOCKER_DIR / "postgres-init.sql"

EXPECTED_SERVICES = {
    "postgres", "minio", "minio-init", "mlflow", "spark-master", "spark-worker",
    "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
}
ONE_SHOT = {"airflow-init", "minio-init"}
AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer"}
AIRFLOW_COMPONENTS = {"api-server", "scheduler", "dag-processor", "triggerer"}
# A tracking server manages its own artifact store, so the server-backed stack leaves this unset.
SETTINGS_NOT_NEEDED = {"skylift_mlflow_artifact_root"}
DOCKERFILES = ["Dockerfile.airflow", "Dockerfile.training", "Dockerfile.mlflow"]

# `$$` is compose's escape for a literal `$`; `${NAME...}` and `$NAME` are interpolated.
_INTERPOLATION = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)((?::?[-?+])[^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))")


# --------------------------------------------------------------------------------------------- helpers


def parse_env_file(path: Path) -> tuple[dict[str, str], list[str]]:
    """KEY=VALUE lines of a dotenv file, and the problems found (duplicates, undocumented keys)."""
    values: dict[str, str] = {}
    problems: list[str] = []
    previous = ""
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                problems.append(f"line {number}: not KEY=VALUE: {raw!r}")
            elif key in values:
                problems.append(f"line {number}: {key} defined twice")
            else:
                if not previous.startswith("#"):
                    problems.append(f"line {number}: {key} has no comment line above it")
                values[key] = value.strip()
        previous = line
    return values, problems


def referenced_variables(text: str) -> set[str]:
    names = set()
    for match in _INTERPOLATION.finditer(text):
        if match.group(1):  # `$$`
            continue
        names.add(match.group(2) or match.group(4))
    return names


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's substitution for the forms this file uses: $$, ${X}, ${X:?msg}, ${X:-default}, $X."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        name = match.group(2) or match.group(4)
        modifier = match.group(3) or ""
        if name in env and (env[name] or not modifier.startswith(":")):
            return env[name]
        if modifier.lstrip(":").startswith("-"):
            return modifier.split("-", 1)[1]
        raise KeyError(f"${{{name}}} is not set")

    return _INTERPOLATION.sub(substitute, value)


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`depends_on` in its long form, whichever form the file uses."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return {name: (spec or {"condition": "service_started"}) for name, spec in deps.items()}


def as_env_dict(environment: Any) -> dict[str, str]:
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {k: "" if v is None else str(v) for k, v in (environment or {}).items()}


def command_args(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def option(args: list[str], name: str) -> str:
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    if pending:
        logical.append(pending)
    result = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        result.append((instruction.upper(), args.strip()))
    return result


def constraint_pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def pip_installs(path: Path) -> list[str]:
    """Each `pip install ...` command (up to the next && or ;) in the file's RUN instructions."""
    commands = []
    for instruction, args in dockerfile_instructions(path):
        if instruction == "RUN":
            commands += [part.strip() for part in re.split(r"&&|;", args) if re.search(r"\bpip3? install\b", part)]
    return commands


def published_ports(service: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(host ip, host port) of each published port."""
    result = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            result.append((port.get("host_ip"), str(port.get("published", ""))))
            continue
        spec = str(port).split("/")[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            result.append((parts[0].strip("[]"), parts[1]))
        elif len(parts) == 2:
            result.append((None, parts[0]))
        else:
            result.append((None, ""))  # container port only: published on a random host port, all interfaces
    return result


# -------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values, _ = parse_env_file(ENV_EXAMPLE)
    return values


@pytest.fixture(scope="module")
def airflow_env(services: dict[str, dict[str, Any]], env_example: dict[str, str]) -> dict[str, str]:
    """The Airflow services' environment, with .env.example's values substituted."""
    raw = as_env_dict(services["airflow-scheduler"].get("environment"))
    return {key: interpolate(value, env_example) for key, value in raw.items()}


# ------------------------------------------------------------------------------------ services, images


def test_every_expected_service_is_defined(services):
    assert EXPECTED_SERVICES <= set(services), f"missing: {sorted(EXPECTED_SERVICES - set(services))}"


def test_every_service_has_an_image_or_a_buildable_dockerfile(services):
    for name, service in services.items():
        build = service.get("build")
        if build is not None:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            assert (context / dockerfile).is_file(), f"{name}: {context / dockerfile} does not exist"
        else:
            image = service.get("image")
            assert image, f"{name}: neither image nor build"
            # Pulled images are pinned to a tag: `latest` (or no tag) changes under the stack.
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            assert tag and tag != "latest", f"{name}: image {image!r} is not pinned to a tag"


def test_airflow_and_spark_run_one_image(services):
    """Executors must run the driver's Python, pyspark and feature code: one image for both."""
    builds = {name: (json.dumps(services[name].get("build"), sort_keys=True), services[name].get("image"))
              for name in AIRFLOW_SERVICES | {"spark-master", "spark-worker"}}
    assert len(set(builds.values())) == 1, builds
    build = services["airflow-scheduler"]["build"]
    assert Path(build["dockerfile"]).name == "Dockerfile.airflow"


# --------------------------------------------------------------------------------- health, start order


def test_long_running_services_have_a_health_check(services):
    for name, service in services.items():
        if name in ONE_SHOT:
            continue
        check = service.get("healthcheck") or {}
        test = check.get("test")
        assert test and not check.get("disable"), f"{name}: no health check"
        assert test not in (["NONE"], "NONE"), f"{name}: health check disabled"
        if isinstance(test, list):
            assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{name}: malformed health check {test}"


def test_one_shot_services_exit_and_are_awaited_to_completion(services):
    for name in ONE_SHOT:
        assert str(services[name].get("restart", "no")) == "no", f"{name} must not be restarted"
        assert "healthcheck" not in services[name], f"{name} exits: a health check would never pass"
        dependents = {s: depends_on(services[s])[name] for s in services if name in depends_on(services[s])}
        assert dependents, f"nothing waits for {name}"
        for dependent, spec in dependents.items():
            assert spec.get("condition") == "service_completed_successfully", (
                f"{dependent} must wait for {name} to complete successfully, not {spec.get('condition')!r}")


def test_dependencies_on_long_running_services_wait_for_health(services):
    for name, service in services.items():
        for target, spec in depends_on(service).items():
            if target not in ONE_SHOT and target in services:
                assert spec.get("condition") == "service_healthy", f"{name} -> {target}: {spec}"


def test_depends_on_targets_exist_and_have_no_cycle(services):
    graph = {name: set(depends_on(service)) for name, service in services.items()}
    for name, targets in graph.items():
        dangling = targets - set(services)
        assert not dangling, f"{name} depends on undefined services {sorted(dangling)}"
        assert name not in targets, f"{name} depends on itself"
    remaining = dict(graph)
    while remaining:
        ready = [name for name, targets in remaining.items() if not targets & set(remaining)]
        assert ready, f"dependency cycle among {sorted(remaining)}"
        for name in ready:
            del remaining[name]


def test_airflow_services_wait_for_the_migration_and_the_database(services):
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        deps = depends_on(services[name])
        assert deps.get("airflow-init", {}).get("condition") == "service_completed_successfully", name
        assert deps.get("postgres", {}).get("condition") == "service_healthy", name
    assert "postgres" in depends_on(services["airflow-init"])
    assert command_args(services["airflow-init"])[:3] == ["airflow", "db", "migrate"]


def test_each_airflow_component_runs_exactly_once(services):
    components = [command_args(services[name])[1] for name in AIRFLOW_SERVICES - {"airflow-init"}]
    assert sorted(components) == sorted(AIRFLOW_COMPONENTS)


def test_task_runner_waits_for_what_tasks_use(services):
    """The LocalExecutor runs tasks in the scheduler: MLflow, Spark, the buckets and the execution API."""
    deps = depends_on(services["airflow-scheduler"])
    for target in ("mlflow", "spark-master", "minio-init", "airflow-apiserver"):
        assert target in deps, f"airflow-scheduler does not wait for {target}"


# ------------------------------------------------------------------------------------ ports, volumes


def test_published_ports_are_bound_to_loopback_and_unique(services):
    seen: dict[str, str] = {}
    for name, service in services.items():
        for host_ip, host_port in published_ports(service):
            assert host_ip == "127.0.0.1", f"{name}: port {host_port or '?'} is published on all interfaces"
            assert host_port not in seen, f"{name} and {seen.get(host_port)} both publish {host_port}"
            seen[host_port] = name
    assert {"8080", "5000", "9000", "9001", "8081", "8082"} <= set(seen)


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    result = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            result.append((str(volume.get("source", "")), str(volume.get("target", ""))))
        else:
            source, _, rest = str(volume).partition(":")
            result.append((source, rest.split(":")[0]))
    return result


def test_named_volumes_are_declared_and_bind_mounts_exist(compose, services):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for source, target in _mounts(service):
            assert target.startswith("/"), f"{name}: mount target {target!r}"
            if source.startswith((".", "/", "~")):
                assert (ROOT / source).exists(), f"{name}: bind-mount source {source} is not in the repository"
            elif source:
                assert source in declared, f"{name}: volume {source!r} is not declared under volumes:"
                used.add(source)
    assert not declared - used, f"declared but unused volumes: {sorted(declared - used)}"
    assert any(target == "/var/lib/postgresql/data" for _, target in _mounts(services["postgres"]))
    assert any(target == "/data" for _, target in _mounts(services["minio"]))


def test_spark_driver_and_executors_share_the_scratch_folder(services, airflow_env):
    """Files staged for Spark are local paths: the worker must see them at the same place."""
    scratch = airflow_env["TMPDIR"]
    airflow_mounts = dict((t, s) for s, t in _mounts(services["airflow-scheduler"]))
    worker_mounts = dict((t, s) for s, t in _mounts(services["spark-worker"]))
    assert scratch in airflow_mounts and scratch in worker_mounts
    assert airflow_mounts[scratch] == worker_mounts[scratch], "not the same volume"
    assert as_env_dict(services["spark-worker"].get("environment")).get("TMPDIR") == scratch


# ----------------------------------------------------------------------------------------- Airflow env


def test_airflow_services_share_build_environment_and_mounts(services):
    reference = services["airflow-scheduler"]
    for name in AIRFLOW_SERVICES:
        for key in ("build", "image", "environment", "volumes"):
            assert services[name].get(key) == reference.get(key), f"{name}: {key} differs from the scheduler's"


def test_airflow_core_settings(airflow_env):
    expected = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": "/opt/skylift/dags",
    }
    for key, value in expected.items():
        assert airflow_env.get(key) == value, key
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        assert airflow_env.get(key), f"{key} is empty"


def test_dags_folder_is_the_mounted_dags_directory(services, airflow_env):
    mounts = dict((t, s) for s, t in _mounts(services["airflow-dag-processor"]))
    assert mounts.get(airflow_env["AIRFLOW__CORE__DAGS_FOLDER"]) == "./dags"


def _service_port(services: dict[str, Any], host: str) -> set[str]:
    """Ports the service listens on, as far as its command line or image says."""
    args = command_args(services[host])
    ports = {args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--port", "--webui-port")}
    known = {"postgres": "5432", "minio": "9000", "airflow-apiserver": "8080"}
    return ports | ({known[host]} if host in known else set())


def test_hosts_named_in_airflow_env_are_services_of_this_file(services, airflow_env):
    connection = json.loads(airflow_env["AIRFLOW_CONN_SKYLIFT_S3"])
    urls = {
        "sql_alchemy_conn": airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "execution API": airflow_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"],
        "MLflow tracking URI": airflow_env["AIRFLOW_VAR_SKYLIFT_MLFLOW_TRACKING_URI"],
        "Spark master": airflow_env["AIRFLOW_VAR_SKYLIFT_SPARK_MASTER"],
        "S3 endpoint": connection["extra"]["endpoint_url"],
    }
    for what, url in urls.items():
        parts = urlsplit(url)
        assert parts.hostname in services, f"{what} {url!r}: host {parts.hostname!r} is not a service"
        assert str(parts.port) in _service_port(services, parts.hostname), (
            f"{what} {url!r}: {parts.hostname} does not listen on {parts.port}")
    assert urlsplit(urls["execution API"]).path == "/execution/"


def test_database_credentials_match_the_init_script(services, env_example):
    """Roles, databases and password variables of the two URLs are those postgres-init.sql creates."""
    sql = INIT_SQL.read_text()
    getenv = dict(re.findall(r"^\\getenv\s+(\w+)\s+(\w+)", sql, flags=re.M))
    roles = {role: getenv[var] for role, var in re.findall(r"CREATE ROLE (\w+) LOGIN PASSWORD :'(\w+)'", sql)}
    databases = dict(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)", sql))
    postgres_env = as_env_dict(services["postgres"].get("environment"))
    for variable in getenv.values():
        assert variable in postgres_env, f"postgres lacks {variable}, which the init script reads"
    raw_urls = {
        "airflow": as_env_dict(services["airflow-scheduler"]["environment"])["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "mlflow": option(command_args(services["mlflow"]), "--backend-store-uri"),
    }
    for what, raw in raw_urls.items():
        # `${X:?message}` holds characters that mean something in a URL: parse with the names in place.
        url = urlsplit(_INTERPOLATION.sub(lambda m: f"VAR-{m.group(2) or m.group(4)}", raw))
        database = url.path.lstrip("/")
        assert url.hostname == "postgres", f"{what}: {url.hostname}"
        assert database in databases, f"{what}: database {database!r} is not created by {INIT_SQL.name}"
        assert url.username == databases[database], f"{what}: {url.username!r} does not own {database!r}"
        variable = roles[url.username]
        assert url.password == f"VAR-{variable}", f"{what}: the password is not ${{{variable}}}"
        assert urlsplit(interpolate(raw, env_example)).password == env_example[variable]


def test_init_script_is_mounted_into_the_entrypoint_folder(services):
    mounts = _mounts(services["postgres"])
    assert any((ROOT / s).resolve() == INIT_SQL and t.startswith("/docker-entrypoint-initdb.d/") and t.endswith(".sql")
               for s, t in mounts), mounts


def test_s3_connection_is_what_the_lake_hook_reads(airflow_env, env_example, monkeypatch):
    from operators.hooks.lake import LakeHook

    conn_id = airflow_env["AIRFLOW_VAR_SKYLIFT_LAKE_CONN_ID"]
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", airflow_env["AIRFLOW_CONN_SKYLIFT_S3"])
    options = LakeHook(airflow_env["AIRFLOW_VAR_SKYLIFT_LAKE_ROOT"], conn_id).storage_options()
    assert options == {
        "key": env_example["MINIO_ROOT_USER"],
        "secret": env_example["MINIO_ROOT_PASSWORD"],
        "client_kwargs": {"endpoint_url": "http://minio:9000", "region_name": "us-east-1"},
    }


def test_buckets_named_by_the_settings_are_created(services, airflow_env):
    script = "\n".join(command_args(services["minio-init"]))
    created = set(re.findall(r"for bucket in ([^;]+);", script)[0].split()) if "for bucket in" in script else set()
    created |= set(re.findall(r"mc mb (?:--ignore-existing )?\S+/([a-z0-9.-]+)", script))
    needed = {
        urlsplit(airflow_env["AIRFLOW_VAR_SKYLIFT_LAKE_ROOT"]).hostname,
        urlsplit(airflow_env["AIRFLOW_VAR_SKYLIFT_DROPS_ROOT"]).hostname,
        urlsplit(option(command_args(services["mlflow"]), "--artifacts-destination")).hostname,
    }
    assert needed <= created, f"not created by minio-init: {sorted(needed - created)}"


def test_mlflow_accepts_the_host_airflow_uses(services, airflow_env):
    args = command_args(services["mlflow"])
    assert "--serve-artifacts" in args
    allowed = option(args, "--allowed-hosts").split(",")
    netloc = urlsplit(airflow_env["AIRFLOW_VAR_SKYLIFT_MLFLOW_TRACKING_URI"]).netloc
    assert any(fnmatch.fnmatch(netloc, pattern) for pattern in allowed), f"{netloc} not in {allowed}"
    assert any(fnmatch.fnmatch("localhost:5000", pattern) for pattern in allowed), "the UI on localhost"
    env = as_env_dict(services["mlflow"].get("environment"))
    assert env.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION") == "false"
    assert urlsplit(env["MLFLOW_S3_ENDPOINT_URL"]).hostname in services


# ----------------------------------------------------------------------------------- Skylift settings


def test_airflow_env_sets_every_skylift_setting(airflow_env):
    from operators.settings import _defaults

    names = set(_defaults()) - SETTINGS_NOT_NEEDED
    expected = {f"AIRFLOW_VAR_{name.upper()}" for name in names}
    present = {key for key in airflow_env if key.startswith("AIRFLOW_VAR_SKYLIFT_")}
    assert expected - present == set(), f"settings not set: {sorted(expected - present)}"
    # A misspelt variable would be ignored silently and the embedded default used instead.
    assert present - expected == set(), f"not Skylift settings: {sorted(present - expected)}"
    for key in expected:
        assert airflow_env[key], f"{key} is empty"


def test_settings_resolve_to_the_server_backed_stack(airflow_env, monkeypatch):
    from operators.settings import Settings

    for key, value in airflow_env.items():
        if key.startswith("AIRFLOW_VAR_"):
            monkeypatch.setenv(key, value)
    settings = Settings.resolve()
    assert settings.lake_root.startswith("s3://")
    assert settings.drops_root.startswith("s3://")
    assert settings.spark_master.startswith("spark://")
    assert settings.mlflow_tracking_uri.startswith("http://")
    assert settings.mlflow_artifact_root is None  # the server decides, so the setting is not needed


# --------------------------------------------------------------------------------------- .env.example


def test_env_example_is_well_formed_and_documented():
    _, problems = parse_env_file(ENV_EXAMPLE)
    assert not problems, problems


def test_env_example_defines_exactly_the_variables_compose_uses(compose_text, env_example):
    used = referenced_variables(compose_text)
    assert used, "the compose file references no variables"
    assert used - set(env_example) == set(), f"missing from .env.example: {sorted(used - set(env_example))}"
    assert set(env_example) - used == set(), f"unused in docker-compose.yaml: {sorted(set(env_example) - used)}"
    for key, value in env_example.items():
        assert value, f"{key} has no placeholder value"
        assert "$" not in value, f"{key}: compose would interpolate the `$` in its value"


def test_compose_interpolates_with_env_example(compose_text, env_example):
    """Every `${VAR:?...}` would resolve, and the connection JSON stays JSON after substitution."""
    resolved = yaml.safe_load(interpolate(compose_text, env_example))
    connection = as_env_dict(resolved["services"]["airflow-apiserver"]["environment"])["AIRFLOW_CONN_SKYLIFT_S3"]
    assert json.loads(connection)["conn_type"] == "aws"


# ---------------------------------------------------------------------------------------- Dockerfiles


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_installs_under_the_constraints(name):
    path = DOCKER_DIR / name
    instructions = dockerfile_instructions(path)
    copied = " ".join(args for instruction, args in instructions if instruction == "COPY")
    assert re.search(r"\bconstraints\.txt\b", copied), f"{name} does not copy constraints.txt"
    runs = " && ".join(args for instruction, args in instructions if instruction == "RUN")
    installs = pip_installs(path)
    assert installs, f"{name} installs nothing with pip"
    for command in installs:
        tokens = shlex.split(command)
        assert "-c" in tokens, f"{name}: unconstrained install: {command}"
        constraint = Path(tokens[tokens.index("-c") + 1]).name
        if constraint != "constraints.txt":  # a file derived from constraints.txt in the same image
            assert re.search(rf"constraints\.txt\s*>\s*\S*{re.escape(constraint)}", runs), (
                f"{name}: {constraint} is not derived from constraints.txt")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_pins_agree_with_constraints(name):
    """Explicit `pkg==version` in a Dockerfile (torch's CUDA swap, the MLflow server) match the lock."""
    pins = constraint_pins()
    text = (DOCKER_DIR / name).read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, flags=re.M))
    for command in pip_installs(DOCKER_DIR / name):
        for package, raw_version in re.findall(r"([A-Za-z0-9_.-]+)==([^\s\"']+)", command):
            version = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), raw_version)
            key = re.sub(r"[-_.]+", "-", package).lower()
            assert key in pins, f"{name}: {package} is not in constraints.txt"
            assert version == pins[key], f"{name}: {package}=={version}, constraints.txt says {pins[key]}"


def test_airflow_image_is_python_311_non_root_with_airflow_home():
    instructions = dockerfile_instructions(DOCKER_DIR / "Dockerfile.airflow")
    base = next(args for instruction, args in instructions if instruction == "FROM")
    assert re.match(r"python:3\.11\b", base), base
    users = [args for instruction, args in instructions if instruction == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image runs as root"
    envs = " ".join(args for instruction, args in instructions if instruction == "ENV")
    assert re.search(r"\bAIRFLOW_HOME=/opt/airflow\b", envs)
    runs = " ".join(args for instruction, args in instructions if instruction == "RUN")
    assert "openjdk-17-jre-headless" in runs, "Spark needs Java"
    assert not re.search(r"pip install[^&;]*\s-e\s", runs), "the package must be installed non-editable"


@pytest.mark.parametrize("name", ["Dockerfile.airflow", "Dockerfile.training"])
def test_copied_sources_exist(name):
    for instruction, args in dockerfile_instructions(DOCKER_DIR / name):
        if instruction != "COPY" or args.startswith("--from"):
            continue
        *sources, _destination = shlex.split(args)
        for source in sources:
            assert (ROOT / source).exists(), f"{name}: COPY {source} is not in the repository"


def test_training_image_runs_the_entrypoint_module():
    import importlib.util

    instructions = dockerfile_instructions(DOCKER_DIR / "Dockerfile.training")
    assert not [args for instruction, args in instructions if instruction == "ENTRYPOINT"], (
        "the pod's command is the whole command line: no ENTRYPOINT")
    cmd = json.loads(next(args for instruction, args in reversed(instructions) if instruction == "CMD"))
    assert cmd[:3] == ["python", "-m", "include.training.entrypoint"]
    assert importlib.util.find_spec(cmd[2]) is not None
    installs = " ".join(pip_installs(DOCKER_DIR / "Dockerfile.training"))
    assert "download.pytorch.org/whl/" in installs, "the CUDA torch build comes from PyTorch's index"
