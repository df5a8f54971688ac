"""The drop sensor and its trigger: fire once, only for a whole drop that has settled; never raise.

The trigger's poll loop runs for real against a local folder. Its clock and its pause between
looks are replaced (a subclass), so a test plays an uploader's progress between looks without
waiting: no test here sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout

from operators.sensors import DropSensor
from operators.spec.models import CompletionSpec
from operators.triggers import DropTrigger

WHOLE = b"customer_id,sessions\n" + b"".join(b"C%06d,%d\n" % (i, i % 7) for i in range(500))


def cut_at_line_end(data: bytes, share: float) -> bytes:
    return data[: data.rindex(b"\n", 0, int(len(data) * share)) + 1]


class ScriptedTrigger(DropTrigger):
    """A DropTrigger on a fake clock: each pause advances it and lets the uploader take its next step."""

    def __init__(self, *args, steps: list[Callable[[], None]], **kwargs) -> None:
        super().__init__(*args, started=0.0, **kwargs)
        self.clock, self.steps, self.looks = 0.0, list(steps), []

    def _now(self) -> float:
        self.looks.append(self.clock)
        return self.clock

    async def _pause(self, seconds: float) -> None:
        self.clock += seconds
        if self.steps:
            self.steps.pop(0)()


def run(trigger: DropTrigger) -> list[dict]:
    async def collect():
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def trigger_for(folder: Path, steps: list[Callable[[], None]], timeout: float = 3600, **completion) -> ScriptedTrigger:
    return ScriptedTrigger(uri=f"file://{folder}/", source_format="csv", conn_id="unused", poke_interval=60,
                           timeout=timeout, completion=CompletionSpec(**completion).model_dump(), steps=steps)


def test_an_upload_in_progress_does_not_fire_until_its_marker_lands(tmp_path):
    folder = tmp_path / "2026-11-24"
    folder.mkdir()
    (folder / "activity.csv").write_bytes(cut_at_line_end(WHOLE, 0.4))
    trigger = trigger_for(folder, marker="_SUCCESS", steps=[
        lambda: None,
        lambda: (folder / "activity.csv").write_bytes(WHOLE),
        lambda: (folder / "_SUCCESS").write_bytes(b""),
    ])
    assert run(trigger) == [{"status": "found", "uri": f"file://{folder}/", "files": ["activity.csv"]}]
    assert trigger.looks == [0, 60, 120, 180]  # fired on the first look that saw the marker


def test_a_two_file_drop_fires_only_with_both_files(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "part-1.csv").write_bytes(WHOLE)
    trigger = trigger_for(folder, expected_files=2, steps=[lambda: (folder / "part-2.csv").write_bytes(WHOLE)])
    assert run(trigger)[0]["files"] == ["part-1.csv", "part-2.csv"]
    assert trigger.looks == [0, 60]


def test_sizes_changing_between_looks_keep_the_trigger_waiting(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    target = folder / "activity.csv"
    target.write_bytes(WHOLE[:100])
    growth = [lambda n=n: target.write_bytes(WHOLE[: 100 * n]) for n in range(2, 6)]
    trigger = trigger_for(folder, settle_seconds=90, steps=growth)
    event = run(trigger)
    assert event == [{"status": "found", "uri": f"file://{folder}/", "files": ["activity.csv"]}]
    assert target.stat().st_size == 500  # all growth happened before it fired
    # the last change was seen at 240; it fired once the size had held for 90 s: next look at 300,
    # then one timed to the end of the settle time rather than a whole poke interval later
    assert trigger.looks == [0, 60, 120, 180, 240, 300, 330]


def test_timeout_reports_what_is_missing(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "activity.csv").write_bytes(WHOLE)
    events = run(trigger_for(folder, timeout=100, marker="_SUCCESS", steps=[]))
    assert events == [{"status": "timeout", "uri": f"file://{folder}/", "empty": False,
                       "missing": ["no _SUCCESS marker yet (the uploader writes it after the last file)"]}]
    events = run(trigger_for(folder, timeout=100, settle_seconds=3600,
                             steps=[lambda: (folder / "activity.csv").write_bytes(WHOLE + b"C9,1\n")]))
    assert events[0]["missing"] == ["its files changed 60s ago, less than settle_seconds=3600"]


def test_a_failing_look_becomes_one_error_event(tmp_path):
    (tmp_path / "activity.csv").write_bytes(WHOLE)
    trigger = ScriptedTrigger(uri=f"file://{tmp_path}/", source_format="xlsx", conn_id="unused", steps=[])
    assert run(trigger) == [{"status": "error", "uri": f"file://{tmp_path}/", "message": "KeyError: 'xlsx'"}]


def test_the_trigger_serializes_to_what_rebuilds_it():
    trigger = DropTrigger(uri="s3://landing/activity/2026-11-24/", source_format="csv", conn_id="skylift_s3",
                          poke_interval=30, timeout=600, started=1.0,
                          completion=CompletionSpec(manifest="_manifest.json", settle_seconds=60).model_dump())
    path, kwargs = trigger.serialize()
    assert path == "operators.triggers.DropTrigger"
    assert DropTrigger(**kwargs).serialize() == (path, kwargs)
    assert CompletionSpec.model_validate(kwargs["completion"]).settle_seconds == 60


def sensor(**completion) -> DropSensor:
    return DropSensor(task_id="wait_for_drop", pipeline="p", source_uri="activity/{ds}/", source_format="csv",
                      timeout=120, poke_interval=5, completion=CompletionSpec(**completion))


def test_poke_mode_waits_for_the_marker(skylift_env, context_for):
    folder = skylift_env / "drops" / "activity" / "2026-11-24"
    folder.mkdir(parents=True)
    (folder / "activity.csv").write_bytes(WHOLE)
    waiting = sensor(marker="_SUCCESS")
    assert waiting.poke(context_for("2026-11-24")) is False
    (folder / "_SUCCESS").write_bytes(b"")
    assert waiting.poke(context_for("2026-11-24")) is True


def test_timeout_messages_say_whether_anything_landed():
    uri = "file:///drops/activity/2026-11-24/"
    with pytest.raises(AirflowSensorTimeout, match=r"^no drop at file:///drops/activity/2026-11-24/ after 120s$"):
        sensor().execute_complete({}, {"status": "timeout", "uri": uri, "empty": True, "missing": ["no csv files"]})
    with pytest.raises(AirflowSensorTimeout) as caught:
        sensor(expected_files=2).execute_complete({}, {"status": "timeout", "uri": uri, "empty": False, "missing": [
            "2 csv file(s) expected, 1 present (part-1.csv)"]})
    assert str(caught.value) == (f"the drop at {uri} is not complete after 120s: 2 csv file(s) expected, "
                                 "1 present (part-1.csv)")
