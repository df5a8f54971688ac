"""Registration never takes over a registered model another pipeline (or no Skylift pipeline) owns."""

from __future__ import annotations

import pytest

from include import registry
from include.errors import RegistryError
from operators.register import RegisterModelOperator


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return registry.client_for(f"sqlite:///{tmp_path_factory.mktemp('register')}/mlflow.db")


def register_op(pipeline: str, model: str) -> RegisterModelOperator:
    return RegisterModelOperator(task_id="register", pipeline=pipeline, model_name=model, train_task_id="train",
                                 features_dataset=f"{pipeline}_features")


def test_the_first_registration_claims_the_model_for_its_pipeline(client):
    register_op("spend", "spend_model")._ensure_model(client)
    assert client.get_registered_model("spend_model").tags["skylift.pipeline"] == "spend"
    register_op("spend", "spend_model")._ensure_model(client)  # its own model: fine, again and again


def test_another_pipelines_model_is_refused(client):
    register_op("churn", "churn_model")._ensure_model(client)
    with pytest.raises(RegistryError) as err:
        register_op("spend", "churn_model")._ensure_model(client)
    assert str(err.value) == (
        "registered model 'churn_model' belongs to pipeline 'churn' (its skylift.pipeline tag), not to 'spend'; "
        "nothing was registered. Give this pipeline's spec its own register.model_name")
    assert client.search_model_versions("name = 'churn_model'") == []


def test_a_model_made_outside_skylift_is_refused_with_the_way_to_hand_it_over(client):
    client.create_registered_model("hand_made")
    with pytest.raises(RegistryError, match=r"belongs to pipeline None .* or tag the model skylift.pipeline=spend to "
                                            r"hand it over"):
        register_op("spend", "hand_made")._ensure_model(client)
