"""An unlabelled mid-stage corpus in img2dataset's webdataset output (CC3M, CC12M, LAION...).

    <root>/00000.tar, 00001.tar, ...     members grouped by key: <key>.jpg|jpeg|png|webp, <key>.txt
                                         (and <key>.json, ignored)

A key is a member's path up to the first dot of its file name (the webdataset rule). Every
key is one sample of split "corpus", in shard order then member order; a key without an image
member or without a .txt caption keeps that modality absent.

Shards are streamed, never unpacked or held in memory: listing reads the tar headers and the
small .txt members, and each image is a `TarSliceImage` that remembers where its bytes sit in
the shard, so opening it is one seek and one read (a range request on an object store) rather
than a scan of the tar. `name` names the corpus and its store (default "webdataset").
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image

from pipeline.data.adapter import DatasetAdapter, DatasetInfo
from pipeline.data.sample import BytesImage, Sample, stored_reference
from pipeline.errors import DatasetLayoutError
from stores.fs import join, url_to_fs

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


@stored_reference
@dataclass(frozen=True)
class TarSliceImage:
    """One image member of an uncompressed tar, addressed by the offset and size of its data."""

    tar_path: str
    member: str
    offset: int
    size: int

    def open(self) -> Image.Image:
        fs, path = url_to_fs(self.tar_path)
        with fs.open(path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(self.size)
        return BytesImage(data, self.describe()).open()

    def describe(self) -> str:
        return f"{self.tar_path}#{self.member}"


def _shards(root: str) -> list[str]:
    """The .tar files directly under the folder `root`, sorted by name.

    The folder is listed, not globbed: a root holding `[`, `]` or `*` names one folder, not a
    pattern that finds nothing or sweeps in its siblings' shards.
    """
    fs, path = url_to_fs(root)
    if not fs.isdir(path):
        return []
    names = (
        entry["name"].rstrip("/").rsplit("/", 1)[-1]
        for entry in fs.ls(path, detail=True)
        if entry["type"] == "file"
    )
    return [join(root, name) for name in sorted(names) if name.endswith(".tar")]


class WebDatasetAdapter(DatasetAdapter):
    def __init__(self, root: str) -> None:
        self.root = root
        self.shards = _shards(root)
        if not self.shards:
            raise DatasetLayoutError(
                f"no *.tar shards under {root}: pass the folder img2dataset wrote (--output_format webdataset) as --root"
            )
        self.info = DatasetInfo(name="webdataset", label_kind="none", metric="none", splits=("corpus",))

    def samples(self) -> Iterator[Sample]:
        for shard in self.shards:
            yield from self._shard_samples(shard)

    def _shard_samples(self, shard: str) -> Iterator[Sample]:
        """The samples of one shard, streamed; a shard cut short is a layout error, not fewer samples.

        Python's tarfile stops quietly at a truncated header, so the shard must also reach past its
        last member's data to the two zero blocks that end every complete tar.
        """
        shard_name = shard.rsplit("/", 1)[-1]
        key: str | None = None
        text: str | None = None
        image: TarSliceImage | None = None
        end = 0  # where the last member's data (padded to 512-byte blocks) ends
        fs, path = url_to_fs(shard)
        with fs.open(path, "rb") as handle:
            try:
                with tarfile.open(fileobj=handle, mode="r|") as tar:
                    for member in tar:
                        end = member.offset_data + -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                        if not member.isfile():
                            continue
                        name = member.name.removeprefix("./")
                        folder, _, file = name.rpartition("/")
                        stem, _, extension = file.partition(".")
                        member_key = f"{folder}/{stem}" if folder else stem
                        if member_key != key:
                            if key is not None:
                                yield Sample(key, "corpus", text, image, source=f"{shard_name}#{key}")
                            key, text, image = member_key, None, None
                        extension = extension.lower()
                        if extension == "txt":
                            extracted = tar.extractfile(member)
                            text = extracted.read().decode("utf-8", errors="replace") if extracted else None
                        elif extension in IMAGE_EXTENSIONS:
                            image = TarSliceImage(shard, member.name, member.offset_data, member.size)
                if end + 2 * tarfile.BLOCKSIZE > fs.size(path):
                    raise tarfile.ReadError(f"it ends inside or right after member {key}")
            except (tarfile.ReadError, EOFError) as error:
                raise DatasetLayoutError(
                    f"{shard} is truncated or not a tar ({error}): re-download that shard or move it out of {self.root}"
                ) from None
        if key is not None:
            yield Sample(key, "corpus", text, image, source=f"{shard_name}#{key}")
