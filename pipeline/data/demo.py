"""The built-in demo: procedurally generated image-text data, deterministic by seed.

A scene is one to three coloured shapes on a background. Images are drawn with PIL from the
scene's latent attributes; captions come from templates with synonyms and mention only some
attributes, so each modality carries information the other lacks: the caption may name a
shape the noisy, faded image hides, and the image always shows what the caption left out.

The demo's world has habits, as the real one does: every kind of object (shape, size and
background) has a colour it usually comes in (`typical_colour_p` of the time, the colour drawn
once per seed). The habits are what a mid-stage corpus can teach a restorer and a few labelled
rows cannot teach a decoder: 96 kinds, each seen a few times in a task's train split and a few
hundred times in the corpus. They decide what a missing modality most likely showed: the
colour of a greyscale or faded object, or of one whose caption leaves its colour out.

Four datasets share the vocabulary:
- `demo-pretrain`: the generic corpus the demo encoder is warmed up on. Same templates as the
  mid-stage corpus, but colours drawn without habits, as a web-scale CLIP corpus knows the
  words and not one domain's statistics. It is never extracted.
- `demo-corpus`: the unlabelled mid-stage corpus of the domain (one or two objects, the
  habits, caption templates of set A).
- `demo-cls`: single-label, one object, class = shape x colour temperature (16 classes).
- `demo-tags`: multi-label, one to three objects, tags = shapes present + colours present.
The downstream tasks use caption templates (set B), attribute mixtures (one class per sample,
up to three objects) and image degradations that the corpus never shows, so restoration on
them is zero-shot, as in the paper. They share the corpus's habits: one domain.

Every sample is generated from its own RNG keyed by (seed, dataset, split, index), so any
worker can render any image in any order and get identical pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, Field

from pipeline.data.adapter import DatasetAdapter, DatasetInfo
from pipeline.data.sample import Sample, stored_reference

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond", "hexagon", "ring")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (240, 135, 25),
    "yellow": (235, 215, 40),
    "pink": (240, 105, 180),
    "green": (45, 175, 60),
    "cyan": (35, 200, 205),
    "blue": (40, 75, 225),
    "purple": (135, 55, 195),
}
WARM_COLOURS = frozenset({"red", "orange", "yellow", "pink"})
SIZES: dict[str, float] = {"small": 0.14, "medium": 0.19, "large": 0.25}  # radius / image side
BACKGROUNDS = ("black", "grey", "striped", "dotted")
# A 3 x 3 grid of places; the centre of each cell as a fraction of the image side.
POSITIONS: dict[str, tuple[float, float]] = {
    "top left": (0.22, 0.22), "top": (0.5, 0.22), "top right": (0.78, 0.22),
    "left": (0.22, 0.5), "center": (0.5, 0.5), "right": (0.78, 0.5),
    "bottom left": (0.22, 0.78), "bottom": (0.5, 0.78), "bottom right": (0.78, 0.78),
}  # fmt: skip

SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "round dot"),
    "square": ("square", "box"),
    "triangle": ("triangle", "wedge"),
    "star": ("star", "five-pointed star"),
    "cross": ("cross", "plus sign"),
    "diamond": ("diamond", "rhombus"),
    "hexagon": ("hexagon", "six-sided shape"),
    "ring": ("ring", "hoop"),
    "red": ("red", "crimson", "scarlet"),
    "orange": ("orange", "amber"),
    "yellow": ("yellow", "golden"),
    "pink": ("pink", "rose"),
    "green": ("green", "emerald"),
    "cyan": ("cyan", "turquoise"),
    "blue": ("blue", "azure"),
    "purple": ("purple", "violet"),
    "small": ("small", "tiny", "little"),
    "medium": ("medium", "mid-sized"),
    "large": ("large", "big", "huge"),
    "black": ("black", "dark"),
    "grey": ("grey", "gray"),
    "striped": ("striped", "lined"),
    "dotted": ("dotted", "speckled"),
}
VAGUE_NOUNS = ("shape", "object", "thing")

CORPUS_TEMPLATES = (
    "a {objects} on a {background} background",
    "{objects}",
    "a picture of {objects}",
    "an image showing {objects}",
    "{objects}, {background} background",
    "a drawing with {objects} over a {background} background",
)
# New arrangements of the corpus's own words: the shift is in how captions are composed, not
# in words the demo encoder never saw (those would carry untrained token embeddings).
TASK_TEMPLATES = (
    "{objects} with a {background} background",
    "an image of {objects}",
    "a {background} background showing {objects}",
    "a drawing of {objects}",
    "{objects} over a {background} background",
)

DATASET_CODES = {"demo-corpus": 0, "demo-cls": 1, "demo-tags": 2, "demo-pretrain": 3}
SPLIT_CODES = {"corpus": 0, "train": 1, "val": 2, "test": 3}
UNLABELLED = ("demo-corpus", "demo-pretrain")  # image-caption corpora, one "corpus" split
DEMO_DATASETS = ("demo-corpus", "demo-cls", "demo-tags")  # what `demo` extracts
CLS_CLASSES = tuple(f"{shape}-{temp}" for shape in SHAPES for temp in ("warm", "cool"))
TAG_CLASSES = tuple(f"shape:{shape}" for shape in SHAPES) + tuple(f"colour:{c}" for c in COLOURS)


class DemoConfig(BaseModel):
    """Sizes and the seed of the demo. The defaults are the built-in demo."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    image_size: int = Field(32, ge=16, le=256)
    corpus_size: int = Field(20_000, ge=1)
    # A small labelled train split, as downstream tasks usually have next to a large corpus.
    train_size: int = Field(1_000, ge=1)
    val_size: int = Field(500, ge=1)
    test_size: int = Field(1_500, ge=1)
    # How often an object of the domain has its kind's usual colour (0: no habits).
    typical_colour_p: float = Field(0.8, ge=0.0, le=1.0)


