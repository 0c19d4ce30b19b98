"""Bad input: recorded as an absent modality, or refused with one line that names the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app
from pipeline.config import PipelineConfig
from pipeline.data.jsonl import JsonlAdapter
from pipeline.data.registry import get_adapter
from pipeline.encoders.frozen import FrozenEncoder
from pipeline.errors import ConfigError, DatasetLayoutError, StoreMismatchError, UnknownDatasetError
from pipeline.extraction import extract
from pipeline.steps import RunSpec, check_run
from stores.feature_store import FeatureStore
from stores.restorer_store import RestorerStore


def _write_layout(root: Path) -> list[dict]:
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 30, 30)).save(root / "images" / "good.png")
    Image.new("RGB", (40, 30), (30, 30, 200)).save(root / "images" / "good.jpg")
    (root / "images" / "garbage.jpg").write_bytes(b"this is not an image")
    full = (root / "images" / "good.jpg").read_bytes()
    (root / "images" / "truncated.jpg").write_bytes(full[: len(full) // 3])
    records = [
        {"id": "a", "split": "train", "text": "a red square", "image": "images/good.png", "label": "red"},
        {"id": "b", "split": "train", "text": "a blue one", "image": "images/garbage.jpg", "label": "blue"},
        {"id": "c", "split": "train", "text": "   ", "image": "images/good.jpg", "label": "blue"},
        {"id": "d", "split": "val", "text": "gone", "image": "images/missing.jpg", "label": "red"},
        {"id": "e", "split": "test", "text": "cut short", "image": "images/truncated.jpg", "label": "blue"},
        {"id": "f", "split": "test", "text": "", "label": "red"},
        {"id": "g", "split": "test", "text": "fine", "image": "images/good.png", "label": "red"},
    ]
    (root / "meta.json").write_text(json.dumps({"label_kind": "single", "classes": ["red", "blue"]}))
    (root / "samples.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return records


def test_corrupt_missing_and_empty_inputs_become_recorded_absences(
    tmp_path: Path, store_with_encoder: Path, small_config: PipelineConfig, demo_encoder: FrozenEncoder
) -> None:
    records = _write_layout(tmp_path / "raw")
    adapter = JsonlAdapter(str(tmp_path / "raw"))
    settings = small_config.extraction.model_copy(update={"chunk_rows": 4, "batch_size": 3})
    result = extract(adapter, demo_encoder, str(store_with_encoder), settings, progress=False)

    assert result.n_rows == len(records)  # nothing dropped
    assert dict(result.absent) == {
        ("image", "unreadable"): 2,
        ("image", "missing file"): 1,
        ("image", "not in raw data"): 1,
        ("text", "empty or missing"): 2,
    }
    store = FeatureStore(str(store_with_encoder), "jsonl", demo_encoder.encoder_id)
    arrays = store.read_arrays()
    assert arrays["image_present"].tolist() == [True, False, True, False, False, False, True]
    assert arrays["text_present"].tolist() == [True, True, False, True, True, False, True]
    assert not arrays["image_emb"][~arrays["image_present"]].any()  # absent rows hold zeros
    np.testing.assert_allclose(
        np.linalg.norm(arrays["image_emb"][arrays["image_present"]], axis=1), 1, atol=2e-3
    )
    details = [a for marker in store.shard_markers() for a in marker["absences"] if a["modality"] == "image"]
    assert any("missing.jpg" in a["detail"] for a in details)
    assert store.read_samples().column("label").to_pylist() == [[0], [1], [1], [0], [1], [0], [0]]


def test_unknown_label_and_wrong_root_are_one_line_errors(tmp_path: Path) -> None:
    _write_layout(tmp_path / "raw")
    lines = (tmp_path / "raw" / "samples.jsonl").read_text().splitlines()
    lines[2] = lines[2].replace('"blue"', '"green"')
    (tmp_path / "raw" / "samples.jsonl").write_text("\n".join(lines))
    with pytest.raises(DatasetLayoutError, match=r"line 3: label 'green' is not in meta.json classes"):
        list(JsonlAdapter(str(tmp_path / "raw")).samples())
    with pytest.raises(DatasetLayoutError, match=r"no meta.json under .*: pass the folder"):
        JsonlAdapter(str(tmp_path / "elsewhere"))
    with pytest.raises(UnknownDatasetError, match=r"unknown dataset 'imagenet': choose one of .*demo"):
        get_adapter("imagenet")


def _single_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: ")
    return lines[0]


def test_cli_unknown_dataset_exits_2_with_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["extract", "--dataset", "imagenet", "--store", str(tmp_path)])
    assert result.exit_code == 2
    assert "choose one of" in _single_error_line(result.output)


def test_cli_real_weights_offline_fail_fast_with_the_fix(tmp_path: Path) -> None:
    """No cached ViT-B-32 weights and HF_HUB_OFFLINE=1 (conftest): one line, no retry storm."""
    result = CliRunner().invoke(
        app, ["extract", "--model", "ViT-B-32", "--pretrained", "openai", "--store", str(tmp_path)]
    )
    assert result.exit_code == 2
    line = _single_error_line(result.output)
    assert "not cached and this machine is offline" in line and "--pretrained /path/to/checkpoint" in line


def test_a_step_about_to_start_a_new_store_says_so_first(tmp_path: Path) -> None:
    """Before, a mistyped --store was filled silently, starting with the demo encoder's warm-up."""
    typo = tmp_path / "stroe"
    offline = ["extract", "--model", "ViT-B-32", "--pretrained", "openai"]  # fails at the encoder, at once
    lines = CliRunner().invoke(app, [*offline, "--store", str(typo)]).output.strip().splitlines()
    assert (
        lines[0]
        == f"new store at {typo}: nothing is there yet (meant another? pass --store or set MMR_STORE)"
    )
    assert len(lines) == 2 and lines[1].startswith("error: ")
    assert "new store" not in CliRunner().invoke(app, [*offline, "--store", str(tmp_path)]).output


