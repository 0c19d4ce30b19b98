"""COCO Captions as an unlabelled mid-stage corpus (Chen et al. 2015).

    annotations/captions_{train2017,val2017}.json    images: id, file_name; annotations: id, image_id, caption
    train2017/<file_name>, val2017/<file_name>

How captions map to samples (`captions`):
- "all" (default): one sample per (image, caption) pair, about five per image, the way
  image-text corpora are used for contrastive and restorer training; sample id
  `<subset>/<image id>/<caption id>`.
- "first": one sample per image with its caption of lowest annotation id; id `<subset>/<image id>`.
Images come in image-id order, captions in annotation-id order; an image without a caption is
still one sample, with the text absent. `subsets` picks the annotation files (default
train2017 only: val2017 is the usual held-out set). Every sample has split "corpus".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

from pipeline.data.adapter import DatasetAdapter, DatasetInfo
from pipeline.data.raw import names_option, need_json, need_path
from pipeline.data.sample import FileImage, Sample
from pipeline.errors import ConfigError, DatasetLayoutError
from stores.fs import join

ROOT_FIX = "pass the COCO folder that holds annotations/ and the image folders (train2017/...) as --root"


class CocoAdapter(DatasetAdapter):
    def __init__(
        self,
        root: str,
        subsets: str | Sequence[str] = ("train2017",),
        captions: str = "all",
    ) -> None:
        if captions not in ("all", "first"):
            raise ConfigError(f"option captions={captions!r} must be `all` or `first`")
        self.root = root
        self.subsets = names_option("subsets", subsets)
        self.captions = captions
        for subset in self.subsets:
            need_path(root, f"annotations/captions_{subset}.json", ROOT_FIX)
            need_path(root, subset, ROOT_FIX)
        self.info = DatasetInfo(name="coco", label_kind="none", metric="none", splits=("corpus",))

    def options(self) -> dict[str, object]:
        return {"subsets": list(self.subsets), "captions": self.captions}

    def samples(self) -> Iterator[Sample]:
        for subset in self.subsets:
            relative = f"annotations/captions_{subset}.json"
            payload = need_json(self.root, relative, ROOT_FIX)
            try:
                images = {int(image["id"]): str(image["file_name"]) for image in payload["images"]}
                captions: dict[int, list[tuple[int, str]]] = defaultdict(list)
                for note in payload["annotations"]:
                    captions[int(note["image_id"])].append((int(note["id"]), str(note["caption"])))
            except (KeyError, TypeError, ValueError) as error:
                raise DatasetLayoutError(
                    f"{relative} is not a COCO captions file ({type(error).__name__}: {error}): re-download it"
                ) from None
            orphans = sorted(set(captions) - set(images))
            if orphans:
                raise DatasetLayoutError(
                    f"{relative} has captions of image {orphans[0]} that is not in its `images` list: re-download it"
                )
            for image_id in sorted(images):
                image = FileImage(join(self.root, subset, images[image_id]))
                pairs = sorted(captions.get(image_id, []))
                if self.captions == "first" or not pairs:
                    text = pairs[0][1] if pairs else None
                    yield Sample(
                        f"{subset}/{image_id}", "corpus", text, image, source=f"{relative}#{image_id}"
                    )
                    continue
                for caption_id, caption in pairs:
                    yield Sample(
                        f"{subset}/{image_id}/{caption_id}",
                        "corpus",
                        caption,
                        image,
                        source=f"{relative}#{caption_id}",
                    )
