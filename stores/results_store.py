"""Results: one Parquet file per evaluation, and DuckDB views over all of them.

    {root}/results/metrics/{run_id}.parquet   one row per (metric, value) of one evaluation
    {root}/results/results.duckdb             views only (`metrics`), no data; local stores only

Writers never share a file: each evaluation writes its own Parquet file under a unique name,
atomically, so any number of workers can append at once without locks. The DuckDB file holds
only a view over the Parquet glob; it is made once (in a temporary file renamed into place),
again if the store has moved, and queries open it read-only, so they see every committed
result and change nothing.

A remote store (`s3://...`) has no place for a database file that DuckDB could open, so each
query there defines the same views in memory, over the store's fsspec filesystem, on a
connection that can read the store but write no file.
"""

from __future__ import annotations

import functools
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from fsspec import AbstractFileSystem

from pipeline.errors import StoreMismatchError
from stores.fs import exists, is_local, join, list_names, read_parquet, url_to_fs, write_parquet

METRIC_COLUMNS = pa.schema(
    [
        ("run_id", pa.string()),
        ("dataset", pa.string()),
        ("encoder_id", pa.string()),
        ("restorer", pa.string()),
        ("variant", pa.string()),
        ("eta", pa.float64()),
        ("missing_type", pa.string()),
        ("seed", pa.int64()),
        ("split", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("n", pa.int64()),
        ("sampling_steps", pa.int64()),
        # Wall time of the restore step that made this evaluation's restoration. A per-row
        # restorer (dit, knn, regression) restores every row once and each mask selects its own,
        # so the first mask to need them pays that and later ones take ~0.1 s: sum these over a
        # restorer's evaluations for its cost, do not average them. The sampling cost itself is
        # the report's "ms / sample".
        ("restore_seconds", pa.float64()),
        ("evaluate_seconds", pa.float64()),  # wall time of training and scoring the decoder
        ("decoder_id", pa.string()),
        ("config_hash", pa.string()),
        ("code_version", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
    ]
)


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"


def append_metrics(root: str, run: dict[str, Any], scores: dict[str, float]) -> str:
    """Write one evaluation's scores as its own Parquet file; returns its run id."""
    run_id = run.get("run_id") or new_run_id()
    stamp = datetime.now(UTC)
    rows = [{**run, "run_id": run_id, "metric": metric, "value": value, "timestamp": stamp}
            for metric, value in scores.items()]  # fmt: skip
    table = pa.Table.from_pylist([{name: row.get(name) for name in METRIC_COLUMNS.names} for row in rows],
                                 schema=METRIC_COLUMNS)  # fmt: skip
    write_parquet(metrics_url(root, run_id), table)
    if is_local(root):  # a remote store's views are made by each query, in memory
        ensure_views(root)
    return run_id


def metrics_url(root: str, run_id: str) -> str:
    return join(root, "results", "metrics", f"{run_id}.parquet")


def read_run(root: str, run_id: str) -> dict[str, Any] | None:
    """The scores of one committed evaluation ({run_id, scores, n}), or None if it never finished."""
    url = metrics_url(root, run_id)
    if not exists(url):
        return None
    rows = read_parquet(url).to_pylist()
    return {"run_id": run_id, "scores": {row["metric"]: row["value"] for row in rows}, "n": rows[0]["n"]}


def database_path(root: str) -> Path:
    if not is_local(root):
        raise ValueError(f"only a local store keeps a DuckDB views database; {root} is remote")
    return Path(root.removeprefix("file://")) / "results" / "results.duckdb"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _metrics_pattern(path: Path) -> str:
    """The Parquet glob of the store that holds the views database at `path`, as an SQL literal."""
    return _literal(str(path.parent / "metrics" / "*.parquet"))


def _create_views(connection: duckdb.DuckDBPyConnection, metrics_pattern: str) -> None:
    """The views of a store whose results match `metrics_pattern` (an SQL literal), local or remote."""
    connection.execute(
        f"CREATE VIEW metrics AS SELECT * FROM read_parquet({metrics_pattern}, union_by_name = true)"
    )


def _views_point_here(path: Path) -> bool:
    with duckdb.connect(str(path), read_only=True) as connection:
        row = connection.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'metrics'").fetchone()
    return row is not None and _metrics_pattern(path) in row[0]


def ensure_views(root: str) -> Path:
    """The views database, made on first use (atomically: two writers may race to make it).

    The view names the store's Parquet glob by its absolute path, so a store that was copied
    or moved gets its views made again: otherwise it would still read the old place's results.
    """
    path = database_path(root)
    if path.exists() and _views_point_here(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{uuid.uuid4().hex}.duckdb")
    with duckdb.connect(str(temporary)) as connection:
        _create_views(connection, _metrics_pattern(path))
    os.replace(temporary, path)
    return path


# DuckDB reports a PermissionError raised in a registered filesystem (a write refused below, or
# S3's access denied) as the whole Python traceback, which ends with this and its message.
_READ_ONLY = "PermissionError: "


class _Unwritable(AbstractFileSystem):
    """Mixed before a store's filesystem class for DuckDB: user SQL reads the store, never changes it.

    No DuckDB setting makes a registered filesystem read-only: `enable_external_access = false`
    stops the views' own reads too, and `allowed_directories` lets writes in as well as reads.
    DuckDB's fsspec bridge writes only through these methods (COPY ... TO opens a file for
    writing, PARTITION_BY makes folders, OVERWRITE removes files, a temporary file may be moved).
    """

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode not in ("r", "rb"):
            self._refuse(path)
        return super().open(path, mode, **kwargs)

    def _refuse(self, path: Any, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(f"the results store is read-only to SQL: cannot write {path}")

    mkdir = makedirs = rm = rm_file = mv = _refuse


@functools.cache
def _unwritable(cls: type[AbstractFileSystem]) -> type[AbstractFileSystem]:
    return type(f"Unwritable{cls.__name__}", (_Unwritable, cls), {})


def _connect(root: str) -> duckdb.DuckDBPyConnection:
    """A connection with the store's views on which user SQL can change nothing."""
    if is_local(root):
        if not database_path(root).exists():
            raise _no_results(root)
        path = ensure_views(root)  # remade if the store was moved since
        return duckdb.connect(str(path), read_only=True)
    fs = url_to_fs(root)[0]
    connection = duckdb.connect(":memory:")
    try:
        connection.register_filesystem(_unwritable(type(fs))(**fs.storage_options))
        _create_views(connection, _literal(join(root, "results", "metrics", "*.parquet")))
        # The in-memory catalog is thrown away on close; local files are out of reach, and the
        # settings out of the user's SQL's reach, so nothing it runs outlives the query.
        connection.execute("SET disabled_filesystems = 'LocalFileSystem'")
        connection.execute("SET lock_configuration = true")
    except BaseException:
        connection.close()
        raise
    return connection


def _no_results(root: str) -> StoreMismatchError:
    return StoreMismatchError(f"no results in {root} yet: run `mmr-pipeline evaluate` first")


def query(root: str, sql: str, parameters: list[Any] | None = None) -> tuple[list[str], list[tuple]]:
    """Run `sql` (with `?` parameters) on a read-only connection; returns column names and rows."""
    try:
        with _connect(root) as connection:
            cursor = connection.execute(sql, parameters or [])
            columns = [description[0] for description in cursor.description or []]
            return columns, cursor.fetchall()
    except duckdb.Error as error:
        refused = str(error).rstrip().rsplit("\n", 1)[-1]
        if refused.startswith(_READ_ONLY):  # one line, as DuckDB's own errors are
            raise duckdb.PermissionException(refused.removeprefix(_READ_ONLY)) from None
        # The views' glob matches no file: no results yet, or results/metrics was emptied.
        if isinstance(error, duckdb.IOException) and not list_names(join(root, "results", "metrics")):
            raise _no_results(root) from None
        raise
