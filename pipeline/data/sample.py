"""One raw image-text sample as every dataset adapter yields it, and how its image is opened.

Images are referenced, not loaded: an adapter lists millions of samples cheaply and the
extraction data loader opens each image in a worker process. A reference that cannot be
opened (missing file, corrupt bytes) makes the image absent for that sample; it never
raises inside a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from PIL import Image, UnidentifiedImageError


class ImageRef(Protocol):
    """Anything that can open one image. Must be picklable (it crosses into loader workers)."""

    def open(self) -> Image.Image: ...

    def describe(self) -> str: ...


# Reference classes whose instances the feature store's listing records, by "module:Class".
# Extraction tasks rebuild their shards' references from it instead of listing the dataset
# again: at CC3M's size a listing reads every tar header, and there is one task per 4 shards.
STORED_REFERENCES: dict[str, type] = {}
Reference = TypeVar("Reference", bound=type)


def _kind(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def stored_reference(cls: Reference) -> Reference:
    """Class decorator: a frozen dataclass of JSON values that the listing may record."""
    STORED_REFERENCES[_kind(cls)] = cls
    return cls


def reference_to_json(image: ImageRef | None) -> str | None:
    if image is None:
        return None
    kind = _kind(type(image))
    if kind not in STORED_REFERENCES:
        raise TypeError(f"{kind} is not a stored reference: decorate it with @stored_reference")
    return json.dumps({"kind": kind, "fields": dataclasses.asdict(image)})  # type: ignore[call-overload]


def reference_from_json(text: str | None) -> ImageRef | None:
    """The reference `reference_to_json` recorded; only classes of `pipeline.data` are rebuilt."""
    if text is None:
        return None
    record = json.loads(text)
    module = record["kind"].split(":")[0]
    if module.startswith("pipeline.data.") and record["kind"] not in STORED_REFERENCES:
        with contextlib.suppress(ModuleNotFoundError):  # a module since removed: the error below
            importlib.import_module(module)  # registers the adapter's reference class
    cls = STORED_REFERENCES.get(record["kind"])
    if cls is None:
        raise ValueError(
            f"the listing names an unknown image reference {record['kind']!r}: extract into a new store"
        )
    return cls(**record["fields"])


@stored_reference
@dataclass(frozen=True)
class FileImage:
    """An image file on a local path or an fsspec URL."""

    path: str

    def open(self) -> Image.Image:
        import fsspec

        with fsspec.open(self.path, "rb") as handle:
            data = handle.read()
        return BytesImage(data).open()

    def describe(self) -> str:
        return self.path


@dataclass(frozen=True)
class BytesImage:
    """Encoded image bytes held in memory (arrow files, webdataset members)."""

    data: bytes = field(repr=False)
    origin: str = "<bytes>"

    def open(self) -> Image.Image:
        image = Image.open(io.BytesIO(self.data))
        image.load()  # decode now so truncated files fail here, not later in a transform
        return image

    def describe(self) -> str:
        return self.origin


@dataclass(frozen=True)
class Sample:
    """One raw sample. `text` None or blank and `image` None mean the modality is absent.

    `label` holds class indices: one entry for single-label tasks, the positive classes for
    multi-label tasks, none for unlabelled corpora.
    """

    sample_id: str
    split: str
    text: str | None
    image: ImageRef | None
    label: tuple[int, ...] = ()
    source: str = ""


def open_rgb(ref: ImageRef | None) -> tuple[Image.Image | None, str, str]:
    """Open an image as RGB. On bad input return (None, kind, detail) instead of raising.

    kind is one of "not in raw data", "missing file", "unreadable"; detail names the file.
    """
    if ref is None:
        return None, "not in raw data", ""
    try:
        return ref.open().convert("RGB"), "", ""
    except FileNotFoundError:
        return None, "missing file", ref.describe()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        return None, "unreadable", f"{ref.describe()}: {type(error).__name__}"


def clean_text(text: str | None) -> str | None:
    """Whitespace-only text counts as absent."""
    if text is None:
        return None
    stripped = " ".join(text.split())
    return stripped or None
