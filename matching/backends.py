"""Where Splink runs: DuckDB in this process (the default) or Spark (`local[2]`, or a cluster).

The model file always holds DuckDB SQL (`sql_dialect: duckdb`), whatever trained it, so that a model
trained on Spark links on DuckDB and the online matcher reads it unchanged; `to_dialect` rewrites the
few function names that differ before a Spark linker sees the settings, `from_dialect` rewrites them
back. Inputs reach both backends through `register` with the same explicit types (text columns as
strings, `birth_year` as a 64-bit integer, `birth_date` as an ISO `YYYY-MM-DD` string), so that
Spark's type inference and date handling never differ from DuckDB's.

Spark: `spark_session()` returns the active session when there is one (a cluster job started with
`spark-submit`, or one the caller built), otherwise builds a local one from `KIUNGO_SPARK_MASTER`
(default `local[2]`) with few shuffle partitions, no UI, Splink's similarity jar, and a temporary
checkpoint directory (Splink breaks lineage by writing Parquet there; on a cluster set
`KIUNGO_SPARK_CHECKPOINT_DIR` to a path every executor can write, e.g. on HDFS or S3).

DuckDB: a fresh in-memory database per linker, with DuckDB's own defaults (all cores, 80 % of RAM)
unless `KIUNGO_DUCKDB_THREADS`, `KIUNGO_DUCKDB_MEMORY_LIMIT` (e.g. `8GB`) or `KIUNGO_DUCKDB_TEMP_DIR`
(where it spills when over the limit) say otherwise.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from matching.errors import MatchingError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from splink.internals.database_api import DatabaseAPI
    from splink.internals.splink_dataframe import SplinkDataFrame

Backend = Literal["duckdb", "spark"]
BACKENDS: tuple[Backend, ...] = ("duckdb", "spark")

#: Function names that differ between DuckDB and Splink's Spark UDFs (DuckDB name -> Spark name).
_SPARK_FUNCTIONS = {"jaro_winkler_similarity(": "jaro_winkler("}
_SPARK_DIALECT = "spark"
_DUCKDB_DIALECT = "duckdb"


class BackendError(MatchingError):
    """The requested backend is unknown or cannot start (pyspark or Java missing)."""


def check_backend(backend: str) -> Backend:
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def database_api(backend: Backend) -> DatabaseAPI[Any]:
    """A fresh Splink database API on `backend`."""
    check_backend(backend)
    if backend == "duckdb":
        from splink import DuckDBAPI

        return DuckDBAPI(connection=duckdb_connection())
    try:
        from splink.backends.spark import SparkAPI
    except ImportError as exc:
        raise BackendError(f"the spark backend needs pyspark (pip install pyspark): {exc}") from exc
    return SparkAPI(spark_session=spark_session(), break_lineage_method="parquet")  # type: ignore[no-untyped-call]


def duckdb_connection() -> Any:
    """An in-memory DuckDB connection with the `KIUNGO_DUCKDB_*` settings applied."""
    import duckdb

    connection = duckdb.connect(":memory:")
    for variable, setting in (
        ("KIUNGO_DUCKDB_THREADS", "threads"),
        ("KIUNGO_DUCKDB_MEMORY_LIMIT", "memory_limit"),
        ("KIUNGO_DUCKDB_TEMP_DIR", "temp_directory"),
    ):
        value = os.environ.get(variable)
        if value:
            try:
                connection.execute(f"SET {setting} = ?", [value])
            except duckdb.Error as exc:
                raise BackendError(f"{variable}={value!r}: {exc}") from exc
    return connection


def register(db_api: DatabaseAPI[Any], table: pa.Table, name: str) -> SplinkDataFrame:
    """Register a typed Arrow table (see `model._for_splink`) with `db_api` under `name`."""
    from splink import DuckDBAPI

    if isinstance(db_api, DuckDBAPI):
        return db_api.register(table, dataset_display_name=name)
    spark = spark_session()
    frame = spark.createDataFrame(table.to_pandas(), schema=_spark_schema(table.schema))
    # One Spark session serves every linker: give each input its own view, shown under `name`.
    view = f"__kiungo_input_{uuid.uuid4().hex[:12]}"
    frame.createOrReplaceTempView(view)
    return db_api.register(view, dataset_display_name=name)


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    fields = []
    for f in schema:
        if pa.types.is_integer(f.type):
            fields.append(StructField(f.name, LongType(), True))
        elif pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            fields.append(StructField(f.name, StringType(), True))
        else:
            raise BackendError(f"column {f.name!r} has type {f.type}; the model takes strings and integers")
    return StructType(fields)


def _rewrite(value: Any, dialect: str, functions: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: (dialect if k == "sql_dialect" else _rewrite(v, dialect, functions)) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, dialect, functions) for v in value]
    if isinstance(value, str):
        for old, new in functions.items():
            value = value.replace(old, new)
        return value
    return value


def to_dialect(settings: dict[str, Any], backend: Backend) -> dict[str, Any]:
    """Splink settings (or a comparison dict) in DuckDB SQL, rewritten for `backend`."""
    if backend == "duckdb":
        return settings
    rewritten: dict[str, Any] = _rewrite(settings, _SPARK_DIALECT, _SPARK_FUNCTIONS)
    return rewritten


def from_dialect(settings: dict[str, Any], backend: Backend) -> dict[str, Any]:
    """Splink settings saved by a `backend` linker, rewritten into the DuckDB SQL the model file keeps."""
    if backend == "duckdb":
        return settings
    back = {new: old for old, new in _SPARK_FUNCTIONS.items()}
    rewritten: dict[str, Any] = _rewrite(settings, _DUCKDB_DIALECT, back)
    return rewritten


_checkpoint_dir: str | None = None


def spark_session() -> SparkSession:
    """The active Spark session, or a local one (`KIUNGO_SPARK_MASTER`, default `local[2]`)."""
    global _checkpoint_dir
    try:
        from pyspark.sql import SparkSession
        from splink.backends.spark import similarity_jar_location
    except ImportError as exc:
        raise BackendError(f"the spark backend needs pyspark (pip install pyspark): {exc}") from exc
    active = SparkSession.getActiveSession()
    if active is not None:
        spark = active
    else:
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise BackendError("the spark backend needs Java 17 or later (java not on PATH, JAVA_HOME unset)")
        master = os.environ.get("KIUNGO_SPARK_MASTER", "local[2]")
        partitions = os.environ.get("KIUNGO_SPARK_PARTITIONS", "4")
        try:
            spark = (
                SparkSession.builder.master(master)
                .appName("kiungo-matching")
                .config("spark.jars", similarity_jar_location())
                .config("spark.sql.shuffle.partitions", partitions)
                .config("spark.default.parallelism", partitions)
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                .config("spark.driver.memory", os.environ.get("KIUNGO_SPARK_DRIVER_MEMORY", "2g"))
                .getOrCreate()
            )
        except Exception as exc:  # Py4J and Java start-up failures are plain exceptions
            raise BackendError(f"cannot start Spark ({master}): {exc}") from exc
        spark.sparkContext.setLogLevel("ERROR")
    if spark.sparkContext.getCheckpointDir() is None:
        if _checkpoint_dir is None and os.environ.get("KIUNGO_SPARK_CHECKPOINT_DIR"):
            _checkpoint_dir = os.environ["KIUNGO_SPARK_CHECKPOINT_DIR"]
        elif _checkpoint_dir is None:
            _checkpoint_dir = tempfile.mkdtemp(prefix="kiungo-spark-checkpoint-")
            atexit.register(shutil.rmtree, _checkpoint_dir, True)
        spark.sparkContext.setCheckpointDir(_checkpoint_dir)
    return spark