class _FlowNotStarted(Exception):
    """Raised where `run` sets up Prefect to start the benchmark flow (15 minutes of it)."""


def test_run_says_it_starts_a_new_store_after_its_checks_naming_where_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the default store read as `mmr-store`, not as the folder it would be made in."""

    def stop(store: str) -> None:
        raise _FlowNotStarted(store)

    monkeypatch.setattr("flows.cli._prefect_environment", stop)  # the flow's first step, after the notice
    monkeypatch.delenv("MMR_STORE")  # the default store, relative to the working directory
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run"])
    assert isinstance(result.exception, _FlowNotStarted), result.output
    assert result.output.strip().splitlines() == [
        f"new store at {tmp_path.resolve() / 'mmr-store'}: nothing is there yet "
        "(meant another? pass --store or set MMR_STORE)"
    ]
    assert not (tmp_path / "mmr-store").exists()
    for store in (str(tmp_path), "memory://mmr-tests/absent"):
        # Not announced: a store that is there, and any not on a local disk, where fsspec's `exists`
        # answers False on errors too and so cannot tell an absent store from one out of reach.
        quiet = CliRunner().invoke(app, ["run", "--store", store])
        assert isinstance(quiet.exception, _FlowNotStarted), quiet.output
        assert "new store" not in quiet.output


def test_cli_unknown_model_and_unknown_tag(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["extract", "--model", "ViT-Z-99", "--store", str(tmp_path)])
    assert result.exit_code == 2 and "unknown open_clip model" in _single_error_line(result.output)
    result = CliRunner().invoke(
        app, ["extract", "--model", "ViT-B-32", "--pretrained", "not-a-tag", "--store", str(tmp_path)]
    )
    assert result.exit_code == 2 and "tags: openai" in _single_error_line(result.output)


def test_a_restorer_directory_path_names_its_store_and_id_or_is_refused() -> None:
    trained = RestorerStore.at("s3://bucket/run/restorers/dit-gating-s2-0123456789ab/")
    assert (trained.root, trained.restorer_id) == ("s3://bucket/run", "dit-gating-s2-0123456789ab")
    assert trained.url == RestorerStore("s3://bucket/run", "dit-gating-s2-0123456789ab").url
    with pytest.raises(StoreMismatchError, match="pass STORE/restorers/ID"):
        RestorerStore.at("/tmp/run/dit-gating-s2-0123456789ab")
    with pytest.raises(StoreMismatchError, match="pass STORE/restorers/ID"):  # a checkpoint, not the restorer
        RestorerStore.at("/tmp/run/restorers/dit-gating-s2-0123456789ab/ckpt-00000234")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["extract", "--dataset", "demo-cls", "--batch-size", "-1"],
            "--batch-size -1: input should be greater",
        ),
        (["extract", "--dataset", "demo-cls", "--workers", "-1"], "--workers -1: input should be greater"),
        (["extract", "--dataset", "demo-cls", "--device", "cpux"], "--device 'cpux' is not a device"),
        (["restore", "--restorer", "zero", "--missing-rate", "1.5"], "missing rate 1.5 is outside [0, 1]"),
        (["evaluate", "--restorer", "zero", "--missing-rate", "-0.1"], "missing rate -0.1 is outside [0, 1]"),
        (["restore", "--restorer", "zero,bogus"], "unknown restorer 'bogus'"),
        (["run", "--missing-rate", "0.5,1.5"], "missing rate 1.5 is outside [0, 1]"),
        # Named in hundredths, 0.704 found 0.70's masks and restorations and was reported as 0.704.
        (["evaluate", "--restorer", "mean", "--missing-rate", "0.704"], "missing rate 0.704 is finer than"),
        (["run", "--missing-rate", "0.7,0.125"], "missing rate 0.125 is finer than a hundredth"),
        (["restore", "--restorer", "dit", "--steps", "0"], "--steps 0: input should be greater"),
        (["restore", "--restorer", "dit", "--stages", "3"], "--stages 3: input should be less"),
        (["sql", "  "], "the SQL statement is empty"),
        # run: these failed inside the flow, after Prefect's server start, with a traceback.
        (["run", "--dataset", "nosuch"], "unknown dataset 'nosuch'"),
        (["run", "--corpus", "nosuch"], "unknown dataset 'nosuch'"),
        (["run", "--config", "nosuchpreset"], "no config 'nosuchpreset'"),
        (["run", "--steps", "0"], "--steps 0: input should be greater"),
        (["run", "--device", "cpux"], "--device 'cpux' is not a device"),
        # run: a missing or wrong raw folder showed after the demo encoder's warm-up (3 min 47 s).
        (
            ["run", "--dataset", "food101"],
            "dataset food101 reads raw files: pass the folder you downloaded, --root food101=PATH",
        ),
        (
            ["run", "--corpus", "coco"],
            "corpus coco reads raw files: pass the folder you downloaded, --corpus-root PATH",
        ),
        (
            ["run", "--dataset", "hatememes", "--root", "hatememes=/nonexistent-mmr"],
            "no img under /nonexistent-mmr",
        ),
        # A mistyped name was ignored, and the run went on with the demo's datasets.
        (
            ["run", "--root", "mmimbd=/data/mmimdb"],
            "--root mmimbd=/data/mmimdb: mmimbd is not a dataset of this run (demo-cls, demo-tags): fix the name",
        ),
        # train: a typo named the config field, after the encoder warm-up and the corpus extraction.
        (["train", "--variant", "bogus"], "--variant 'bogus': choose one of gating, adaln, concat, none"),
    ],
)
def test_bad_option_values_are_one_line_errors_before_any_step(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    """Each is refused before the encoder is warmed up or anything is extracted: before, a batch
    size of -1 committed shards of zeros, and a missing rate of 1.5 failed after extraction."""
    store = tmp_path / "store"
    result = CliRunner().invoke(app, [*arguments, "--store", str(store)])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not store.exists()


def test_a_root_names_its_data_from_any_folder_and_moved_data_is_refused_naming_what_moved(
    tmp_path: Path, store_with_encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_layout(tmp_path / "raw")
    store = ["--store", str(store_with_encoder), "--config", "demo-small"]
    monkeypatch.chdir(tmp_path)
    relative = CliRunner().invoke(app, ["extract", "--dataset", "jsonl", "--root", "raw", *store])
    assert relative.exit_code == 0, relative.output
    absolute = CliRunner().invoke(
        app, ["extract", "--dataset", "jsonl", "--root", str(tmp_path / "raw"), *store]
    )
    assert absolute.exit_code == 0 and "0 written" in absolute.output, absolute.output  # before: refused

    (tmp_path / "raw").rename(tmp_path / "moved")
    moved = CliRunner().invoke(app, ["extract", "--dataset", "jsonl", "--root", "moved", *store])
    line = _single_error_line(moved.output)
    assert (
        f"row 0 image_ref was '{tmp_path}/raw/images/good.png', is '{tmp_path}/moved/images/good.png'" in line
    )
    assert "pass the --root it was made from" in line


def test_a_store_on_a_filesystem_whose_package_is_missing_is_one_error_line() -> None:
    """Before, `sql` and `report` on such a store printed a 150-line traceback ending in
    fsspec's ImportError (gcsfs is not a dependency; s3fs comes with the `s3` extra)."""
    for arguments in (["sql", "SELECT 1"], ["report"]):
        result = CliRunner().invoke(app, [*arguments, "--store", "gs://bucket/store"])
        assert result.exit_code == 2, result.output
        assert (
            result.output.strip() == "error: gs://bucket/store: Please install gcsfs to access Google Storage"
        )


