"""Every config in configs/ runs fit, validate, test and predict through `zoo` on demo data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.cli import cli

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
# Per-config overrides that keep the demo data tiny; a config absent here runs as shipped.
TINY = {"face_expression": ["--data.init_args.demo_per_class=16"]}


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


def test_configs_exist() -> None:
    assert any(c.stem == "face_expression" for c in CONFIGS)
