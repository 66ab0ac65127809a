"""Every config in configs/ runs fit, validate, test and predict through `zoo` on demo data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.cli import cli

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
# Per-config overrides that keep the demo data tiny; a config absent here runs as shipped.
TINY = {
    "cat_segmentation": [
        "--data.init_args.demo_images=8",
        "--data.init_args.image_size=32",
        "--model.init_args.init_features=4",
    ],
    "face_expression": ["--data.init_args.demo_per_class=16"],
    "imdb_lstm": [
        "--data.init_args.demo_reviews=64",
        "--data.init_args.batch_size=16",
        "--model.init_args.embedding_dim=8",
        "--model.init_args.hidden_dim=8",
    ],
    "logo": ["--data.init_args.demo_per_class=8", "--data.init_args.image_size=32"],
}


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
def test_config_runs(config: Path, subcommand: str) -> None:
    args = [subcommand, "-c", str(config), "--trainer.fast_dev_run=2", *TINY.get(config.stem, [])]
    result = cli(args)
    assert result.trainer.state.finished, f"{subcommand} with {config.name} did not finish"
    if subcommand == "predict":
        predictions = list(Path().rglob("predictions.csv"))
        assert predictions, "predict wrote no predictions.csv"
        assert len(predictions[0].read_text().splitlines()) > 1


PRESETS = sorted((Path(__file__).parents[1] / "configs" / "presets").glob("*.yaml"))
NEEDS_GPU = {"ddp"}


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_presets_combine_with_a_config(preset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["-c", str(CONFIGS[0]), "-c", str(preset), *TINY.get(CONFIGS[0].stem, [])]
    if preset.stem in NEEDS_GPU:  # parse and print only: this machine may have no GPU
        with pytest.raises(SystemExit) as exit_info:
            cli(["fit", *base, "--print_config"])
        assert exit_info.value.code == 0
        assert "strategy: ddp" in capsys.readouterr().out
        return
    result = cli(["fit", *base, "--trainer.fast_dev_run=2"])
    assert result.trainer.state.finished


def test_configs_exist() -> None:
    assert any(c.stem == "face_expression" for c in CONFIGS)