@cache
def typical_colours(seed: int) -> dict[tuple[str, str, str], str]:
    """The usual colour of each kind of object: (shape, size, background) -> colour."""
    rng = np.random.default_rng([seed, 7919])  # a two-part key: no sample (five parts) draws from it
    kinds = [(shape, size, background) for shape in SHAPES for size in SIZES for background in BACKGROUNDS]
    return {kind: _pick(rng, list(COLOURS)) for kind in kinds}


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    position: str


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]
    background: str
    noise: float  # std of Gaussian pixel noise, in [0, 1] intensity units
    fade: float  # how far object colours are blended into the background, 0 = crisp
    greyscale: bool = False  # drawn without colour: only the caption can tell it


def _rng(seed: int, dataset: str, split: str, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, DATASET_CODES[dataset], SPLIT_CODES[split], index, stream])


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def make_scene(seed: int, dataset: str, split: str, index: int, typical_colour_p: float) -> Scene:
    """The latent attributes of one sample (stream 0 of its RNG)."""
    rng = _rng(seed, dataset, split, index, 0)
    # Noise, fade and greyscale hide what the caption may still say. The corpus shows every
    # degradation now and then (as a web corpus holds old and poor photos); the downstream
    # tasks show them more often, with other caption templates and object counts.
    if dataset in UNLABELLED:
        n_objects = 1 if rng.random() < 0.75 else 2
        noise, fade, grey_p = float(rng.uniform(0.0, 0.1)), float(rng.uniform(0.0, 0.3)), 0.15
    elif dataset == "demo-cls":
        n_objects = 1
        noise, fade, grey_p = float(rng.uniform(0.02, 0.15)), float(rng.uniform(0.0, 0.35)), 0.3
    else:
        n_objects = int(rng.integers(1, 4))
        noise, fade, grey_p = float(rng.uniform(0.02, 0.12)), float(rng.uniform(0.0, 0.3)), 0.2
    greyscale = bool(rng.random() < grey_p)
    places = rng.permutation(list(POSITIONS))[:n_objects]
    background = _pick(rng, BACKGROUNDS)
    usual_colour = typical_colours(seed)
    habit_p = 0.0 if dataset == "demo-pretrain" else typical_colour_p
    objects = []
    for place in places:
        shape, size = _pick(rng, SHAPES), _pick(rng, list(SIZES))
        habitual = rng.random() < habit_p
        colour = usual_colour[(shape, size, background)] if habitual else _pick(rng, list(COLOURS))
        objects.append(SceneObject(shape=shape, colour=colour, size=size, position=str(place)))
    return Scene(objects=tuple(objects), background=background, noise=noise, fade=fade, greyscale=greyscale)


