"""A custom stage's function, run like a built-in stage: it reads the day's input partitions,
calls the function, and publishes what it returns with a manifest (kept as is when its inputs,
its config and its code are unchanged; rebuilt with the `rebuild` parameter).
"""

from __future__ import annotations

import inspect
from typing import Any

from include.errors import SpecError
from operators.base import SkyliftOperator, partition_date


class CustomStageOperator(SkyliftOperator):
    ui_color = "#eef6e6"

    def __init__(self, *, stage_module: str, stage_name: str, inputs: list[tuple[str, str]], zone: str,
                 dataset: str, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stage_module = stage_module
        self.stage_name = stage_name
        self.inputs = [tuple(i) for i in inputs]
        self.zone = zone
        self.dataset = dataset
        self.config = config or {}

    def execute(self, context: Any) -> dict[str, Any]:
        import pyarrow as pa

        from operators.spec.custom_stages import stage_in

        ds = partition_date(context)
        stage = stage_in(self.stage_module, self.stage_name)
        manifests = {dataset: self.lake.require_fresh(zone, dataset, ds) for zone, dataset in self.inputs}
        code = inspect.getsource(stage.fn)  # a change to the function rebuilds its partitions
        key = self.build_key([m.fingerprint for m in manifests.values()], stage=self.stage_name,
                             config=self.config, code=code)
        kept = self.unchanged(context, self.zone, self.dataset, ds, key)
        if kept is not None:
            return {"ds": ds, "rows": kept.row_count, "reused": True}
        tables = {dataset: self.lake.read_table(zone, dataset, ds) for zone, dataset in self.inputs}
        config = stage.parse_config(self.config)
        out = stage.fn(tables, ds, config=config) if config is not None else stage.fn(tables, ds)
        if not isinstance(out, pa.Table):
            raise SpecError(f"custom stage {self.stage_name!r} ({self.stage_module}) returned "
                            f"{type(out).__name__} for ds={ds}; it must return a pyarrow.Table")
        with self.publish(self.zone, self.dataset, ds, run_id=context["ti"].run_id,
                          inputs=[m.as_input() for m in manifests.values()],
                          extra={"stage": self.stage_name, "build_key": key}) as writer:
            writer.write_table(out)
        self.log.info("custom stage %s published %s/%s/ds=%s (%d rows)", self.stage_name, self.zone,
                      self.dataset, ds, out.num_rows)
        return {"ds": ds, "rows": out.num_rows, "reused": False}
