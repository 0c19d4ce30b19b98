"""The whole pipeline's configuration, validated at the edge, and its named presets.

Named presets are JSON files in the repository's `configs/` folder (`demo`, `demo-small`...),
the way open_clip names its model configs; `--config` takes a preset name or a file path.
A preset holds only what differs from the defaults (the demo's), at any depth: a file with
{"restore": {"knn_k": 30}} changes k and keeps the demo's other restore settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.data.demo import DemoConfig
from pipeline.data.registry import check_options
from pipeline.diffusion.core import DiffusionConfig
from pipeline.encoders.warmup import WarmupConfig
from pipeline.errors import ConfigError
from pipeline.evaluation import DecoderTraining
from pipeline.extraction import ExtractionSettings
from pipeline.models.decoder import DecoderConfig
from pipeline.models.dit import DIT_PRESETS, DiTConfig
from pipeline.restoration import RestoreSettings
from pipeline.training.restorer import TrainConfig

# The demo's restorer training: the paper's recipe (AdamW, warm-up + cosine, two stages) at a
# size and length that fit a 2-core CPU in a few minutes. `--preset paper` is the paper's.
# The demo DiT predicts v, not the paper's eps: in 200 to 800 CPU steps an eps-predictor's x0
# estimate at high noise stays far off (eq. 8 amplifies its error by up to 2e4), and that is
# where the condition decides the restored feature. Same steps, same sampling, cosine to the
# true features 0.62 against 0.40 (BENCHMARKS.md, restorer quality).
# The demo DiT also reads the partner features of the 10 corpus pairs nearest its condition
# (`retrieved`, not in the paper). Trained 234 CPU steps without them, it had learnt little of
# the corpus's habits (a kind of object's usual colour, the shape its caption names) and scored
# within the seed spread of `zero` in 3 of the 6 demo cells; with them it clears `zero` in all
# six, paired, at the same training cost (BENCHMARKS.md, "A retrieval-augmented DiT").
# 1.5 + 1 epochs (195 steps), the mutual terms on 64 rows of each stage-2 batch: on the same
# features the DiT scored as it did with 2 + 1 epochs and the whole batch (234 steps, all six
# cells within the seed spread of each other) in 263 s instead of 390 (BENCHMARKS.md, "The demo
# in 15 minutes").
# Its mutual terms see a separate t drawn in [0, tau) for each of 64 rows (`resampled`), where
# the paper's see the batch's own samples at t < tau: about 5 of 256 rows a step.
DEMO_TRAINING = TrainConfig(
    dit=DiTConfig(**DIT_PRESETS["demo"], retrieved=10),
    diffusion=DiffusionConfig(prediction="v_prediction"),
    stage1_epochs=1.5, stage2_epochs=1, mutual_rows=64, mutual_timesteps="resampled", lr=2e-3, warmup_steps=50,
    checkpoint_every=100,
)  # fmt: skip
# The demo restores each missing feature with the DiT's estimate of its posterior mean: one
# DDIM step from the noise's mean (temperature 0; for a v-predictor the x0 estimate at t = T is
# E[x0 | c]). Cosine to the truth and a label probe both reward it over a single draw of the
# posterior (the paper's S = 50 from random noise): the draw carries the posterior's spread and
# the model's own noise (BENCHMARKS.md). `run --ablations` reports S = 25, 50 and 100 beside it.
# Corpus-trained restorers (dit, knn, regression) are recentred: they get swap_gap's correction,
# fitted on the same downstream train features as `mean` and `swap_gap`. The demo's downstream
# captions use templates the corpus never shows; zero-shot, every corpus restorer pays that
# offset in cosine and `swap_gap` does not (BENCHMARKS.md, "Recentring").
# Its x0 estimate is clipped to the training targets' range.
DEMO_RESTORE = RestoreSettings(steps=1, temperature=0.0, clip_x0=True, recentre=True)
# The demo's decoder: the recipe's defaults (AdamW, x0.1 at the midpoint, 20 epochs in batches
# of 64: 320 steps on the demo's 1,000 train rows) with a narrower model and twice the learning
# rate. Batches of 256 (80 steps) left it under-trained: every restorer, `oracle` included,
# scored 1.7 to 13.5 points lower (BENCHMARKS.md, "The decoder's training"). With the fused
# AdamW a decoder run takes 2.8 s on 2 cores, against 1.6 s in batches of 256.
DEMO_DECODER = DecoderTraining(decoder=DecoderConfig(width=64, heads=4), lr=1e-3)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

Settings = TypeVar("Settings", bound=BaseModel)


class PipelineConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    demo: DemoConfig = DemoConfig()
    warmup: WarmupConfig = WarmupConfig()
    extraction: ExtractionSettings = ExtractionSettings()
    restorer: TrainConfig = DEMO_TRAINING
    restore: RestoreSettings = DEMO_RESTORE
    decoder: DecoderTraining = DEMO_DECODER
    # Adapter options of raw datasets by dataset name, e.g. {"n24news": {"text_fields": "headline,body"}}
    # (docs/datasets.md lists each dataset's): every command and flow builds the adapter with them.
    datasets: dict[str, dict[str, Any]] = {}


def preset_names() -> list[str]:
    return sorted(path.stem for path in CONFIG_DIR.glob("*.json"))


def load_config(name_or_path: str | None, recentre: bool | None = None) -> PipelineConfig:
    """A preset by name, a JSON file by path, or the defaults for None; `recentre` (--recentre /
    --no-recentre), when given, replaces its restore setting."""
    settings = _load_config(name_or_path)
    if recentre is None:
        return settings
    return settings.model_copy(update={"restore": overridden(settings.restore, recentre=recentre)})


def _load_config(name_or_path: str | None) -> PipelineConfig:
    if name_or_path is None:
        return PipelineConfig()
    path = Path(name_or_path)
    if not path.is_file():
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise ConfigError(
            f"no config {name_or_path!r}: pass a JSON file path or one of {', '.join(preset_names())}"
        )
    try:
        overrides = json.loads(path.read_text())
        if not isinstance(overrides, dict):
            raise ConfigError(f"config {path} is invalid: it must hold a JSON object: fix the file")
        settings = PipelineConfig.model_validate(merged(PipelineConfig().model_dump(mode="json"), overrides))
    except (json.JSONDecodeError, ValidationError) as error:
        first = str(error).splitlines()
        detail = " ".join(first[:3]) if first else type(error).__name__
        raise ConfigError(f"config {path} is invalid: {detail}: fix the file") from None
    for name, options in settings.datasets.items():
        try:
            check_options(name, options, "fix the file")
        except ConfigError as error:
            raise ConfigError(f"config {path} is invalid: {error}") from None
    return settings


def overridden(settings: Settings, **options: object) -> Settings:
    """`settings` with the command-line options that were given (not None) set, validated as a
    config file's values are: `model_copy` would take `--batch-size -1` as it came."""
    given = {name: value for name, value in options.items() if value is not None}
    try:
        return type(settings).model_validate({**settings.model_dump(), **given})
    except ValidationError as error:
        problem = error.errors()[0]
        name = str(problem["loc"][0])
        raise ConfigError(
            f"--{name.replace('_', '-')} {given.get(name)!r}: {problem['msg'].lower()}"
        ) from None


