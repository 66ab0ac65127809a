"""Every preset in configs/presets/ combines with every config; the scaling presets build their
strategy; the SLURM script's command parses; sharded checkpoints give up their hyperparameters."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning.fabric.utilities.load import _METADATA_FILENAME
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy, Strategy
from test_configs import tiny

from tasks.cli import cli, read_checkpoint
from tasks.common import ARTIFACTS

ROOT = Path(__file__).parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
PRESETS = sorted((ROOT / "configs" / "presets").glob("*.yaml"))
PRESET = {p.stem: p for p in PRESETS}
BERT_NEWS = ROOT / "configs" / "bert_news.yaml"


def print_config(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """`zoo fit ARGS --print_config` in process: the resolved config as a dict."""
    with pytest.raises(SystemExit) as exit_info:
        cli(["fit", *args, "--print_config"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0, err[-2000:]
    # DeepSpeed's import may print a line to stdout first; the config starts at its header.
    return yaml.safe_load(out[out.index("# lightning.pytorch==") :])


def configs_with(*presets: str) -> list[str]:
    return [arg for name in presets for arg in ("-c", str(PRESET[name]))]


def _same(printed: Any, expected: Any) -> bool:
    """Whether the printed config holds every value of the overlay `expected`.

    Class paths match by class name (YAML's `FSDPStrategy` prints as its full import path);
    lists match in any order (a set of classes prints in its own order); `key+` items must be
    among the printed `key` list.
    """
    if isinstance(expected, dict):
        if not isinstance(printed, dict):
            return False
        for key, value in expected.items():
            if key.endswith("+"):
                items = printed.get(key[:-1]) or []
                if not all(any(_same(p, v) for p in items) for v in value):
                    return False
            elif key not in printed or not _same(printed[key], value):
                return False
        return True
    if isinstance(expected, list):
        return (
            isinstance(printed, list)
            and len(printed) == len(expected)
            and all(any(_same(p, e) for p in printed) for e in expected)
        )
    if isinstance(expected, str) and isinstance(printed, str):
        name = expected.rpartition(".")[2]
        if name[:1].isupper():  # a class: short name or any import path of it
            return printed.rpartition(".")[2] == name
    return printed == expected


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_preset_combines_with_config(
    config: Path, preset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = print_config(["-c", str(config), "-c", str(preset)], capsys)
    overlay = yaml.safe_load(preset.read_text())
    assert _same(printed, overlay), f"{preset.name} over {config.name} lost some of its values"
    # Nothing of the config that the preset does not set is lost.
    own = yaml.safe_load(config.read_text())
    assert printed["model"]["class_path"].endswith(own["model"]["class_path"])
    assert len(printed["trainer"]["callbacks"]) >= len(own["trainer"]["callbacks"])


def test_same_checks_values() -> None:
    """The comparison above fails on a changed value, a missing key or a different class."""
    printed = {"trainer": {"strategy": {"class_path": "a.b.FSDPStrategy", "init_args": {"x": 1}}}}
    assert _same(printed, {"trainer": {"strategy": {"class_path": "FSDPStrategy"}}})
    assert not _same(printed, {"trainer": {"strategy": {"class_path": "DDPStrategy"}}})
    assert not _same(printed, {"trainer": {"strategy": {"init_args": {"x": 2}}}})
    assert not _same(printed, {"trainer": {"num_nodes": 2}})
    assert not _same({"callbacks": [{"class_path": "A"}]}, {"callbacks+": [{"class_path": "B"}]})


def test_tensorboard_preset_keeps_the_config_name(capsys: pytest.CaptureFixture[str]) -> None:
    """A second -c merges the logger's init_args: runs stay under runs/<app>/, also when the
    preset follows another logger's."""
    for presets in (["tensorboard"], ["wandb", "tensorboard"]):
        printed = print_config(["-c", str(BERT_NEWS), *configs_with(*presets)], capsys)
        logger = printed["trainer"]["logger"]
        assert logger["class_path"].endswith("TensorBoardLogger"), presets
        assert logger["init_args"]["save_dir"] == "runs"
        if presets == ["tensorboard"]:
            assert logger["init_args"]["name"] == "bert_news"
    # After W&B's preset unset the name, zoo names the folder after the task again.
    args = ["-c", str(BERT_NEWS), *configs_with("wandb", "tensorboard"), *tiny(BERT_NEWS)]
    assert cli(args, run=False).trainer.logger.name == "bert_news"


def build_strategy(printed: dict[str, Any]) -> Strategy:
    """The trainer's strategy from a printed config, built as LightningCLI builds it.

    The Trainer itself cannot be built here: FSDP and DeepSpeed refuse a machine without a GPU.
    """
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--strategy", type=Strategy)
    config = parser.parse_object({"strategy": printed["trainer"]["strategy"]})
    return parser.instantiate_classes(config).strategy


def test_fsdp_preset_wraps_every_transformer_layer(capsys: pytest.CaptureFixture[str]) -> None:
    from torch import nn
    from transformers import BartConfig, BertConfig
    from transformers.models.bart.modeling_bart import BartDecoderLayer, BartEncoderLayer
    from transformers.models.bert.modeling_bert import BertLayer

    printed = print_config(["-c", str(BERT_NEWS), *configs_with("fsdp")], capsys)
    assert printed["trainer"]["accelerator"] == "gpu"
    assert printed["trainer"]["devices"] == -1
    strategy = build_strategy(printed)
    assert isinstance(strategy, FSDPStrategy)
    assert strategy._state_dict_type == "sharded"
    policy = strategy.kwargs["auto_wrap_policy"]  # the set of classes, as a ModuleWrapPolicy
    bert = BertConfig(hidden_size=8, num_attention_heads=2, intermediate_size=8)
    bart = BartConfig(d_model=8, encoder_attention_heads=2, decoder_attention_heads=2)
    bart.encoder_ffn_dim = bart.decoder_ffn_dim = 8
    for layer in (BertLayer(bert), BartEncoderLayer(bart), BartDecoderLayer(bart, layer_idx=0)):
        assert policy(module=layer, recurse=False, nonwrapped_numel=0), type(layer).__name__
    assert not policy(module=nn.Linear(2, 2), recurse=False, nonwrapped_numel=0)


def test_deepspeed_preset_is_zero_stage_2(capsys: pytest.CaptureFixture[str]) -> None:
    printed = print_config(["-c", str(BERT_NEWS), *configs_with("deepspeed")], capsys)
    assert printed["trainer"]["accelerator"] == "gpu"
    pytest.importorskip("deepspeed", reason='the extra: pip install -e ".[deepspeed]"')
    strategy = build_strategy(printed)
    assert isinstance(strategy, DeepSpeedStrategy)
    assert strategy.config["zero_optimization"]["stage"] == 2


def test_multinode_preset_and_a_sharding_preset_after_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    printed = print_config(["-c", str(BERT_NEWS), *configs_with("multinode")], capsys)
    assert printed["trainer"]["num_nodes"] == 2
    assert printed["trainer"]["strategy"] == "ddp"
    printed = print_config(["-c", str(BERT_NEWS), *configs_with("multinode", "fsdp")], capsys)
    assert printed["trainer"]["num_nodes"] == 2
    assert isinstance(build_strategy(printed), FSDPStrategy)


def test_slurm_script_command_parses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run configs/slurm/zoo.sbatch with a fake `srun` and SLURM's variables; what it would
    start must parse, with num_nodes and devices from SLURM."""
    script = ROOT / "configs" / "slurm" / "zoo.sbatch"
    argv_file = tmp_path / "argv"
    srun = tmp_path / "bin" / "srun"
    srun.parent.mkdir()
    srun.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {argv_file}\n')
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    env = {
        **os.environ,
        "PATH": f"{srun.parent}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_NUM_NODES": "3",
        "SLURM_NTASKS_PER_NODE": "4",
        "SLURM_JOB_ID": "1234",
    }
    extra = ["-c", "configs/presets/fsdp.yaml"]
    subprocess.run(
        ["bash", str(script), "configs/bart_summarization.yaml", *extra],
        cwd=ROOT,
        env=env,
        check=True,
    )
    argv = argv_file.read_text().splitlines()
    assert argv[:2] == ["zoo", "fit"]
    monkeypatch.chdir(ROOT)  # the script's configs are relative to the repository
    printed = print_config(argv[2:], capsys)
    trainer = printed["trainer"]
    # devices parses as the string "4", which Lightning reads as 4 GPUs ("4," would be GPU 4)
    assert (trainer["num_nodes"], int(trainer["devices"])) == (3, 4)
    assert trainer["default_root_dir"] == "runs/slurm-1234"
    assert trainer["strategy"]["class_path"].endswith("FSDPStrategy")  # extra args come after
    assert printed["model"]["class_path"].endswith("BartSummarizationTask")


def test_read_checkpoint_reads_a_sharded_checkpoint_folder(tmp_path: Path) -> None:
    """FSDP's sharded checkpoint is a folder: shards plus the metadata file, which Lightning
    writes with `torch.save` of the checkpoint without its weights and optimizer states."""
    folder = tmp_path / "last.ckpt"
    folder.mkdir()
    hparams = {"class_names": ["World", "Sports"], "max_length": 64, "hidden_size": 16}
    metadata = {
        "epoch": 1,
        "global_step": 10,
        "pytorch-lightning_version": "2.6.6",
        "hyper_parameters": hparams,
        ARTIFACTS: {"vocab": ["<pad>", "<unk>", "news"]},
        "callbacks": {},
        "loops": {},
    }
    torch.save(metadata, folder / _METADATA_FILENAME)
    (folder / "__0_0.distcp").write_bytes(b"shard")  # what DCP writes beside it
    (folder / ".metadata").write_bytes(b"dcp")

    read, facts = read_checkpoint(folder)
    assert read == hparams
    assert facts == {
        "class_names": ["World", "Sports"],
        "max_length": 64,
        "vocab": ["<pad>", "<unk>", "news"],
    }
    assert read_checkpoint(str(folder))[0] == hparams  # --ckpt_path gives a string

    (folder / _METADATA_FILENAME).unlink()
    with pytest.raises(FileNotFoundError, match="not a sharded FSDP checkpoint"):
        read_checkpoint(folder)
