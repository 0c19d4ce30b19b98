"""One raw image-text sample as every dataset adapter yields it, and how its image is opened.

Images are referenced, not loaded: an adapter lists millions of samples cheaply and the
extraction data loader opens each image in a worker process. A reference that cannot be
opened (missing file, corrupt bytes) makes the image absent for that sample; it never
raises inside a run.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image, UnidentifiedImageError


class ImageRef(Protocol):
    """Anything that can open one image. Must be picklable (it crosses into loader workers)."""

    def open(self) -> Image.Image: ...

    def describe(self) -> str: ...


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
