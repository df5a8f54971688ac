"""`skylift history MODEL` and `skylift rollback MODEL [--to VERSION]`: the audit trail and the
rollback, against the configured (or `--home`) lake and MLflow registry. The rollback is the
rollback DAG's (include/rollback.py): when the project's spec that registers MODEL deploys to
`local` or `kubernetes`, that target is rolled out to the version returned to as well."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from operators.hooks.mlflow import MlflowHook
    from operators.spec.models import PipelineSpec


def _bound() -> tuple[MlflowHook, Any]:
    """The registry's hook and the lake of the configured Skylift settings."""
    from operators.hooks.lake import LakeHook
    from operators.hooks.mlflow import MlflowHook
    from operators.settings import Settings

    settings = Settings.resolve()
    lake = LakeHook(settings.lake_root, settings.lake_conn_id).get_lake()
    return MlflowHook(settings.mlflow_tracking_uri, settings.mlflow_artifact_root), lake


def run_history(args: argparse.Namespace) -> int:
    from include.audit import AuditTrail
    from include.errors import SkyliftError

    try:
        _, lake = _bound()
        events = AuditTrail(lake).events(args.model)
    except SkyliftError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not events:
        print(f"model {args.model!r} has no audit trail in {lake.root} (never gated by a deploy task, or another "
              "lake)", file=sys.stderr)
        return 1
    print(f"   #  when                  what: champion  by  why ({args.model}, {len(events)} events)")
    for event in events:
        print(event.line())
    print(f"champion now: {'v' + events[-1].after if events[-1].after else 'none'}")
    return 0


def deploying_spec(model: str, pipeline: str | None, project: str | None, home: str | None) -> PipelineSpec | None:
    """The spec of the project that registers `model`, which says how it is served: `pipeline`'s, else
    the one spec registering it (None: none does). Two specs claiming one model are refused by the
    spec loader; `pipeline` chooses between them here."""
    from include.errors import SpecError
    from operators.project import Project
    from operators.spec.loader import load_spec

    located = Project.locate(project, home) if pipeline else Project.at(project, home)
    if not located.pipelines_dir.is_dir():
        return None
    found = located.specs_registering(model)
    listed = ", ".join(f"{claim.pipeline} ({claim.file.name}:{claim.line})" for claim in found)
    chosen = [claim for claim in found if claim.pipeline == pipeline] if pipeline else found
    if pipeline and not chosen:
        raise SpecError(f"pipeline {pipeline!r} does not register model {model!r} in {located.pipelines_dir}; "
                        + (f"these do: {listed}" if found else "no spec there does"))
    if len(chosen) > 1:
        raise SpecError(f"{len(found)} specs in {located.pipelines_dir} register model {model!r}: {listed}. A model "
                        "belongs to one spec (rename the others); until then say whose deploy target to roll "
                        "out: --pipeline NAME")
    if not chosen:
        return None
    with located.reading_specs():
        return load_spec(chosen[0].file, with_siblings=len(found) == 1)


def run_rollback(args: argparse.Namespace) -> int:
    from include.audit import AuditTrail
    from include.errors import SkyliftError, SpecError
    from include.rollback import roll_back_champion
    from operators.deploy_targets import serving_for

    try:
        spec = deploying_spec(args.model, args.pipeline, args.project, args.home)
        hook, lake = _bound()
        serving = None
        if spec is not None and spec.deploy is not None:
            serving = serving_for(spec.deploy, pipeline=spec.pipeline, model_name=args.model,
                                  tracking_uri=hook.tracking_uri)
        done = roll_back_champion(hook.client, AuditTrail(lake), lake, args.model, to=args.to,
                                  actor=f"user:{getpass.getuser()}", rows=args.rows, serving=serving,
                                  reason=args.reason or "rollback requested with skylift rollback")
    except SkyliftError as exc:
        print(exc, file=sys.stderr)
        return 2 if isinstance(exc, SpecError) else 1
    event = done.event
    print(f"{args.model}: champion v{event.before or '-'} -> v{event.after} (audit event {event.seq}); smoke test "
          "passed")
    if done.serving is not None:
        print(f"deploy target {spec.deploy.target} of pipeline {spec.pipeline}: {done.serving}")
    elif spec is None:
        print(f"no spec in the project registers {args.model} (give --project DIR): only the alias moved")
    else:
        print(f"pipeline {spec.pipeline} serves {args.model} through the alias alone: nothing else to roll out")
    return 0


def add_commands(sub: Any) -> None:
    from operators.runner import add_location_options

    history = sub.add_parser("history", help="a model's audit trail: every promotion, rejection and rollback")
    history.add_argument("model", help="registered model name")
    history.set_defaults(func=run_history)
    rollback = sub.add_parser("rollback", help="return a model's champion and its deploy target to an earlier "
                                               "version (smoke-tested)")
    rollback.add_argument("model", help="registered model name")
    rollback.add_argument("--to", help="version to return to (default: the previous champion in the audit trail)")
    rollback.add_argument("--reason", help="why; recorded in the audit trail")
    rollback.add_argument("--rows", type=int, default=20, help="feature rows to smoke-test the alias and target on")
    rollback.add_argument("--pipeline", help="whose deploy target to roll out, when several of the project's specs "
                                             "register MODEL")
    add_location_options(rollback)
    rollback.set_defaults(func=run_rollback)
