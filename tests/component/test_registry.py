"""The registry core on a SQLite MLflow store: champion lookup, promotion, roll-back, error translation."""

from __future__ import annotations

import threading

import pytest

from include import registry
from include.audit import AuditTrail
from include.errors import ModelVersionMissing, PromotionConflict, RegistryError, RegistryUnavailable


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One store for the module (creating an MLflow database takes seconds); each test names its own model."""
    return registry.client_for(f"sqlite:///{tmp_path_factory.mktemp('registry')}/mlflow.db")


@pytest.fixture
def trail(tmp_path):
    """An audit trail in a lake of the test's own."""
    from include.lake import Lake

    return AuditTrail(Lake(f"file://{tmp_path}/lake"))


def _promote(client, trail, model, version, expected):
    return registry.promote(client, trail, model, version, expected=expected, actor="test", reason="the test says so")


@pytest.fixture
def model(request):
    return request.node.name.removeprefix("test_")[:60]


def _versions(client, model: str, count: int) -> list[str]:
    registry.create_model(client, model, tags={"skylift.pipeline": "t"})
    return [str(client.create_model_version(model, source=f"file:///nowhere/{model}/{i}").version)
            for i in range(count)]


def test_no_model_and_no_alias_mean_no_champion(client, model):
    assert registry.champion_version(client, model) is None
    _versions(client, model, 1)
    assert registry.champion_version(client, model) is None


def test_promote_and_roll_back(client, trail, model):
    one, two = _versions(client, model, 2)
    _promote(client, trail, model, one, None)
    assert registry.champion_version(client, model) == one
    assert client.get_model_version(model, one).tags[registry.STATUS_TAG] == "champion"
    _promote(client, trail, model, two, one)
    assert client.get_model_version(model, one).tags[registry.STATUS_TAG] == "retired"
    registry.roll_back(client, trail, model, one, actor="test", reason="v2 misbehaves")
    assert registry.champion_version(client, model) == one
    tags = client.get_model_version(model, two).tags
    assert tags[registry.STATUS_TAG] == "rolled_back" and "audit event 3" in tags[registry.STATUS_DETAIL_TAG]
    assert client.get_model_version(model, one).tags[registry.STATUS_TAG] == "champion"
    registry.roll_back(client, trail, model, None, actor="test", reason="no model at all")
    assert registry.champion_version(client, model) is None
    assert registry.CHAMPION_RECORD_TAG not in client.get_registered_model(model).tags
    assert [(e.action, e.before, e.after) for e in trail.events(model)] == [
        ("promote", None, "1"), ("promote", "1", "2"), ("rollback", "2", "1"), ("rollback", "1", None)]


def test_promote_refuses_when_the_champion_moved_meanwhile(client, trail, model):
    one, two, three = _versions(client, model, 3)
    _promote(client, trail, model, one, None)
    _promote(client, trail, model, two, one)  # another deploy got there first
    with pytest.raises(PromotionConflict, match=rf"version 3 of model '{model}' was not promoted: the champion moved "
                                                r"from version 1 to 2 by test \(promote, event 2\) while it was being "
                                                r"gated. Recorded as audit event 3; re-run the deploy task"):
        _promote(client, trail, model, three, one)
    assert registry.champion_version(client, model) == two
    assert trail.events(model)[-1].action == "conflict" and trail.champion(model) == two