def test_run_refuses_an_adapter_option_out_of_range_before_any_step(tmp_path: Path) -> None:
    """Before, the option's value was checked when the first extraction task built the adapter,
    inside Prefect's flow run, and the error came with its log and a traceback."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"datasets": {"food101": {"val_percent": 150}}}))
    store = tmp_path / "store"
    arguments = ["run", "--dataset", "food101", "--root", "food101=/nonexistent-mmr", "--config", str(config)]
    result = CliRunner().invoke(app, [*arguments, "--store", str(store)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error: dataset food101 option val_percent=150 must be a whole percentage from 0 to 99: "
        "fix datasets.food101 in the --config file (docs/datasets.md lists the options)"
    ]
    assert not store.exists()


@pytest.mark.parametrize("command", [["run"], ["train"], ["restore", "--restorer", "dit-paper"]])
def test_dit_tokens_that_do_not_divide_the_encoders_width_are_refused_before_any_step(
    tmp_path: Path, command: list[str]
) -> None:
    """The demo encoder's features are 128-d; a DiT of 7 tokens cannot cut them into patches.
    Before, the width was fixed in the config and the first training step failed, after the
    encoder's warm-up and the extraction."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"restorer": {"dit": {"n_tokens": 7}}}))
    store = tmp_path / "store"
    result = CliRunner().invoke(app, [*command, "--config", str(config), "--store", str(store)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error: the encoder's feature width 128 is not divisible by the DiT's n_tokens 7: "
        "set restorer.dit.n_tokens in the config to one of 2, 4, 8, 16, 32, 64"
    ]
    assert not store.exists()


def test_check_run_builds_each_adapter_from_its_root_and_options(tmp_path: Path) -> None:
    """What the flows check before their first step: a good raw root passes, a wrong one and a
    corpus option out of range are refused naming what to fix."""
    _write_layout(tmp_path / "raw")
    choices = (["zero"], ["image"], [0.7])
    spec = RunSpec(store=str(tmp_path / "store"))
    check_run(spec, ["jsonl"], "demo", *choices, roots={"jsonl": str(tmp_path / "raw")})
    with pytest.raises(DatasetLayoutError, match=f"no meta.json under {tmp_path}"):
        check_run(spec, ["jsonl"], "demo", *choices, roots={"jsonl": str(tmp_path)})
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"datasets": {"coco": {"captions": "some"}}}))
    with pytest.raises(ConfigError, match="option captions='some' must be `all` or `first`"):
        check_run(spec.model_copy(update={"config": str(config)}), ["demo"], "coco", *choices,
                  corpus_root="/nonexistent-mmr")  # fmt: skip
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["restore", "--seed", "a"], "'--seed'"),  # a value of the wrong type
        (["evaluate", "--bogus"], "--bogus"),  # an unknown option
        (["datasets", "check", "--nope"], "--nope"),  # ... of a subcommand
        (["sql"], "'statement'"),  # a missing argument
    ],
)
def test_command_line_typos_are_one_line(
    argv: list[str], named: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The console entry point reports click's own parsing errors as one `error:` line, exit 2."""
    from flows.cli import main

    monkeypatch.setattr("sys.argv", ["mmr-pipeline", *argv])
    with pytest.raises(SystemExit) as stopped:
        main()
    captured = capsys.readouterr()
    assert stopped.value.code == 2
    line = _single_error_line(captured.err)
    assert named in line and "--help" in line, line
    assert captured.out == ""


def test_entry_point_keeps_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command's own refusal keeps its status (2); a finished command and help exit 0."""
    from flows.cli import main

    _write_layout(tmp_path / "raw")
    for argv, status in (
        (["restore", "--missing-type", "sideways", "--store", str(tmp_path)], 2),
        (["datasets", "check", "--dataset", "jsonl", "--root", str(tmp_path / "raw")], 0),
        (["sql", "--help"], 0),
        ([], 0),
    ):
        monkeypatch.setattr("sys.argv", ["mmr-pipeline", *argv])
        with pytest.raises(SystemExit) as stopped:
            main()
        assert stopped.value.code == status, (argv, capsys.readouterr())