def _describe_object(rng: np.random.Generator, obj: SceneObject, mention_p: float) -> str:
    words = []
    if rng.random() < mention_p:
        words.append(_pick(rng, SYNONYMS[obj.size]))
    if rng.random() < mention_p:
        words.append(_pick(rng, SYNONYMS[obj.colour]))
    words.append(_pick(rng, SYNONYMS[obj.shape]) if rng.random() < mention_p else _pick(rng, VAGUE_NOUNS))
    phrase = " ".join(words)
    if rng.random() < mention_p / 2:
        phrase += " " + _pick(rng, ("in the", "at the", "near the")) + " " + obj.position
    return phrase


def make_caption(seed: int, dataset: str, split: str, index: int, scene: Scene) -> str:
    """A caption that mentions only some attributes (stream 1 of the sample's RNG)."""
    rng = _rng(seed, dataset, split, index, 1)
    corpus = dataset in UNLABELLED
    mention_p = 0.7 if corpus else 0.5
    described = [obj for obj in scene.objects if corpus or rng.random() < 0.75]
    phrases = [_describe_object(rng, obj, mention_p) for obj in described] or [_pick(rng, VAGUE_NOUNS)]
    objects = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    template = _pick(rng, CORPUS_TEMPLATES if corpus else TASK_TEMPLATES)
    return template.format(
        objects=objects,
        background=_pick(rng, SYNONYMS[scene.background]),
        number=int(rng.integers(100, 10_000)),
    )


