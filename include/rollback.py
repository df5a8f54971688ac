"""Returning a model's champion to an earlier version: what the `<pipeline>_rollback` DAG and
`skylift rollback` both do. Airflow-free.

The target defaults to the previous champion in the audit trail: the newest earlier champion
that is not the current one and was not itself rolled back. The move is a compare-and-set like a
promotion; the alias is then smoke-tested on feature rows the last deploy gated on (the audit
record says which partition), and put back if the version does not score like itself. When the
pipeline deploys beyond the alias (`deploy.target` local or kubernetes), that target is then made
to serve the version returned to and smoke-tested live; if it cannot, the target and the alias
both go back, so what serves online and what scores in batch stay one version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include import audit, registry
from include.audit import AuditEvent, AuditTrail
from include.errors import RegistryError, RolloutFailed

if TYPE_CHECKING:
    from include.deploy.targets import KubernetesTarget, LocalTarget, SmokeSample

ROLLED_BACK_BY = (audit.ROLLBACK, audit.SMOKE_ROLLBACK)


@dataclass(frozen=True)
class Serving:
    """A deploy target beyond the alias (`deploy.target`: local or kubernetes) and how to build it
    for a version (operators/deploy_targets.py `serving_for`)."""

    kind: str
    build: Callable[[str], LocalTarget | KubernetesTarget]


@dataclass(frozen=True)
class RolledBack:
    """A rollback that held: its audit event, and what the deploy target said (None: no target
    beyond the alias)."""

    event: AuditEvent
    serving: str | None = None


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
                       actor: str, reason: str, rows: int = 20, serving: Serving | None = None) -> RolledBack:
    """Make `to` (default: the previous champion) champion again, smoke-test it through the alias,
    roll `serving` out to it and smoke-test that, and record it; if a smoke test fails, the champion
    (and the target) go back to what they were, recorded too, and this raises."""
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
    rollout = _prepare(serving, model, target, sample) if serving is not None else None
    event = registry.roll_back(client, trail, model, target, actor=actor, reason=reason, expected=current)
    try:
        registry.smoke_test(model, target, sample)
    except Exception as exc:
        undo = registry.roll_back(client, trail, model, current, actor=actor, expected=target,
                                  action=audit.SMOKE_ROLLBACK,
                                  reason=f"smoke test of the rollback to v{target} failed: {exc}"[:2000])
        raise RegistryError(f"rolling model {model!r} back to version {target} failed its smoke test ({exc}); the "
                            f"champion is version {current or 'none'} again (audit event {undo.seq})") from exc
    if rollout is None:
        return RolledBack(event)
    return RolledBack(event, _roll_out(client, trail, model, event, serving.kind, *rollout, actor=actor))


def _prepare(serving: Serving, model: str, version: str,
             rows: Any) -> tuple[LocalTarget | KubernetesTarget, SmokeSample]:
    """The target built for `version` and what its endpoint must answer, before anything moves."""
    from include.deploy.targets import smoke_sample

    try:
        return serving.build(version), smoke_sample(model, version, rows)
    except Exception as exc:
        raise RolloutFailed(f"deploy target {serving.kind} could not be readied to serve model {model!r} version "
                            f"{version} ({exc}); nothing was changed") from exc


def _roll_out(client: Any, trail: AuditTrail, model: str, event: AuditEvent, kind: str,
              target: LocalTarget | KubernetesTarget, sample: SmokeSample, *, actor: str) -> str:
    """Make `target` serve the version returned to; if it cannot, the alias goes back (recorded) and
    the target's objects too, and this raises with what happened to each."""
    from include.deploy.targets import put_back

    try:
        return target.roll_out(sample)
    except Exception as exc:
        cause = f"deploy target {kind} could not serve it ({exc})"
        was = event.before or "none"
        try:
            undo = registry.roll_back(client, trail, model, event.before, actor=actor, expected=event.after,
                                      action=audit.SMOKE_ROLLBACK,
                                      reason=f"rollback to v{event.after}: {cause}; {target.undo_plan()}"[:2000])
            alias = f"Champion: version {was} again (audit event {undo.seq})"
        except Exception as failed:  # report both; the target is put back either way
            alias = (f"Champion: putting it back to version {was} failed too ({failed}); it may still be version "
                     f"{event.after}: check with `skylift history {model}`")
        raise RolloutFailed(f"rolling model {model!r} back to version {event.after} failed: {cause}. {alias}. "
                            f"Target: {put_back(target)}") from exc
