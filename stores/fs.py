"""fsspec helpers: every store path is a URL (a local directory by default, `s3://...` when set).

Writes that other steps rely on are atomic: a local file is written beside its target and
renamed over it; on an object store a single PUT is atomic already.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from pipeline.errors import ConfigError


def url_to_fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as error:  # the protocol's fsspec package is not installed
        extra = " (pip install 'mmr-pipeline[s3]')" if url.startswith(("s3://", "s3a://")) else ""
        raise ConfigError(f"{url}: {error}{extra}") from None
    return fs, path


def join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *(part.strip("/") for part in parts)])


def is_local(url: str) -> bool:
    return isinstance(url_to_fs(url)[0], LocalFileSystem)


def exists(url: str) -> bool:
    fs, path = url_to_fs(url)
    return fs.exists(path)


def write_bytes_atomic(url: str, data: bytes) -> None:
    fs, path = url_to_fs(url)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    if isinstance(fs, LocalFileSystem):
        temporary = f"{path}.{uuid.uuid4().hex}.partial"
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    else:
        fs.pipe_file(path, data)


def write_json_atomic(url: str, payload: Any) -> None:
    write_bytes_atomic(url, json.dumps(payload, indent=2, sort_keys=True).encode())


def read_json(url: str) -> Any | None:
    """The parsed JSON at `url`, or None when there is no file.

    A file where a folder of the path should be (a --root that names a file) means no file
    there either: the caller's "missing" message is the right one, not a traceback.
    """
    fs, path = url_to_fs(url)
    try:
        with fs.open(path, "rb") as handle:
            return json.loads(handle.read())
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_bytes(url: str) -> bytes:
    fs, path = url_to_fs(url)
    with fs.open(path, "rb") as handle:
        return handle.read()


def list_names(url: str) -> list[str]:
    """Base names of the entries directly under `url` (empty when it does not exist)."""
    fs, path = url_to_fs(url)
    if not fs.exists(path):
        return []
    return sorted(entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path, detail=False))


def remove(url: str) -> None:
    """Delete a file or a folder and everything under it; nothing to do when it does not exist."""
    fs, path = url_to_fs(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def write_parquet(url: str, table: pa.Table, row_group_size: int | None = None) -> None:
    """Write `table` as one Parquet file, atomically."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=row_group_size)
    write_bytes_atomic(url, sink.getvalue().to_pybytes())


def read_parquet(url: str) -> pa.Table:
    fs, path = url_to_fs(url)
    with fs.open(path, "rb") as handle:
        return pq.read_table(handle)


def read_parquet_rows(url: str, start: int, stop: int, columns: list[str]) -> pa.Table:
    """Rows [start, stop) of a Parquet file, reading only the row groups that hold them."""
    fs, path = url_to_fs(url)
    with fs.open(path, "rb") as handle:
        file = pq.ParquetFile(handle)
        sizes = [file.metadata.row_group(index).num_rows for index in range(file.num_row_groups)]
        starts = list(itertools.accumulate(sizes, initial=0))
        groups = [
            index for index, size in enumerate(sizes) if starts[index] < stop and starts[index] + size > start
        ]
        table = file.read_row_groups(groups, columns=columns)
    return table.slice(start - starts[groups[0]], stop - start) if groups else table