def _shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    def ring_points(n: int, radius: float, phase: float) -> list[tuple[float, float]]:
        angles = phase + 2 * np.pi * np.arange(n) / n
        return [(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in angles]

    if shape == "triangle":
        return ring_points(3, r, -np.pi / 2)
    if shape == "diamond":
        return ring_points(4, r, -np.pi / 2)
    if shape == "hexagon":
        return ring_points(6, r, 0.0)
    if shape == "star":
        outer, inner = ring_points(5, r, -np.pi / 2), ring_points(5, r * 0.42, -np.pi / 2 + np.pi / 5)
        return [point for pair in zip(outer, inner, strict=True) for point in pair]
    if shape == "cross":
        w = r * 0.36
        return [
            (cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w), (cx + r, cy + w),
            (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r), (cx - w, cy + w), (cx - r, cy + w),
            (cx - r, cy - w), (cx - w, cy - w),
        ]  # fmt: skip
    raise ValueError(f"no polygon for shape {shape!r}")


def _draw_background(draw: ImageDraw.ImageDraw, kind: str, side: int, rng: np.random.Generator) -> tuple:
    base = (18, 18, 18) if kind in ("black", "striped", "dotted") else (105, 105, 105)
    draw.rectangle((0, 0, side, side), fill=base)
    if kind == "striped":
        step = side // 8
        for y in range(int(rng.integers(step)), side, step):
            draw.rectangle((0, y, side, y + step // 3), fill=(72, 72, 72))
    elif kind == "dotted":
        step = side // 8
        for y in range(step // 2, side, step):
            for x in range(step // 2, side, step):
                draw.ellipse((x - step / 6, y - step / 6, x + step / 6, y + step / 6), fill=(82, 82, 82))
    return base


def render_scene(scene: Scene, image_size: int, rng: np.random.Generator) -> Image.Image:
    """Draw at 4x and downsample (anti-aliasing), then add pixel noise."""
    side = image_size * 4
    canvas = Image.new("RGB", (side, side))
    draw = ImageDraw.Draw(canvas)
    base = np.array(_draw_background(draw, scene.background, side, rng), dtype=float)
    for obj in scene.objects:
        fx, fy = POSITIONS[obj.position]
        jitter = rng.uniform(-0.05, 0.05, size=2)
        cx, cy, r = (fx + jitter[0]) * side, (fy + jitter[1]) * side, SIZES[obj.size] * side
        rgb = np.array(COLOURS[obj.colour], dtype=float)
        if scene.greyscale:
            rgb = np.full(3, rgb @ np.array([0.299, 0.587, 0.114]))  # same luminance, no hue
        colour = (1 - scene.fade) * rgb + scene.fade * base
        tint = rng.normal(0, 12, size=1 if scene.greyscale else 3)  # a grey object stays grey
        fill = tuple(int(c) for c in np.clip(colour + tint, 0, 255))
        if obj.shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif obj.shape == "square":
            half = r * 0.85
            draw.rectangle((cx - half, cy - half, cx + half, cy + half), fill=fill)
        elif obj.shape == "ring":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fill, width=max(1, int(r * 0.35)))
        else:
            draw.polygon(_shape_polygon(obj.shape, cx, cy, r), fill=fill)
    small = np.asarray(canvas.resize((image_size, image_size), Image.Resampling.BOX), dtype=float) / 255.0
    noisy = small + rng.normal(0.0, scene.noise, size=small.shape)
    return Image.fromarray((np.clip(noisy, 0.0, 1.0) * 255).round().astype(np.uint8))


@stored_reference
@dataclass(frozen=True)
class DemoImage:
    """A demo image, rendered on demand from its key (cheap, and identical in every worker)."""

    dataset: str
    split: str
    index: int
    seed: int
    image_size: int
    typical_colour_p: float

    def open(self) -> Image.Image:
        scene = make_scene(self.seed, self.dataset, self.split, self.index, self.typical_colour_p)
        return render_scene(scene, self.image_size, _rng(self.seed, self.dataset, self.split, self.index, 2))

    def describe(self) -> str:
        return f"demo://{self.dataset}/{self.split}/{self.index}?seed={self.seed}"


def scene_label(dataset: str, scene: Scene) -> tuple[int, ...]:
    """Class indices of a scene: one for `demo-cls`, the positive tags for `demo-tags`."""
    if dataset == "demo-cls":
        obj = scene.objects[0]
        return (SHAPES.index(obj.shape) * 2 + (0 if obj.colour in WARM_COLOURS else 1),)
    if dataset == "demo-tags":
        shapes = {SHAPES.index(obj.shape) for obj in scene.objects}
        colours = {len(SHAPES) + list(COLOURS).index(obj.colour) for obj in scene.objects}
        return tuple(sorted(shapes | colours))
    return ()


class DemoAdapter(DatasetAdapter):
    """One of the three demo datasets, generated from a `DemoConfig`."""

    generated = True

    def __init__(self, name: str, config: DemoConfig | None = None) -> None:
        if name not in DATASET_CODES:
            raise ValueError(f"not a demo dataset: {name}")
        self.name = name
        self.config = config or DemoConfig()
        if name in UNLABELLED:
            self.info = DatasetInfo(name=name, label_kind="none", metric="none", splits=("corpus",))
        elif name == "demo-cls":
            self.info = DatasetInfo(name=name, label_kind="single", metric="accuracy", classes=CLS_CLASSES)
        else:
            self.info = DatasetInfo(name=name, label_kind="multi", metric="f1_macro", classes=TAG_CLASSES)

    def split_sizes(self) -> dict[str, int]:
        if self.name in UNLABELLED:
            return {"corpus": self.config.corpus_size}
        cfg = self.config
        return {"train": cfg.train_size, "val": cfg.val_size, "test": cfg.test_size}

    def options(self) -> dict[str, object]:
        return self.config.model_dump()

    def scene(self, split: str, index: int) -> Scene:
        return make_scene(self.config.seed, self.name, split, index, self.config.typical_colour_p)

    def samples(self) -> Iterator[Sample]:
        seed = self.config.seed
        for split, size in self.split_sizes().items():
            for index in range(size):
                scene = make_scene(seed, self.name, split, index, self.config.typical_colour_p)
                yield Sample(
                    sample_id=f"{self.name}-{split}-{index:06d}",
                    split=split,
                    text=make_caption(seed, self.name, split, index, scene),
                    image=DemoImage(
                        self.name, split, index, seed, self.config.image_size, self.config.typical_colour_p
                    ),
                    label=scene_label(self.name, scene),
                    source=f"demo://{self.name}/{split}/{index}?seed={seed}",
                )
