"""Helpers shared by the adapters of public raw layouts (MM-IMDb, Food-101, N24News, ...).

They keep the bad-input rules in one place: a file or folder the layout needs is a one-line
`DatasetLayoutError` that names it and the fix; a label outside the label set is one too;
a deterministic rule carves a val split where the public release has none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

from pipeline.errors import ConfigError, DatasetLayoutError
from stores.fs import exists, join, read_json, url_to_fs


def need_json(root: str, relative: str, fix: str) -> Any:
    """The parsed JSON file `root/relative`; missing or malformed is a layout error naming it."""
    try:
        payload = read_json(join(root, relative))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetLayoutError(
            f"{join(root, relative)} is not valid JSON ({error}): re-download or re-extract that file"
        ) from None
    if payload is None:
        raise DatasetLayoutError(f"no {relative} under {root}: {fix}")
    return payload


def json_objects(root: str, relative: str) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, object) of each non-blank line of the JSON-lines file `root/relative`.

    Each line is decoded on its own, so a byte that is not UTF-8 is reported with its line
    number; a UTF-8 byte-order mark (some Windows editors write one) is dropped.
    """
    fs, path = url_to_fs(join(root, relative))
    with fs.open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig")
            except UnicodeDecodeError as error:
                raise DatasetLayoutError(
                    f"{relative} line {number} is not UTF-8 text (byte 0x{error.object[error.start]:02x}): "
                    "save the file as UTF-8"
                ) from None
            if line.strip():
                # without its line end, a parse error's position counts characters of this line
                yield number, _json_object(line.rstrip(), f"{relative} line {number}")


def _json_object(line: str, where: str) -> dict[str, object]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DatasetLayoutError(
            f"{where} is not a JSON object ({error.msg} at character {error.pos + 1}): fix that line"
        ) from None
    if not isinstance(record, dict):
        raise DatasetLayoutError(
            f"{where} is not a JSON object (it is a {type(record).__name__}): fix that line"
        )
    return record


def need_path(root: str, relative: str, fix: str) -> str:
    """The URL of `root/relative`, which must exist (a split file, an image folder)."""
    url = join(root, relative)
    if not exists(url):
        raise DatasetLayoutError(f"no {relative} under {root}: {fix}")
    return url


def subfolders(url: str) -> list[str]:
    """Sorted names of the folders directly under `url` (hidden ones skipped)."""
    fs, path = url_to_fs(url)
    names = (
        entry["name"].rstrip("/").rsplit("/", 1)[-1]
        for entry in fs.ls(path, detail=True)
        if entry["type"] == "directory"
    )
    return sorted(name for name in names if not name.startswith("."))


def class_index(classes: Sequence[str], name: object, where: str, fix: str) -> int:
    """The index of label `name` in `classes`; an unknown label is a layout error naming `where`."""
    try:
        return list(classes).index(str(name).strip())
    except ValueError:
        shown = ", ".join(classes[:6]) + (", ..." if len(classes) > 6 else "")
        raise DatasetLayoutError(f"{where}: label {name!r} is not one of {shown}: {fix}") from None


def first_text(values: object) -> str | None:
    """The first non-blank text of a list of texts (MM-IMDb plots, MAP's text lists)."""
    if isinstance(values, str):
        return values
    return next((str(value) for value in values or () if value and str(value).strip()), None)


def names_option(option: str, value: object, allowed: Sequence[str] | None = None) -> tuple[str, ...]:
    """A list option given as a sequence or, from the command line, as "a,b,c"."""
    parts = value.split(",") if isinstance(value, str) else value if isinstance(value, list | tuple) else ()
    names = tuple(str(part).strip() for part in parts if str(part).strip())
    unknown = [name for name in names if allowed is not None and name not in allowed]
    if not names or unknown:
        choices = f": choose from {', '.join(allowed)}" if allowed else ""
        raise ConfigError(f"option {option}={value!r} is not a list of names{choices}")
    return names


def percent_option(option: str, value: int) -> int:
    if not isinstance(value, int) or not 0 <= value < 100:
        raise ConfigError(f"option {option}={value!r} must be a whole percentage from 0 to 99")
    return value


def held_out_for_val(dataset: str, sample_id: str, percent: int) -> bool:
    """Whether a train sample moves to the carved val split.

    The rule hashes the sample id alone (first 8 hex digits of sha256("<dataset>/<id>"),
    mod 100 < percent), so a sample's split never depends on file order, on which other
    samples exist, or on the machine: everyone with the same files gets the same split.
    """
    digest = hashlib.sha256(f"{dataset}/{sample_id}".encode()).hexdigest()
    return int(digest[:8], 16) % 100 < percent
