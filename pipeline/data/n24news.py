"""N24News (Wang et al. 2022): New York Times articles with their lead image, 24 sections.

    news/nytimes_{train,dev,test}.json   each a JSON list of articles:
                                         headline, abstract, caption, body, image_id, section, ...
    imgs/<image_id>.jpg

`dev` is our val split. The label is the section; the classes are the sorted section names
of nytimes_train.json (24 in the public release), so a dev or test article whose section never
occurs in train is a layout error. The text is the article's `text_fields` joined by spaces,
by default headline + abstract + caption (the short fields; `body` is long and CLIP reads 77
tokens); pass e.g. `text_fields=headline,body` to change it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pipeline.data.adapter import DatasetAdapter, DatasetInfo
from pipeline.data.raw import class_index, names_option, need_json, need_path
from pipeline.data.sample import FileImage, Sample
from pipeline.errors import DatasetLayoutError
from stores.fs import join

TEXT_FIELDS = ("headline", "abstract", "caption", "body")
SPLITS = (("train", "train"), ("dev", "val"), ("test", "test"))  # file split -> our split
ROOT_FIX = "pass the N24News folder that holds news/ and imgs/ as --root"


class N24NewsAdapter(DatasetAdapter):
    def __init__(
        self, root: str, text_fields: str | Sequence[str] = ("headline", "abstract", "caption")
    ) -> None:
        self.root = root
        self.text_fields = names_option("text_fields", text_fields, TEXT_FIELDS)
        for name, _ in SPLITS:
            need_path(root, f"news/nytimes_{name}.json", ROOT_FIX)
        need_path(root, "imgs", ROOT_FIX)
        sections = {
            self._section(article, "train", index) for index, article in enumerate(self._articles("train"))
        }
        self.info = DatasetInfo(
            name="n24news", label_kind="single", metric="accuracy", classes=tuple(sorted(sections))
        )

    def options(self) -> dict[str, object]:
        return {"text_fields": list(self.text_fields)}

    def _articles(self, name: str) -> list[dict]:
        relative = f"news/nytimes_{name}.json"
        articles = need_json(self.root, relative, ROOT_FIX)
        if not isinstance(articles, list) or not all(isinstance(article, dict) for article in articles):
            raise DatasetLayoutError(
                f"{join(self.root, relative)} is not a JSON list of articles: re-download it"
            )
        return articles

    def _section(self, article: dict, name: str, index: int) -> str:
        section = article.get("section")
        if not isinstance(section, str) or not section.strip():
            raise DatasetLayoutError(
                f"news/nytimes_{name}.json article {index} has no `section`: re-download the N24News files"
            )
        return section.strip()

    def samples(self) -> Iterator[Sample]:
        for name, split in SPLITS:
            for index, article in enumerate(self._articles(name)):
                where = f"news/nytimes_{name}.json article {index}"
                section = self._section(article, name, index)
                label = class_index(
                    self.info.classes,
                    section,
                    where,
                    "sections come from the train file: use the public files",
                )
                image_id = article.get("image_id")
                yield Sample(
                    sample_id=str(image_id) if image_id else f"{name}/{index}",
                    split=split,
                    text=" ".join(str(article.get(field) or "") for field in self.text_fields),
                    image=FileImage(join(self.root, "imgs", f"{image_id}.jpg")) if image_id else None,
                    label=(label,),
                    source=where,
                )
