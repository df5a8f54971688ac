"""Run an unchanged PySpark feature job on DuckDB, through sqlframe's PySpark-compatible API.

The contract is the Spark path's (include/spark_features.py): each argument's days read from
local Parquet files with their `ds` column and unioned by name, the job called with them and
`ds`, its result checked, then written as one Parquet file sorted by every column, with the
column types Spark would write.

How the job sees sqlframe: `sqlframe.activate("duckdb")` swaps the `pyspark` modules in
`sys.modules` for the process. That is process-global, so here it is held only while the job's
module is imported afresh, its DataFrame planned and written, under a lock, and undone afterwards:
the job's module and every module that import bound to sqlframe are forgotten again, and
modules of the job's package that were bound to the real pyspark are put back, so a Spark task
later in the same process (`dag.test` runs tasks in one process) imports the job on PySpark.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from include.errors import FeatureJobError
from include.feature_engine import JobInputs, check_job_result

# One activation at a time in this process: sqlframe's module swap is global.
_ACTIVATION = threading.Lock()
_MISSING = object()
# Spark functions DuckDB lacks, registered on each connection (see _register_spark_functions).
REGISTERED_FUNCTIONS = ("xxhash64",)
# Spark's date and time parts are INT; DuckDB's BIGINT.
INT_DATE_PARTS = ("year", "quarter", "month", "weekofyear", "dayofweek", "dayofmonth", "dayofyear", "hour", "minute",
                  "second")
# DuckDB types with no Spark counterpart, as Spark would type the same expression's result.
_SPARK_TYPES = {"HUGEINT": "BIGINT", "UBIGINT": "BIGINT", "UINTEGER": "BIGINT", "USMALLINT": "INTEGER",
                "UTINYINT": "SMALLINT", "TIMESTAMP WITH TIME ZONE": "TIMESTAMP"}


def write_features(job_path: str, inputs: JobInputs, ds: str, out: Path, threads: int | None = None) -> None:
    """Run `job_path` (module:function) over `inputs` on an in-process DuckDB; write `out/part-00000.parquet`."""
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"temp_directory": str(out.parent / "duckdb-spill")})
    try:
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        _register_spark_functions(con)
        views = {name: _input_view(con, index, days) for index, (name, days) in enumerate(inputs.files.items())}
        with _job_on_sqlframe(con, job_path) as (session, job):
            frames = {name: session.table(view) for name, view in views.items()}
            features = _call(job, job_path, frames, inputs, ds)
            sql, columns = _plan(features, job_path, ds)
            _copy(con, sql, columns, out / "part-00000.parquet", job_path, ds)
    finally:
        con.close()


def _input_view(con: Any, index: int, days: dict[str, list[str]]) -> str:
    """A view of one argument's days, each file read with its day as `ds`: Spark's `withColumn("ds",
    lit(day))`, which replaces a `ds` column in place (the lake's partitions carry one) or adds it last."""
    import pyarrow.parquet as pq

    selects = []
    for day, files in sorted(days.items()):
        has_ds = "ds" in pq.read_schema(files[0]).names
        columns = f"* REPLACE ({_text(day)} AS ds)" if has_ds else f"*, {_text(day)} AS ds"
        # The lake's folders are named `ds=<day>`: no Hive partition column from the path, the day is set here.
        paths = ", ".join(_text(f) for f in files)
        selects.append(f"SELECT {columns} FROM read_parquet([{paths}], hive_partitioning = false)")
    view = f"skylift_input_{index}"
    con.execute(f"CREATE VIEW {view} AS {' UNION ALL BY NAME '.join(selects)}")
    return view


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@contextmanager
def _job_on_sqlframe(con: Any, job_path: str) -> Iterator[tuple[Any, Any]]:
    """A sqlframe session on `con` and the job imported with `pyspark` resolving to sqlframe."""
    import sqlframe
    from sqlframe.duckdb import DuckDBSession

    module_name, _, func_name = job_path.partition(":")
    with _ACTIVATION:
        sqlframe.activate("duckdb", conn=con)
        session = None
        try:
            with _spark_functions_on_sqlframe(), _isolated_import(module_name) as module:
                session = DuckDBSession(conn=con)
                if session._conn is not con:  # a session someone left open: sqlframe keeps one per process
                    session.stop()
                    session = DuckDBSession(conn=con)
                yield session, getattr(module, func_name)
        finally:
            if session is not None:
                session.stop()
            sqlframe.deactivate()


@contextmanager
def _spark_functions_on_sqlframe() -> Iterator[None]:
    """sqlframe's DuckDB `functions` as Spark types them, for the length of one job: the ones DuckDB
    lacks but this module registers, and date parts as INT (DuckDB's are BIGINT, Spark's INT)."""
    import functools

    import sqlframe.base.functions as spark_api
    import sqlframe.duckdb.functions as duckdb_api

    replaced = {name: getattr(duckdb_api, name, _MISSING) for name in (*REGISTERED_FUNCTIONS, *INT_DATE_PARTS)}
    for name in REGISTERED_FUNCTIONS:
        if replaced[name] is _MISSING:
            setattr(duckdb_api, name, getattr(spark_api, name))
    for name in INT_DATE_PARTS:
        part = replaced[name]
        setattr(duckdb_api, name, functools.wraps(part)(lambda col, _part=part: _part(col).cast("int")))
    try:
        yield
    finally:
        for name, value in replaced.items():
            if value is _MISSING:
                delattr(duckdb_api, name)
            else:
                setattr(duckdb_api, name, value)


@contextmanager
def _isolated_import(module_name: str) -> Iterator[ModuleType]:
    """Import `module_name` afresh; afterwards leave `sys.modules` as it was for everything bound
    to either API (the job's module, its package's PySpark-bound modules, any new sqlframe-bound one)."""
    package = module_name.split(".", 1)[0]
    put_aside = {name: module for name, module in list(sys.modules.items())
                 if name == module_name or ((name == package or name.startswith(package + "."))
                                            and _binds(module, "pyspark"))}
    attributes = {name: _parent_attribute(name) for name in put_aside}
    for name in put_aside:
        del sys.modules[name]
    before = set(sys.modules)
    try:
        yield importlib.import_module(module_name)
    finally:
        for name in set(sys.modules) - before:
            module = sys.modules[name]
            if not name.startswith(("sqlframe", "pyspark")) and (name in put_aside or _binds(module, "sqlframe")):
                del sys.modules[name]
                attributes.setdefault(name, _MISSING)
        sys.modules.update(put_aside)
        for name, value in attributes.items():
            _set_parent_attribute(name, value)


def _binds(module: ModuleType, api: str) -> bool:
    """Whether a module's globals hold a module, class or function of `api` (imported at its top)."""
    for value in list(vars(module).values()):
        origin = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
        if isinstance(origin, str) and (origin == api or origin.startswith(api + ".")):
            return True
    return False


def _parent_attribute(name: str) -> Any:
    parent, _, leaf = name.rpartition(".")
    return getattr(sys.modules.get(parent), leaf, _MISSING) if parent else _MISSING


def _set_parent_attribute(name: str, value: Any) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = sys.modules.get(parent_name) if parent_name else None
    if parent is None:
        return
    if value is _MISSING:
        if leaf in vars(parent):
            delattr(parent, leaf)
    else:
        setattr(parent, leaf, value)


def _call(job: Any, job_path: str, frames: dict[str, Any], inputs: JobInputs, ds: str) -> Any:
    from sqlframe.base.dataframe import BaseDataFrame

    try:
        features = job(frames[""], ds) if inputs.positional else job(**frames, ds=ds)
    except NotImplementedError as exc:
        raise _unsupported(job_path, ds, exc) from exc
    check_job_result(features, job_path, ds, frame_type=BaseDataFrame)
    return features


def _plan(features: Any, job_path: str, ds: str) -> tuple[str, list[tuple[str, str, bool]]]:
    """The job's query in DuckDB's SQL and its columns: (name, DuckDB type as Spark types it, orderable)."""
    import duckdb

    try:
        sql = _without_partition_aliases(features).sql(dialect="duckdb", pretty=False, optimize=False)
        described = features.session._conn.execute(f"DESCRIBE {sql}").fetchall()
    except (duckdb.Error, NotImplementedError) as exc:
        raise _unsupported(job_path, ds, exc) from exc
    columns = [(name, _SPARK_TYPES.get(kind, kind), not kind.startswith(("MAP(", "MAP<"))) for name, kind, *_ in
               described]
    return sql, columns


def _without_partition_aliases(features: Any) -> Any:
    """sqlframe 4.10 names an expression in `Window.partitionBy` (`AS "floor__..."`), which no SQL
    accepts inside PARTITION BY; the expression alone partitions the same rows."""
    from sqlglot import exp

    plan = features.expression.copy()
    for window in plan.find_all(exp.Window):
        parts = window.args.get("partition_by") or []
        window.set("partition_by", [p.this if isinstance(p, exp.Alias) else p for p in parts])
    return features.copy(expression=plan)


def _copy(con: Any, sql: str, columns: list[tuple[str, str, bool]], target: Path, job_path: str, ds: str) -> None:
    """One Parquet file, sorted by every orderable column (same rows, same bytes), written whole."""
    import duckdb

    casts = ", ".join(f"CAST({_name(n)} AS {kind}) AS {_name(n)}" for n, kind, _ in columns)
    order = ", ".join(_name(n) for n, _, orderable in columns if orderable)
    query = f"SELECT {casts} FROM ({sql}) AS features" + (f" ORDER BY {order}" if order else "")
    try:
        con.execute(f"COPY ({query}) TO {_text(str(target))} (FORMAT parquet)")
    except duckdb.Error as exc:
        raise _unsupported(job_path, ds, exc) from exc


def _name(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _unsupported(job_path: str, ds: str, exc: BaseException) -> FeatureJobError:
    return FeatureJobError(f"feature job {job_path} failed on DuckDB (sqlframe) for ds={ds}: {exc}. Run it on "
                           "Spark with `features.engine: spark` in the pipeline's spec")


def _register_spark_functions(con: Any) -> None:
    """Spark functions DuckDB lacks, with Spark's results: `xxhash64` of one string column."""
    from include.spark_hash import xxhash64_strings

    con.create_function("xxhash64", xxhash64_strings, ["VARCHAR"], "BIGINT", type="arrow",
                        null_handling="special", side_effects=False)
