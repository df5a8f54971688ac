"""`skylift` command line: the embedded demo, lineage, and spec checks.

    skylift demo [--end 2026-11-24] [--runs 3]   generate sample drops, run the nightly DAG
    skylift --home .demo lineage ...             any command against the demo's embedded set-up
    skylift lineage churn champion               trace a model version back to raw files
    skylift lineage predictions/churn_predictions/2026-11-24   the same for a partition
    skylift lint dags/pipelines/                 every spec error at once, without Airflow running (alias: check)
    skylift schema > dags/pipelines/skylift-spec.schema.json   the spec's JSON Schema, for editors
    skylift run PIPELINE --date D [--dag NAME] [--conf JSON] [--project DIR]   run your own pipeline
    skylift backfill PIPELINE --from D1 --to D2 [...]   the same for every date of a range
    skylift plan PIPELINE --date D [--dag NAME] [--conf JSON]   what a run would do, without doing it
    skylift ui [--project DIR]                   the Airflow UI on the same DAGs, lake and MLflow
    skylift serve PIPELINE [--port N]            HTTP predictions from the pipeline's champion, following the alias
    skylift verify [ZONE[/DATASET[/DS]]]         check lake partitions' files against their manifests
    skylift history MODEL                        every promotion, rejection and rollback of a model
    skylift rollback MODEL [--to VERSION]        return the champion (and its deploy target) to an earlier version
                                                 (smoke-tested; --pipeline NAME when two specs register MODEL)

The demo sets up an embedded Airflow (SQLite, under `.demo/`) before Airflow is imported.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, timedelta
from pathlib import Path

from operators import plan, registry_cli, runner, serve, ui
from operators.project import DROPS_VARIABLE, Project

ROOT = Path(__file__).resolve().parent.parent
DEMO_END = date(2026, 11, 24)
DEMO_HOME = ROOT / ".demo"


def embedded_environment(home: Path, project: Path | None = None) -> dict[str, str]:
    """Environment for an embedded Skylift (see `operators.project`, the one home of these settings)."""
    from operators.project import Project

    return Project.at(project, home).environment()


def run_demo(args: argparse.Namespace) -> int:
    home = Path(args.home or DEMO_HOME).resolve()
    os.environ.pop(DROPS_VARIABLE, None)  # the demo writes its sample drops under its home and reads them there
    os.environ.update(embedded_environment(home, ROOT))
    from include.datagen.churn import generate, generate_labels

    drops = home / "skylift" / "drops"
    generate(drops / "activity", args.end, days=args.days, n_customers=args.customers)
    # Outcomes land 3 days late (labels.delay_days in churn.yaml): the first model trains on night 6.
    generate_labels(drops, args.end, days=args.days, delay_days=3, n_customers=args.customers)
    dates = [args.end - timedelta(days=i) for i in range(args.runs - 1, -1, -1)]
    from operators.project import Project
    from operators.runner import RunRequest, run_pipeline

    # the same runner as `skylift run`: a line per task, Airflow's log in a file under the home folder
    pipeline, _, dag_name = args.dag.partition("_")
    request = RunRequest(pipeline, dag_name, tuple(dates), None)
    if run_pipeline(Project(root=ROOT, home=home), request, summary=False) != 0:
        return 1
    from operators.report import demo_report

    print(demo_report(args.dag.split("_")[0], dates[-1].isoformat(), home))
    return 0


def run_lineage(args: argparse.Namespace) -> int:
    from operators.report import model_lineage, partition_lineage

    if "/" in args.target:
        zone, dataset, ds = args.target.split("/", 2)
        lines = partition_lineage(zone, dataset, ds.removeprefix("ds="))
    elif args.version:
        lines = model_lineage(args.target, args.version)
    else:
        print("give a model and a version (or alias), or a partition as zone/dataset/ds", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def run_lint(args: argparse.Namespace) -> int:
    """Every problem of each spec and of the contracts, suites and feature job it names (see
    `operators.spec.lint`), one `file:line:col: key: message` per line on stderr; a spec without
    any is compiled into its DAGs and their trigger forms validated, as the DAG processor would."""
    from operators.spec.lint import lint_spec, spec_files

    paths = spec_files(args.specs)
    if not paths:
        print(f"no spec files (*.yaml, *.yml) in {' '.join(args.specs)}", file=sys.stderr)
        return 2
    errors = failed = 0
    shown: set[str] = set()  # a contract or suite that several specs name is reported once
    for path in paths:
        with Project.at(_project_of(path, args.project), None).reading_specs():
            result = lint_spec(path)
            problems = [line for line in (_relative(p).lint_line() for p in result.problems) if line not in shown]
            shown.update(problems)
            if not problems and result.spec is not None:
                problems = _compile_problems(path)
        if problems:
            errors, failed = errors + len(problems), failed + 1
            print("\n".join(problems), file=sys.stderr)
        elif result.spec is None:
            print(f"{path}: ok (shared defaults of the specs beside it)")
        else:
            spec = result.spec
            print(f"{path}: ok ({spec.pipeline}: {', '.join(f'{spec.pipeline}_{name}' for name in spec.dags)})")
    if errors:
        print(f"{errors} error(s) in {failed} of {len(paths)} spec(s)", file=sys.stderr)
    return 1 if errors else 0


def _project_of(spec: Path, chosen: str | None) -> str | Path | None:
    """The project folder a spec's relative paths and feature packages belong to: `--project`, else
    `SKYLIFT_PROJECT`, else the folder holding the spec's `dags/pipelines/` (a copied project is
    linted from anywhere), else this repository."""
    if chosen or os.environ.get("SKYLIFT_PROJECT"):
        return chosen
    folder = spec.resolve().parent
    if folder.name == "pipelines" and folder.parent.name == "dags":
        return folder.parent.parent
    return None


def _relative(problem):
    """A contract or suite under the working folder is shown as the spec names it, not as an absolute path."""
    from dataclasses import replace

    path = Path(problem.path)
    if path.is_absolute() and path.is_relative_to(Path.cwd()):
        return replace(problem, path=path.relative_to(Path.cwd()))
    return problem


def _compile_problems(path: Path) -> list[str]:
    from airflow.sdk.definitions.param import ParamValidationError

    from include.errors import SpecError
    from operators.spec.compiler import dags_from_spec_file

    try:
        for dag in dags_from_spec_file(path).values():
            dag.params.validate()
    except (SpecError, ParamValidationError, ValueError, TypeError) as exc:
        return [f"{path}:1:1: the spec loads but its DAGs do not compile: {type(exc).__name__}: {exc}"]
    return []


def run_schema(args: argparse.Namespace) -> int:
    from operators.spec.reference import schema_text

    sys.stdout.write(schema_text())
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from include.errors import LakeError
    from include.lake import verify_lake
    from operators.hooks.lake import LakeHook
    from operators.settings import Settings

    settings = Settings.resolve()
    lake = LakeHook(settings.lake_root, settings.lake_conn_id).get_lake()
    checked = damaged = 0
    try:
        for result in verify_lake(lake, args.target):
            checked += 1
            if result.intact:
                print(f"ok       {result.partition}")
            else:
                damaged += 1
                print(f"DAMAGED  {result.partition}: {'; '.join(result.problems)}")
    except LakeError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{checked} partition(s) checked in {lake.root}, {damaged} damaged")
    if damaged:
        print("re-run the stage that writes each damaged partition for its date: a retry rebuilds damaged outputs",
              file=sys.stderr)
    return 1 if damaged else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skylift", description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="use the embedded set-up kept in this folder (as `skylift demo` made it)")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the nightly pipeline end to end on the embedded default")
    demo.add_argument("--end", type=date.fromisoformat, default=DEMO_END, help="the demo date (YYYY-MM-DD)")
    demo.add_argument("--runs", type=int, default=10, help="nightly runs for consecutive days ending at --end")
    demo.add_argument("--days", type=int, default=10, help="days of sample drops (activity and labels) to generate")
    demo.add_argument("--customers", type=int, default=5000)
    demo.add_argument("--dag", default="churn_nightly")
    demo.set_defaults(func=run_demo)
    lineage = sub.add_parser("lineage", help="trace a model version or a partition back to the raw source files")
    lineage.add_argument("target", help="a model name, or a partition as zone/dataset/YYYY-MM-DD")
    lineage.add_argument("version", nargs="?", help="version number or alias (champion, challenger)")
    lineage.set_defaults(func=run_lineage)
    lint = sub.add_parser("lint", aliases=["check"], help="every error of pipeline specs (files or folders) at once")
    lint.add_argument("specs", nargs="+", help="spec files, or folders of them")
    lint.add_argument("--project", help="project folder the specs' paths are relative to (env SKYLIFT_PROJECT; "
                                        "default: the folder holding the spec's dags/pipelines/)")
    lint.set_defaults(func=run_lint)
    schema = sub.add_parser("schema", help="print the JSON Schema of a pipeline spec (for editors)")
    schema.set_defaults(func=run_schema)
    verify = sub.add_parser("verify", help="check every listed file of the lake's partitions (size, SHA-256, rows)")
    verify.add_argument("target", nargs="?", help="a zone, zone/dataset or zone/dataset/YYYY-MM-DD (default: all)")
    verify.set_defaults(func=run_verify)
    runner.add_commands(sub)
    plan.add_command(sub)
    registry_cli.add_commands(sub)
    ui.add_command(sub)
    serve.add_command(sub)
    args = parser.parse_args(argv)
    if getattr(args, "drops", None):
        os.environ[DROPS_VARIABLE] = args.drops
    if args.home:
        os.environ.update(embedded_environment(Path(args.home).resolve(), getattr(args, "project", None)))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
