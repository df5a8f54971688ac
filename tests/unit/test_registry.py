"""The registry core on a SQLite MLflow store: champion lookup, promotion, roll-back, error translation."""

from __future__ import annotations

import pytest

from include import registry
from include.errors import ModelVersionMissing, RegistryError, RegistryUnavailable


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One store for the module (creating an MLflow database takes seconds); each test names its own model."""
    return registry.client_for(f"sqlite:///{tmp_path_factory.mktemp('registry')}/mlflow.db")


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


def test_promote_and_roll_back(client, model):
    one, two = _versions(client, model, 2)
    registry.promote(client, model, one, expected=None)
    assert registry.champion_version(client, model) == one
    assert client.get_model_version(model, one).tags[registry.PROMOTED_AT_TAG]
    registry.promote(client, model, two, expected=one)
    registry.roll_back(client, model, one)
    assert registry.champion_version(client, model) == one
    registry.roll_back(client, model, None)
    assert registry.champion_version(client, model) is None
    assert registry.CHAMPION_RECORD_TAG not in client.get_registered_model(model).tags


def test_promote_refuses_when_the_champion_moved_meanwhile(client, model):
    one, two, three = _versions(client, model, 3)
    registry.promote(client, model, one, expected=None)
    registry.promote(client, model, two, expected=one)  # another deploy got there first
    with pytest.raises(RegistryError, match=rf"champion of model '{model}' moved from version 1 to 2 while "
                                            r"version 3 was being gated: re-run the deploy task"):
        registry.promote(client, model, three, expected=one)
    assert registry.champion_version(client, model) == two


def test_a_deleted_champion_version_is_named_not_mistaken_for_no_champion(client, model):
    one, two, three = _versions(client, model, 3)
    registry.promote(client, model, two, expected=None)
    client.delete_model_version(model, two)  # MLflow drops the alias with the version
    with pytest.raises(ModelVersionMissing) as caught:
        registry.champion_version(client, model)
    message = str(caught.value)
    assert f"alias champion of model '{model}' pointed to version 2, which no longer exists" in message
    assert "existing versions: 3, 1" in message
    assert f"set_registered_model_alias('{model}', 'champion', '<version>')" in message
    assert "re-run the deploy" in message


def test_a_removed_alias_of_a_live_version_is_no_champion(client, model):
    one, = _versions(client, model, 1)
    registry.promote(client, model, one, expected=None)
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


def test_scoring_names_a_deleted_champion_even_where_it_may_skip(skylift_env, monkeypatch, client, model):
    from operators.score import BatchScoreOperator

    monkeypatch.setenv("AIRFLOW_VAR_SKYLIFT_MLFLOW_TRACKING_URI", client.tracking_uri)  # reuse the module's store
    op = BatchScoreOperator(task_id="score", pipeline="t", model_name=model, features_dataset="f", dataset="p",
                            key=["customer_id"], skip_without_champion=True)
    one, = _versions(op.mlflow_hook.client, model, 1)
    registry.promote(client, model, one, expected=None)
    assert op._champion_version() == one
    client.delete_model_version(model, one)
    with pytest.raises(ModelVersionMissing, match=f"alias champion of model '{model}' pointed to version 1, which "
                                                  "no longer exists"):
        op._champion_version()
