"""The parcels project (tests/e2e/own_project.py) with a custom stage of the user's own between
validate and features, registered through the folder's `_defaults.yaml`."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.own_project import write_project

STAGE_MODULE = '''\
"""A custom stage: the day's share of heavy parcels, from the validated shipments."""

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from operators.spec.custom_stages import CustomStage


class HeavyShareConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_weight_kg: float


def heavy_share(inputs: dict[str, pa.Table], ds: str, config: HeavyShareConfig) -> pa.Table:
    shipments = inputs["shipments"]
    heavy = pc.sum(pc.greater_equal(shipments["weight_kg"], config.min_weight_kg).cast(pa.int64())).as_py()
    return pa.table({"ds": [ds], "shipments": [shipments.num_rows], "heavy": [heavy]})


HEAVY_SHARE = CustomStage(name="heavy_share", after=("validate",), before=("features",), fn=heavy_share,
                          config=HeavyShareConfig, zone="reports")
'''

DEFAULTS = """\
owner: logistics-team
stage_modules: [parcel_stages.shares]
"""

CUSTOM = """
custom:
  heavy_share:
    reads: [validated/shipments]
    config: {min_weight_kg: 20}
"""


def write_custom_stage_project(root: Path, config: str = CUSTOM) -> Path:
    write_project(root)
    spec = root / "dags" / "pipelines" / "parcels.yaml"
    text = spec.read_text().replace("stages: [ingest, validate]\n",
                                    "stages: [ingest, validate, heavy_share, features]\n")
    spec.write_text(text.replace("owner: logistics\n", "") + config)
    (root / "dags" / "pipelines" / "_defaults.yaml").write_text(DEFAULTS)
    (root / "parcel_stages").mkdir()
    (root / "parcel_stages" / "__init__.py").write_text("")
    (root / "parcel_stages" / "shares.py").write_text(STAGE_MODULE)
    return root
