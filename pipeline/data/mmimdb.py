"""MM-IMDb (Arevalo et al. 2017): movie posters + plots, 23 genres, multi-label, F1-macro.

Two layouts, detected from the root's folders:

    original archive                       MAP rearrangement (missing_aware_prompts DATA.md)
    split.json                             split.json
    dataset/<id>.json  plot, genres, ...   labels/<id>.json   the same JSON file, moved
    dataset/<id>.jpeg                      images/<id>.jpeg   the same poster, moved

`split.json` holds the `train`, `dev` and `test` id lists in both (MAP ships the archive's
own file); `dev` is our val split. The label JSON is required (it holds the labels); a
missing or unreadable poster only makes the image absent.

Labels are the 23 genres in the fixed order of the public baselines. Genres outside the 23
(Reality-TV, News, Adult, Talk-Show...) are not labels, as in the standard protocol; they are
counted and shown by `datasets check`. Text is the first non-blank plot (`plots="first"`,
MAP's `single_plot`; CLIP reads only 77 tokens anyway) or all plots joined (`plots="all"`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from pipeline.data.adapter import DatasetAdapter, DatasetInfo
from pipeline.data.raw import first_text, need_json
from pipeline.data.sample import FileImage, Sample
from pipeline.errors import ConfigError, DatasetLayoutError
from stores.fs import exists, join

GENRES = (
    "Drama", "Comedy", "Romance", "Thriller", "Crime", "Action", "Adventure", "Horror", "Documentary",
    "Mystery", "Sci-Fi", "Fantasy", "Family", "Biography", "War", "History", "Music", "Animation",
    "Musical", "Western", "Sport", "Short", "Film-Noir",
)  # fmt: skip
SPLITS = (("train", "train"), ("dev", "val"), ("test", "test"))  # split.json key -> our split
# layout -> (folder of the label JSON files, folder of the posters)
LAYOUTS = {"original": ("dataset", "dataset"), "map": ("labels", "images")}
ROOT_FIX = "pass the MM-IMDb folder that holds split.json and dataset/ (or MAP's images/ + labels/) as --root"


class MmImdbAdapter(DatasetAdapter):
    def __init__(self, root: str, plots: str = "first") -> None:
        if plots not in ("first", "all"):
            raise ConfigError(f"option plots={plots!r} must be `first` or `all`")
        self.root = root
        self.plots = plots
        self.split_ids = self._read_split()
        self.layout = self._detect_layout()
        self.info = DatasetInfo(name="mmimdb", label_kind="multi", metric="f1_macro", classes=GENRES)
        self.outside_genres: Counter[str] = Counter()

    def _read_split(self) -> dict[str, list[str]]:
        payload = need_json(self.root, "split.json", ROOT_FIX)
        for key, _ in SPLITS:
            if not isinstance(payload, dict) or not isinstance(payload.get(key), list):
                raise DatasetLayoutError(
                    f"{join(self.root, 'split.json')} has no `{key}` id list: use the split.json of the "
                    "MM-IMDb archive (keys train, dev, test)"
                )
        return {key: [str(movie) for movie in payload[key]] for key, _ in SPLITS}

    def _detect_layout(self) -> str:
        if exists(join(self.root, "dataset")):
            return "original"
        if exists(join(self.root, "labels")) and exists(join(self.root, "images")):
            return "map"
        raise DatasetLayoutError(
            f"split.json is there but no dataset/ nor images/ + labels/ under {self.root}: {ROOT_FIX}"
        )

    def options(self) -> dict[str, object]:
        return {"plots": self.plots}

    def layout_notes(self) -> dict[str, int]:
        """Genres seen in the last full pass that are not among the 23 labels."""
        return {
            f"genre {genre!r} is not one of the 23 labels (ignored)": n
            for genre, n in self.outside_genres.most_common()
        }

    def _text(self, plot: object) -> str | None:
        if self.plots == "first" or isinstance(plot, str):
            return first_text(plot)
        return " ".join(str(part) for part in plot or ())

    def _label(self, genres: object, where: str) -> tuple[int, ...]:
        if not isinstance(genres, list):
            raise DatasetLayoutError(f"{where} has no `genres` list: re-extract it from the MM-IMDb archive")
        names = {str(genre).strip() for genre in genres}
        self.outside_genres.update(name for name in names if name not in GENRES)
        return tuple(sorted(GENRES.index(name) for name in names if name in GENRES))

    def samples(self) -> Iterator[Sample]:
        label_dir, image_dir = LAYOUTS[self.layout]
        self.outside_genres.clear()
        for key, split in SPLITS:
            for movie in self.split_ids[key]:
                relative = f"{label_dir}/{movie}.json"
                record = need_json(
                    self.root,
                    relative,
                    f"split.json lists {movie} but its file is missing: re-extract the archive",
                )
                if not isinstance(record, dict):
                    raise DatasetLayoutError(
                        f"{join(self.root, relative)} is not a JSON object: re-extract it"
                    )
                yield Sample(
                    sample_id=movie,
                    split=split,
                    text=self._text(record.get("plot")),
                    image=FileImage(join(self.root, image_dir, f"{movie}.jpeg")),
                    label=self._label(record.get("genres"), join(self.root, relative)),
                    source=relative,
                )
