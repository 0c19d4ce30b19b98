"""Arrow files written by MAP's `make_arrow.py` (missing_aware_prompts; DCP and RAGPT reuse them).

    <ds>_<split>.arrow   Arrow IPC file format (RecordBatchFileWriter), one per split:
      mmimdb_{train,dev,test}     image (bytes), plots (list<str>), label (23 ints, 0/1 multi-hot),
                                  genres, image_id, split
      food101_{train,val,test}    image (bytes), text (list<str>, one title), label (int), image_id, split
      hatememes_{train,dev,test}  image (bytes), text (list<str>, one caption), label (0/1), split

Each is its own dataset, `mmimdb-arrow`, `food101-arrow` and `hatememes-arrow` (the registry
name is the store name every later step looks up), apart from the raw adapters' stores because
the splits differ (MAP's food101 val is its own random carve).

Food101 labels are indices into MAP's `class_idx.json`, an unsorted order; they are mapped to
the sorted class names the raw `food101` adapter uses. Text is the first non-blank entry
of the text list (for MM-IMDb: the first plot; MAP trains on every plot as its own row).

The files are opened with pyarrow memory mapping and only the text and label columns are
read while listing; each sample's image is an `ArrowRowImage` (file, row, file version) that
reads that one row's bytes when the loader opens it, so no image bytes are held in memory.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa
from PIL import Image

from pipeline.data.adapter import DatasetAdapter, DatasetInfo
from pipeline.data.hatememes import CLASSES as HATEMEMES_CLASSES
from pipeline.data.mmimdb import GENRES
from pipeline.data.raw import first_text
from pipeline.data.sample import BytesImage, Sample, stored_reference
from pipeline.errors import DatasetLayoutError
from stores.fs import exists, is_local, join, url_to_fs

# MAP's datasets/Food101/class_idx.json: label index -> class name.
MAP_FOOD101_ORDER = (
    "frozen_yogurt", "tacos", "gnocchi", "ramen", "sushi", "spaghetti_carbonara", "foie_gras",
    "club_sandwich", "chicken_curry", "caprese_salad", "guacamole", "fish_and_chips", "seaweed_salad",
    "samosa", "shrimp_and_grits", "prime_rib", "cheese_plate", "grilled_cheese_sandwich", "omelette",
    "macarons", "pancakes", "paella", "crab_cakes", "onion_rings", "poutine", "panna_cotta", "hamburger",
    "eggs_benedict", "pizza", "cup_cakes", "red_velvet_cake", "huevos_rancheros", "french_toast", "pad_thai",
    "beef_tartare", "beet_salad", "garlic_bread", "escargots", "cheesecake", "tuna_tartare", "french_fries",
    "pulled_pork_sandwich", "ravioli", "clam_chowder", "baby_back_ribs", "pork_chop", "chicken_quesadilla",
    "grilled_salmon", "dumplings", "fried_rice", "macaroni_and_cheese", "hot_and_sour_soup", "tiramisu",
    "lobster_roll_sandwich", "filet_mignon", "lobster_bisque", "risotto", "takoyaki", "waffles", "miso_soup",
    "scallops", "hummus", "french_onion_soup", "spaghetti_bolognese", "gyoza", "sashimi", "caesar_salad",
    "donuts", "pho", "creme_brulee", "edamame", "apple_pie", "carrot_cake", "croque_madame", "chocolate_cake",
    "mussels", "chocolate_mousse", "deviled_eggs", "ice_cream", "chicken_wings", "steak", "churros",
    "beignets", "breakfast_burrito", "spring_rolls", "lasagna", "cannoli", "nachos", "bruschetta", "hot_dog",
    "greek_salad", "beef_carpaccio", "falafel", "strawberry_shortcake", "bread_pudding", "ceviche",
    "peking_duck", "bibimbap", "oysters", "fried_calamari", "baklava",
)  # fmt: skip
FOOD101_CLASSES = tuple(sorted(MAP_FOOD101_ORDER))
REGENERATE = "regenerate it with MAP's make_arrow.py"


def _multi_hot(value: object, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) != len(GENRES) or any(flag not in (0, 1) for flag in value):
        raise DatasetLayoutError(
            f"{where}: label {value!r} is not a 0/1 list over the 23 genres: {REGENERATE}"
        )
    return tuple(index for index, flag in enumerate(value) if flag)


def _food_class(value: object, where: str) -> tuple[int, ...]:
    if not isinstance(value, int) or not 0 <= value < len(MAP_FOOD101_ORDER):
        raise DatasetLayoutError(
            f"{where}: label {value!r} is not a class index of MAP's class_idx.json: {REGENERATE}"
        )
    return (FOOD101_CLASSES.index(MAP_FOOD101_ORDER[value]),)


def _binary(value: object, where: str) -> tuple[int, ...]:
    if value not in (0, 1) or isinstance(value, float):
        raise DatasetLayoutError(f"{where}: label {value!r} is not 0 or 1: {REGENERATE}")
    return (int(value),)


@dataclass(frozen=True)
class ArrowLayout:
    """What one dataset's MAP arrow files hold and how their labels decode."""

    files: tuple[tuple[str, str], ...]  # file split -> our split
    text_column: str
    id_column: str | None
    info: DatasetInfo
    decode: Callable[[object, str], tuple[int, ...]]