def test_two_racing_promotions_leave_one_winner_and_a_record_each(client, trail, model):
    """Threads released together against one SQLite MLflow and one local lake, both gated against v1."""
    one, two, three = _versions(client, model, 3)
    _promote(client, trail, model, one, None)
    start = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def deploy(version: str) -> None:
        start.wait()
        try:
            outcomes[version] = _promote(registry.client_for(client.tracking_uri), trail, model, version, one)
        except Exception as exc:  # noqa: BLE001 - handed to the test thread
            outcomes[version] = exc

    workers = [threading.Thread(target=deploy, args=(v,)) for v in (two, three)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    won = [v for v, o in outcomes.items() if not isinstance(o, Exception)]
    lost = [v for v, o in outcomes.items() if isinstance(o, Exception)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert isinstance(outcomes[lost[0]], PromotionConflict)
    assert f"version {lost[0]} of model '{model}' was not promoted: the champion moved from version 1 to {won[0]}" \
        in str(outcomes[lost[0]])
    assert registry.champion_version(client, model) == won[0] == trail.champion(model)
    attempts = [(e.action, e.version) for e in trail.events(model)[1:]]
    assert sorted(attempts) == sorted([("promote", won[0]), ("conflict", lost[0])])


def test_an_alias_moved_outside_skylift_is_named_before_anything_builds_on_it(client, trail, model):
    one, two = _versions(client, model, 2)
    _promote(client, trail, model, one, None)
    registry.set_alias(client, model, registry.CHAMPION, two)  # by hand, unrecorded
    with pytest.raises(RegistryError, match=rf"alias champion of model '{model}' points to version 2, but the audit "
                                            r"trail says version 1 \(event 1, promote by test\).*skylift rollback"):
        registry.current_champion(client, trail, model)


def test_a_model_promoted_before_the_audit_trail_starts_from_its_alias(client, trail, model):
    one, two = _versions(client, model, 2)
    registry.set_alias(client, model, registry.CHAMPION, one)  # promoted by an older Skylift
    assert registry.current_champion(client, trail, model) == one
    event = _promote(client, trail, model, two, one)
    assert (event.before, event.after) == (one, two)


def test_a_deleted_champion_version_is_named_not_mistaken_for_no_champion(client, trail, model):
    one, two, three = _versions(client, model, 3)
    _promote(client, trail, model, two, None)
    client.delete_model_version(model, two)  # MLflow drops the alias with the version
    with pytest.raises(ModelVersionMissing) as caught:
        registry.champion_version(client, model)
    message = str(caught.value)
    assert f"alias champion of model '{model}' pointed to version 2, which no longer exists" in message
    assert "existing versions: 3, 1" in message
    assert f"set_registered_model_alias('{model}', 'champion', '<version>')" in message
    assert "re-run the deploy" in message


def test_a_removed_alias_of_a_live_version_is_no_champion(client, trail, model):
    one, = _versions(client, model, 1)
    _promote(client, trail, model, one, None)
    client.delete_registered_model_alias(model, registry.CHAMPION)  # taken away on purpose
    assert registry.champion_version(client, model) is None


def test_mlflow_error_codes_are_told_apart(client):
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2 as codes

    cases = [(codes.TEMPORARILY_UNAVAILABLE, RegistryUnavailable, "is unavailable while"),
             (codes.INTERNAL_ERROR, RegistryUnavailable, "is unavailable while"),
             (codes.PERMISSION_DENIED, RegistryError, "refused")]
    for code, kind, says in cases:
        with pytest.raises(kind) as caught, registry.translated(client, "reading model 'churn'"):
            raise MlflowException("no", error_code=code)
        assert type(caught.value) is kind
        assert f"{says} reading model 'churn' ({codes.ErrorCode.Name(code)}: no)" in str(caught.value)
    with pytest.raises(MlflowException), registry.translated(client, "reading"):  # "missing" is the caller's call
        raise MlflowException("gone", error_code=codes.RESOURCE_DOES_NOT_EXIST)
    with pytest.raises(ModelVersionMissing, match="run r1 is gone"), registry.translated(client, "x",
                                                                                         missing="run r1 is gone"):
        raise MlflowException("gone", error_code=codes.RESOURCE_DOES_NOT_EXIST)


def test_scoring_names_a_deleted_champion_even_where_it_may_skip(skylift_env, monkeypatch, client, trail, model):
    from operators.score import BatchScoreOperator

    monkeypatch.setenv("AIRFLOW_VAR_SKYLIFT_MLFLOW_TRACKING_URI", client.tracking_uri)  # reuse the module's store
    op = BatchScoreOperator(task_id="score", pipeline="t", model_name=model, features_dataset="f", dataset="p",
                            key=["customer_id"], skip_without_champion=True)
    one, = _versions(op.mlflow_hook.client, model, 1)
    _promote(client, trail, model, one, None)
    assert op._champion_version() == one
    client.delete_model_version(model, one)
    with pytest.raises(ModelVersionMissing, match=f"alias champion of model '{model}' pointed to version 1, which "
                                                  "no longer exists"):
        op._champion_version()


def test_a_move_mlflow_does_not_take_is_undone_and_recorded(client, trail, model, monkeypatch):
    one, two = _versions(client, model, 2)
    _promote(client, trail, model, one, None)
    real_set_alias = registry.set_alias

    def flaky(client_, model_, alias, version):
        if version == two:
            raise RegistryUnavailable("the model registry is unavailable while setting alias champion")
        real_set_alias(client_, model_, alias, version)

    monkeypatch.setattr(registry, "set_alias", flaky)
    with pytest.raises(RegistryError, match=rf"promoting version 2 of model '{model}' failed while moving the MLflow "
                                            r"alias \(the model registry is unavailable.*\); undone and recorded as "
                                            r"audit event 3"):
        _promote(client, trail, model, two, one)
    assert registry.champion_version(client, model) == one == trail.champion(model)
    assert [(e.action, e.after) for e in trail.events(model)] == [("promote", "1"), ("promote", "2"),
                                                                  ("rollback", "1")]
