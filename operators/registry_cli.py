"""`skylift history MODEL` and `skylift rollback MODEL [--to VERSION]`: the audit trail and the
rollback, against the configured (or `--home`) lake and MLflow registry."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any


def _bound() -> tuple[Any, Any]:
    """The registry client and the lake of the configured Skylift settings."""
    from operators.hooks.lake import LakeHook
    from operators.hooks.mlflow import MlflowHook
    from operators.settings import Settings

    settings = Settings.resolve()
    lake = LakeHook(settings.lake_root, settings.lake_conn_id).get_lake()
    return MlflowHook(settings.mlflow_tracking_uri, settings.mlflow_artifact_root).client, lake


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


def run_rollback(args: argparse.Namespace) -> int:
    from include.audit import AuditTrail
    from include.errors import SkyliftError
    from include.rollback import roll_back_champion

    try:
        client, lake = _bound()
        event = roll_back_champion(client, AuditTrail(lake), lake, args.model, to=args.to,
                                   actor=f"user:{getpass.getuser()}", rows=args.rows,
                                   reason=args.reason or "rollback requested with skylift rollback")
    except SkyliftError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{args.model}: champion v{event.before or '-'} -> v{event.after} (audit event {event.seq}); smoke test "
          "passed")
    return 0


def add_commands(sub: Any) -> None:
    history = sub.add_parser("history", help="a model's audit trail: every promotion, rejection and rollback")
    history.add_argument("model", help="registered model name")
    history.set_defaults(func=run_history)
    rollback = sub.add_parser("rollback", help="return a model's champion to an earlier version (smoke-tested)")
    rollback.add_argument("model", help="registered model name")
    rollback.add_argument("--to", help="version to return to (default: the previous champion in the audit trail)")
    rollback.add_argument("--reason", help="why; recorded in the audit trail")
    rollback.add_argument("--rows", type=int, default=20, help="feature rows to smoke-test the alias on")
    rollback.set_defaults(func=run_rollback)