def merged(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`defaults` with `overrides` laid over it, section by section (objects merge, values replace)."""
    out = dict(defaults)
    for key, value in overrides.items():
        below = out.get(key)
        out[key] = merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return out


# What `dit-paper` takes from a config: the DiT's size and the training budget, so that the paper's
# method runs at the demo's size in the demo's minutes. Every other value is `configs/paper.json`'s.
DIT_SIZE = ("n_tokens", "width", "depth", "heads", "mlp_ratio", "n_probes")
TRAINING_BUDGET = ("stage1_epochs", "stage2_epochs", "batch_size", "lr", "warmup_steps", "weight_decay",
                   "grad_clip", "seed", "checkpoint_every")  # fmt: skip
SAMPLING_BUDGET = ("batch_size", "seed")


def paper_method(settings: PipelineConfig) -> tuple[TrainConfig, RestoreSettings]:
    """How `dit-paper` is trained and sampled under `settings`: the paper's method (the `paper`
    preset's prediction, schedule, mutual learning, sampler, no retrieval, recentring or clip) at
    `settings`' DiT size and training budget. Under the `paper` preset it is that preset's."""
    paper = _load_config("paper")
    train, restore = settings.restorer, settings.restore
    dit = paper.restorer.dit.model_copy(update={name: getattr(train.dit, name) for name in DIT_SIZE})
    budget = {name: getattr(train, name) for name in TRAINING_BUDGET}
    return (
        paper.restorer.model_copy(update={"dit": dit, **budget}),
        paper.restore.model_copy(update={name: getattr(restore, name) for name in SAMPLING_BUDGET}),
    )


def restorer_settings(settings: PipelineConfig, restorer: str) -> tuple[TrainConfig, RestoreSettings]:
    """How DiT restorer `restorer` (`dit-paper` or `dit`) is trained and sampled under `settings`."""
    return paper_method(settings) if restorer == "dit-paper" else (settings.restorer, settings.restore)
