"""Every W&B sweep in configs/sweeps/ starts runs that `zoo` accepts: each parameter is sampled
here as the W&B agent would, the command is expanded the agent's way, and the resolved config
must hold every sampled value at its key. The metric is the one the config checkpoints on."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.cli import cli

ROOT = Path(__file__).parents[1]
SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))
# Top-level keys of a W&B sweep configuration (its schema rejects any other).
SWEEP_KEYS = {
    "program",
    "entity",
    "project",
    "description",
    "name",
    "method",
    "metric",
    "parameters",
    "early_terminate",
    "command",
    "run_cap",
}


def sample(spec: dict[str, Any], rng: random.Random) -> Any:
    """One value of a W&B sweep parameter, drawn from its distribution."""
    if "value" in spec:
        return spec["value"]
    if "values" in spec:
        return rng.choice(spec["values"])
    low, high = spec["min"], spec["max"]
    both_int = isinstance(low, int) and isinstance(high, int)
    default = "int_uniform" if both_int else "uniform"
    distribution = spec.get("distribution", default)
    q = spec.get("q", 1)
    if distribution == "int_uniform":
        return rng.randint(low, high)
    if distribution in ("uniform", "q_uniform"):
        value = rng.uniform(low, high)
    elif distribution in ("log_uniform_values", "q_log_uniform_values"):
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    elif distribution in ("log_uniform", "q_log_uniform"):  # min and max are natural logs
        value = math.exp(rng.uniform(low, high))
    else:
        raise ValueError(f"the test's sampler does not know the distribution {distribution!r}")
    return round(value / q) * q if distribution.startswith("q_") else value


def expand(sweep: dict[str, Any], values: dict[str, Any]) -> list[str]:
    """The agent's command line: `${args}` becomes `--key=value` per parameter (str(value))."""
    macros = {
        "${env}": [],  # /usr/bin/env
        "${interpreter}": ["python"],
        "${program}": [sweep.get("program", "")],
        "${args}": [f"--{key}={value}" for key, value in values.items()],
    }
    argv = []
    for part in sweep["command"]:
        if part.startswith("${"):
            assert part in macros, f"the test does not expand {part}"
            argv += macros[part]
        else:
            argv.append(part)
    return argv


def lookup(config: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted CLI key; `trainer.callbacks.init_args.*` is the LRSchedule's."""
    if dotted.startswith("trainer.callbacks.init_args."):
        (schedule,) = [
            c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("LRSchedule")
        ]
        return schedule["init_args"][dotted.rpartition(".")[2]]
    for key in dotted.split("."):
        assert isinstance(config, dict), f"{dotted}: {key!r} is under a value"
        assert key in config, f"{dotted}: no {key!r}"
        config = config[key]
    return config


def monitored(config: Path) -> str:
    """The metric the config's ModelCheckpoint monitors."""
    callbacks = yaml.safe_load(config.read_text())["trainer"]["callbacks"]
    (checkpoint,) = [c for c in callbacks if c["class_path"].endswith("ModelCheckpoint")]
    return checkpoint["init_args"]["monitor"]


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_starts_runs_that_zoo_accepts(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = yaml.safe_load(path.read_text())
    assert set(sweep) <= SWEEP_KEYS, f"not W&B sweep keys: {set(sweep) - SWEEP_KEYS}"
    assert sweep["method"] in ("random", "bayes", "grid")
    config = ROOT / "configs" / f"{path.stem}.yaml"
    assert f"configs/{path.stem}.yaml" in sweep["command"], "a sweep runs its own config"
    assert sweep["metric"] == {"name": monitored(config), "goal": "maximize"}
    wandb = yaml.safe_load((ROOT / "configs" / "presets" / "wandb.yaml").read_text())
    assert sweep["project"] == wandb["trainer"]["logger"]["init_args"]["project"]
    for name in sweep["parameters"]:  # what the sweep schema accepts as a parameter name
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name), name

    rng = random.Random(path.stem)
    values = {name: sample(spec, rng) for name, spec in sweep["parameters"].items()}
    argv = expand(sweep, values)
    assert argv[:2] == ["zoo", "fit"], argv
    monkeypatch.chdir(ROOT)  # the agent runs the command from the repository
    with pytest.raises(SystemExit) as exit_info:
        cli([*argv[1:], "--print_config"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0, err[-2000:]
    printed = yaml.safe_load(out[out.index("# lightning.pytorch==") :])
    assert printed["trainer"]["logger"]["class_path"].endswith("WandbLogger")
    for name, value in values.items():
        assert lookup(printed, name) == pytest.approx(value), name


def test_sampler() -> None:
    rng = random.Random(0)
    for _ in range(100):
        value = sample({"distribution": "log_uniform_values", "min": 1.0e-4, "max": 1.0e-2}, rng)
        assert 1.0e-4 <= value <= 1.0e-2
        assert sample({"values": [8, 16]}, rng) in (8, 16)
        assert sample({"min": 1, "max": 3}, rng) in (1, 2, 3)
        assert 0.0 <= sample({"min": 0.0, "max": 0.5}, rng) <= 0.5
        assert sample({"distribution": "q_uniform", "min": 0, "max": 10, "q": 5}, rng) in (0, 5, 10)
    with pytest.raises(ValueError, match="does not know the distribution 'beta'"):
        sample({"distribution": "beta", "min": 0, "max": 1}, rng)