LAYOUTS = {
    "mmimdb": ArrowLayout(
        (("train", "train"), ("dev", "val"), ("test", "test")),
        "plots",
        "image_id",
        DatasetInfo(name="mmimdb-arrow", label_kind="multi", metric="f1_macro", classes=GENRES),
        _multi_hot,
    ),
    "food101": ArrowLayout(
        (("train", "train"), ("val", "val"), ("test", "test")),
        "text",
        "image_id",
        DatasetInfo(name="food101-arrow", label_kind="single", metric="accuracy", classes=FOOD101_CLASSES),
        _food_class,
    ),
    "hatememes": ArrowLayout(
        (("train", "train"), ("dev", "val"), ("test", "test")),
        "text",
        None,
        DatasetInfo(name="hatememes-arrow", label_kind="single", metric="auroc", classes=HATEMEMES_CLASSES),
        _binary,
    ),
}
_READ_LOCK = threading.Lock()  # a reader over an fsspec file seeks; keep one read at a time


def _version(url: str) -> str:
    """fsspec's key of the file's current state (size, mtime...): a rewritten file gets a new one."""
    fs, path = url_to_fs(url)
    return str(fs.ukey(path))


@functools.lru_cache(maxsize=8)
def _open_arrow(url: str, version: str) -> tuple[pa.ipc.RecordBatchFileReader, tuple[int, ...]]:
    """A reader of one arrow file (memory-mapped when local) and the first row of each batch.

    Cached per process and file version, so a loader worker opens each file once, not once
    per image, and never reads a regenerated file through a stale reader.
    """
    fs, path = url_to_fs(url)
    source = pa.memory_map(path) if is_local(url) else fs.open(path, "rb")
    try:
        reader = pa.ipc.open_file(source)
    except pa.ArrowInvalid as error:
        raise DatasetLayoutError(f"{url} is not an Arrow IPC file ({error}): {REGENERATE}") from None
    sizes = (reader.get_batch(index).num_rows for index in range(reader.num_record_batches))
    return reader, tuple(itertools.accumulate(sizes, initial=0))


@stored_reference
@dataclass(frozen=True)
class ArrowRowImage:
    """The image bytes of one row of an arrow file, read only when opened."""

    path: str
    row: int
    version: str  # of the file when it was listed
    column: str = "image"

    def open(self) -> Image.Image:
        reader, starts = _open_arrow(self.path, self.version)
        batch = bisect.bisect_right(starts, self.row) - 1
        with _READ_LOCK:
            data = reader.get_batch(batch).column(self.column)[self.row - starts[batch]].as_py()
        if data is None:
            raise FileNotFoundError(f"{self.describe()} holds no image")
        return BytesImage(data, self.describe()).open()

    def describe(self) -> str:
        return f"{self.path}#row={self.row}"


class MapArrowAdapter(DatasetAdapter):
    """The arrow files of one of MAP's datasets (`dataset`: mmimdb, food101 or hatememes)."""

    def __init__(self, root: str, dataset: str) -> None:
        self.root = root
        self.dataset = dataset
        self.layout = LAYOUTS[self.dataset]
        for split, _ in self.layout.files:
            if not exists(self._url(split)):
                raise DatasetLayoutError(
                    f"no {self.dataset}_{split}.arrow under {root}: run MAP's make_arrow.py for "
                    f"{self.dataset} and pass the folder it wrote as --root"
                )
        self.info = self.layout.info

    def _url(self, split: str) -> str:
        return join(self.root, f"{self.dataset}_{split}.arrow")

    def options(self) -> dict[str, object]:
        return {"dataset": self.dataset}

    def samples(self) -> Iterator[Sample]:
        layout = self.layout
        for split, our_split in layout.files:
            url = self._url(split)
            version = _version(url)
            reader, starts = _open_arrow(url, version)
            wanted = ["image", layout.text_column, "label", *([layout.id_column] if layout.id_column else [])]
            missing = [name for name in wanted if name not in reader.schema.names]
            if missing:
                raise DatasetLayoutError(
                    f"{url} has no column {missing[0]!r} (columns: {', '.join(reader.schema.names)}): {REGENERATE}"
                )
            for index in range(reader.num_record_batches):
                batch = reader.get_batch(index)
                ids = batch.column(layout.id_column).to_pylist() if layout.id_column else None
                texts, labels = (
                    batch.column(layout.text_column).to_pylist(),
                    batch.column("label").to_pylist(),
                )
                has_image = batch.column("image").is_valid().to_pylist()
                for offset in range(batch.num_rows):
                    row = starts[index] + offset
                    where = f"{self.dataset}_{split}.arrow row {row}"
                    key = row if ids is None or ids[offset] is None else ids[offset]
                    yield Sample(
                        sample_id=f"{split}/{key}",
                        split=our_split,
                        text=first_text(texts[offset]),
                        image=ArrowRowImage(url, row, version) if has_image[offset] else None,
                        label=layout.decode(labels[offset], where),
                        source=where,
                    )


class MmImdbArrowAdapter(MapArrowAdapter):
    """`mmimdb-arrow`: mmimdb_{train,dev,test}.arrow."""

    def __init__(self, root: str) -> None:
        super().__init__(root, "mmimdb")


class Food101ArrowAdapter(MapArrowAdapter):
    """`food101-arrow`: food101_{train,val,test}.arrow."""

    def __init__(self, root: str) -> None:
        super().__init__(root, "food101")


class HatefulMemesArrowAdapter(MapArrowAdapter):
    """`hatememes-arrow`: hatememes_{train,dev,test}.arrow."""

    def __init__(self, root: str) -> None:
        super().__init__(root, "hatememes")
