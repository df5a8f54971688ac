"""Drop completeness on a real S3 API (moto's server, started alone: no other service is needed).

The trigger must see each look's listing as the bucket is then (s3fs caches listings), and ingest
must refuse a drop whose completion marker has not landed, both through the lake connection.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from include.errors import IncompleteDrop
from operators.spec.models import CompletionSpec
from operators.triggers import DropTrigger

pytestmark = pytest.mark.integration

WHOLE = b"customer_id,sessions\n" + b"".join(b"C%06d,%d\n" % (i, i % 7) for i in range(2000))
CONN_ID = "drops_s3_test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """Only the S3 server of tests/stack.py, with an Airflow connection to it in the environment."""
    from tests.stack import S3_KEY, S3_SECRET, Stack

    stack = Stack(tmp_path_factory.mktemp("s3"))
    try:
        stack.start_s3()
        connection = {"conn_type": "aws", "login": S3_KEY, "password": S3_SECRET,
                      "extra": {"endpoint_url": stack.s3_endpoint, "region_name": "us-east-1"}}
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
            yield stack
    finally:
        stack.stop()


@pytest.fixture
def prefix(s3):
    """A fresh day folder in the landing bucket: (client, key prefix, its s3:// uri)."""
    key = f"activity-{uuid.uuid4().hex[:8]}/2026-11-24/"
    return s3.s3_client(), key, f"s3://skylift-landing/{key}"


class StepTrigger(DropTrigger):
    """Looks at the bucket for real; between looks the uploader takes its next step (no waiting)."""

    def __init__(self, *args, steps, **kwargs) -> None:
        super().__init__(*args, started=0.0, **kwargs)
        self.clock, self.steps, self.looks = 0.0, list(steps), 0

    def _now(self) -> float:
        self.looks += 1
        return self.clock

    async def _pause(self, seconds: float) -> None:
        self.clock += seconds
        if self.steps:
            self.steps.pop(0)()


def test_the_trigger_waits_for_the_marker_on_s3(prefix):
    client, key, uri = prefix
    put = lambda name, data: client.put_object(Bucket="skylift-landing", Key=key + name, Body=data)  # noqa: E731
    put("activity.csv", WHOLE[: WHOLE.rindex(b"\n", 0, len(WHOLE) * 2 // 5) + 1])  # 40 %, cut at a line end
    trigger = StepTrigger(uri=uri, source_format="csv", conn_id=CONN_ID, poke_interval=60,
                          completion=CompletionSpec(marker="_SUCCESS").model_dump(),
                          steps=[lambda: put("activity.csv", WHOLE), lambda: put("_SUCCESS", b"")])

    async def first_event():
        return [event.payload async for event in trigger.run()]

    assert asyncio.run(first_event()) == [{"status": "found", "uri": uri, "files": ["activity.csv"]}]
    assert trigger.looks == 3  # fired on the first look after the marker landed, not before


def test_ingest_refuses_an_s3_drop_without_its_marker(prefix, skylift_env, monkeypatch, context_for):
    from operators.ingest import IngestOperator

    client, key, uri = prefix
    client.put_object(Bucket="skylift-landing", Key=key + "activity.csv", Body=WHOLE[:5000])
    monkeypatch.setenv("AIRFLOW_VAR_SKYLIFT_DROPS_ROOT", "s3://skylift-landing")
    monkeypatch.setenv("AIRFLOW_VAR_SKYLIFT_LAKE_CONN_ID", CONN_ID)
    folder = key.split("/")[0]
    ingest = IngestOperator(task_id="ingest", pipeline="t", source_uri=folder + "/{ds}/", source_format="csv",
                            schema_file="include/schemas/customer_activity.yaml", dataset="activity",
                            completion=CompletionSpec(marker="_SUCCESS"))
    with pytest.raises(IncompleteDrop) as caught:
        ingest.execute(context_for("2026-11-24"))
    assert str(caught.value).startswith(f"the drop at {uri} for ds=2026-11-24 is not complete: no _SUCCESS marker yet")
