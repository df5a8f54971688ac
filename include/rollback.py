"""Returning a model's champion to an earlier version: what the `<pipeline>_rollback` DAG and
`skylift rollback` both do. Airflow-free.

The target defaults to the previous champion in the audit trail: the newest earlier champion
that is not the current one and was not itself rolled back. The move is a compare-and-set like a
promotion; the alias is then smoke-tested on feature rows the last deploy gated on (the audit
record says which partition), and put back if the version does not score like itself.
"""

from __future__ import annotations

from typing import Any

from include import audit, registry
from include.audit import AuditEvent, AuditTrail
from include.errors import RegistryError

ROLLED_BACK_BY = (audit.ROLLBACK, audit.SMOKE_ROLLBACK)


def previous_champion(events: list[AuditEvent], current: str | None) -> str | None:
    """The newest champion before `current` whose last departure was not a rollback."""
    left_by: dict[str, str] = {}  # version -> the action that last moved the champion away from it
    for event in events:
        if event.moved and event.before is not None:
            left_by[event.before] = event.action
    for event in reversed(events):
        candidate = event.before if event.moved else None
        if candidate and candidate != current and left_by.get(candidate) not in ROLLED_BACK_BY:
            return candidate
    return None


def smoke_rows(trail: AuditTrail, lake: Any, model: str, count: int) -> Any:
    """`count` feature rows of the partition the newest deploy of `model` gated on."""
    for event in reversed(trail.events(model)):
        where = (event.details or {}).get("smoke")
        if where:
            frame = lake.read_table("features", where["dataset"], where["ds"]).to_pandas()
            if len(frame):
                return frame.head(count)
    raise RegistryError(f"the audit trail of model {model!r} names no feature partition to smoke-test a rollback "
                        "on (no deploy of this model has recorded one): run the pipeline's deploy once first")


def roll_back_champion(client: Any, trail: AuditTrail, lake: Any, model: str, to: str | None = None, *,
                       actor: str, reason: str, rows: int = 20) -> AuditEvent:
    """Make `to` (default: the previous champion) champion again, smoke-test it through the alias,
    and record it; if the smoke test fails, the champion goes back to what it was, recorded too."""
    events = trail.events(model)
    current = registry.current_champion(client, trail, model) if events else registry.champion_version(client, model)
    target = to or previous_champion(events, current)
    if target is None:
        raise RegistryError(f"model {model!r} has no earlier champion to return to in its audit trail (champion: "
                            f"{'v' + current if current else 'none'}); name the version: --to VERSION "
                            "(or the rollback DAG's to_version)")
    if target == current:
        raise RegistryError(f"version {target} already is the champion of model {model!r}; nothing was changed")
    sample = smoke_rows(trail, lake, model, rows)
    event = registry.roll_back(client, trail, model, target, actor=actor, reason=reason, expected=current)
    try:
        registry.smoke_test(model, target, sample)
    except Exception as exc:
        undo = registry.roll_back(client, trail, model, current, actor=actor, expected=target,
                                  action=audit.SMOKE_ROLLBACK,
                                  reason=f"smoke test of the rollback to v{target} failed: {exc}"[:2000])
        raise RegistryError(f"rolling model {model!r} back to version {target} failed its smoke test ({exc}); the "
                            f"champion is version {current or 'none'} again (audit event {undo.seq})") from exc
    return event
