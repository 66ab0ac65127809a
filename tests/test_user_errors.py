"""Bad inputs a user can fix end in `zoo: error: <what and how to fix>`, exit code 2, no traceback.

Every case runs through `zoo`'s entry point in this process (a new process per case would spend
the suite's minutes importing torch); three of them, one of each kind, also run as `zoo` in its
own process, to see exactly what a user sees.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tasks.cli
from tasks.cli import main

ROOT = Path(__file__).parents[1]
CONFIGS = ROOT / "configs"
FACE_CKPT = ROOT / "tests" / "data" / "checkpoints" / "face_expression.ckpt"


def _bad_inputs(d: Path) -> None:
    """The files the cases point at, each wrong in one way."""
    (d / "empty").mkdir()
    (d / "fer_nopixels.csv").write_text("emotion,Usage\n0,Training\n")
    (d / "reviews.csv").write_text("review_body,label\nnice,pos\nbad,neg\n")
    (d / "labels.csv").write_text("text,label\ngood film,pos\nbad film,neg\nodd film,maybe\n")
    (d / "news.csv").write_text("text,topic\nStocks rise,business\n")
    (d / "pairs.jsonl").write_text(json.dumps({"document": "A b c.", "abstract": "A."}) + "\n")
    (d / "corrupt.ckpt").write_bytes(b"\x00\x01garbage" * 10)
    (d / "notes.txt").write_text("not a checkpoint\n")
    (d / "broken.yaml").write_text("trainer: [unclosed\n")
    (d / "voc" / "JPEGImages").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / "voc" / "JPEGImages" / "a.jpg")
    (d / "aclImdb" / "test" / "pos").mkdir(parents=True)


def _cases(d: Path) -> list[tuple[str, list[str], str]]:
    """(what is wrong, zoo arguments, a part of the message that names it)."""
    face, imdb, news, bart, cat, logo = (
        str(CONFIGS / f"{app}.yaml")
        for app in (
            "face_expression",
            "imdb_lstm",
            "bert_news",
            "bart_summarization",
            "cat_segmentation",
            "logo",
        )
    )
    tiny_face = "--data.init_args.demo_per_class=8"
    return [
        ("missing data folder", ["fit", "-c", face, f"--data.init_args.root={d}/nowhere"],
         f"Data root {d}/nowhere does not exist"),
        ("folder without class folders", ["fit", "-c", face, f"--data.init_args.root={d}/empty"],
         "has no class folders"),
        ("FER2013 CSV without pixels",
         ["fit", "-c", face, f"--data.init_args.root={d}/fer_nopixels.csv"],
         "lacks column(s) ['pixels']"),
        ("missing predict_path", ["predict", "-c", face, f"--ckpt_path={FACE_CKPT}",
                                  f"--data.init_args.predict_path={d}/nowhere"],
         f"predict_path {d}/nowhere does not exist"),
        ("val_split out of range", ["fit", "-c", face, "--data.init_args.val_split=1.5", tiny_face],
         "val_split must be in (0, 1), got 1.5"),
        ("class weights of the wrong length",
         ["fit", "-c", face, "--model.init_args.class_weights=[1.0,2.0]", tiny_face],
         "class_weights has 2 values for 4 classes"),
        ("missing checkpoint", ["validate", "-c", face, f"--ckpt_path={d}/none.ckpt"],
         f"--ckpt_path {d}/none.ckpt does not exist"),
        ("corrupt checkpoint", ["validate", "-c", face, f"--ckpt_path={d}/corrupt.ckpt"],
         f"{d}/corrupt.ckpt is not a checkpoint the zoo can read"),
        ("text file as checkpoint", ["validate", "-c", face, f"--ckpt_path={d}/notes.txt"],
         f"{d}/notes.txt is not a checkpoint the zoo can read"),
        ("checkpoint of another task", ["validate", "-c", imdb, f"--ckpt_path={FACE_CKPT}"],
         "was written by another task than tasks.ImdbSentimentTask"),
        ("misspelt config key", ["fit", "-c", face, "--model.init_args.lerning_rate=0.1"],
         "lerning_rate"),
        ("missing config file", ["fit", "-c", f"{d}/nope.yaml"], f"{d}/nope.yaml"),
        ("broken YAML", ["fit", "-c", f"{d}/broken.yaml"], "Problems parsing config"),
        ("unknown LR schedule", ["fit", "-c", face, "--trainer.callbacks.init_args.schedule=cosin"],
         "cosin"),
        ("ImageNet weights offline", ["fit", "-c", logo, "--model.init_args.pretrained=true",
                                      "--data.init_args.demo_per_class=8"],
         "efficientnet_b0_rwightman-7f5810bc.pth"),
        ("VOC folder without masks", ["fit", "-c", cat, f"--data.init_args.root={d}/voc"],
         "SegmentationClassPNG"),
        ("aclImdb tree without train/", ["fit", "-c", imdb, f"--data.init_args.root={d}/aclImdb"],
         "Cannot tell the layout"),
        ("CSV without the text column",
         ["fit", "-c", imdb, f"--data.init_args.root={d}/reviews.csv"],
         "has no column(s) ['text']; its columns are ['review_body', 'label']"),
        ("unknown label", ["fit", "-c", imdb, f"--data.init_args.root={d}/labels.csv"],
         "labels.csv:4: unknown label 'maybe'"),
        ("CSV without the label column", ["fit", "-c", news, f"--data.init_args.root={d}/news.csv"],
         "has no column(s) ['label']"),
        ("hub model offline", ["fit", "-c", news, "--data.init_args.pretrained=bert-base-uncased"],
         "Could not load the tokenizer 'bert-base-uncased'"),
        ("hub dataset offline", ["fit", "-c", news, "--data.init_args.hf_dataset=fancyzhx/ag_news"],
         "Could not load the Hugging Face dataset 'fancyzhx/ag_news'"),
        ("JSONL without summaries", ["fit", "-c", bart, f"--data.init_args.root={d}/pairs.jsonl"],
         "has no column(s) ['summary']"),
        ("BART hub name offline",
         ["fit", "-c", bart, "--data.init_args.pretrained=facebook/bart-base"],
         "Could not load the tokenizer 'facebook/bart-base'"),
    ]  # fmt: skip


CASES = [what for what, _, _ in _cases(Path("/d"))]


def _zoo(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "TORCH_HOME": str(cwd / "torch"),
        "XDG_CACHE_HOME": str(cwd / "cache"),  # no tokenised data cached by other tests
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "tasks.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_at_least_20_kinds_of_bad_input() -> None:
    assert len(set(CASES)) == len(CASES) >= 20


@pytest.mark.parametrize("what", CASES)
def test_bad_input_is_one_clear_line_and_exit_code_2(
    what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _bad_inputs(tmp_path)
    (args, expected) = next((a, e) for w, a, e in _cases(tmp_path) if w == what)
    with pytest.raises(SystemExit) as exit_info:  # any other exception would be a traceback
        main(args)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "zoo: error: " in error
    assert expected in error


@pytest.mark.slow
def test_what_a_user_sees(tmp_path: Path) -> None:
    """A data error, a config error and an error inside a task's `__init__`, in a real process."""
    _bad_inputs(tmp_path)
    chosen = ["missing data folder", "misspelt config key", "class weights of the wrong length"]
    cases = [(a, e) for w, a, e in _cases(tmp_path) if w in chosen]
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda case: _zoo(case[0], tmp_path), cases))
    for (_, expected), result in zip(cases, done, strict=True):
        assert result.returncode == 2, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("zoo: error: ") or "\nzoo: error: " in result.stderr
        assert expected in result.stderr


@pytest.mark.slow
def test_zoo_debug_shows_the_traceback(tmp_path: Path) -> None:
    args = ["validate", "-c", str(CONFIGS / "face_expression.yaml"), f"--ckpt_path={tmp_path}/x"]
    result = _zoo(args, tmp_path, ZOO_DEBUG="1")
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "FileNotFoundError: --ckpt_path" in result.stderr


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def buggy(args):
        return {}["class_names"]  # a failed lookup in the zoo's code: a bug, not a user error

    monkeypatch.setattr(tasks.cli, "cli", buggy)
    with pytest.raises(KeyError):
        main(["fit"])

    def from_a_library(args):
        raise ValueError("raised outside the zoo's packages")

    monkeypatch.setattr(tasks.cli, "cli", from_a_library)
    with pytest.raises(ValueError, match="outside"):
        main(["fit"])


def _hub_lookup(what: str) -> tuple[Callable[[], object], str]:
    """One way a hub name reaches the network: the call, and the name its message must give."""
    from datamodules.news import NewsDataModule
    from datamodules.summarization import SummarizationDataModule
    from datamodules.text_table import ReadReport, label_parser, read_hf
    from tasks.bart_summarization import BartSummarizationTask
    from tasks.bert_news import BertNewsTask
    from tasks.logo import LogoTask

    bert, bart = "bert-base-uncased", "facebook/bart-base"
    datasets = {"AG News": "fancyzhx/ag_news", "IMDB": "stanfordnlp/imdb"}
    datasets["CNN/DailyMail"] = "abisee/cnn_dailymail"
    if what in datasets:
        name = datasets[what]
        config = "3.0.0" if what == "CNN/DailyMail" else None
        parse = label_parser(["a"])
        return lambda: read_hf(name, "text", "label", parse, ReadReport(), config=config), name
    return {
        "tokenizer": (lambda: NewsDataModule(pretrained=bert).tokenizer, bert),
        "encoder": (lambda: BertNewsTask(pretrained=bert), bert),
        "BART tokenizer": (lambda: SummarizationDataModule(pretrained=bart).tokenizer, bart),
        "BART": (lambda: BartSummarizationTask(pretrained=bart), bart),
        "ImageNet weights": (lambda: LogoTask(["a", "b"], pretrained=True), "efficientnet_b0"),
    }[what]


HUB_LOOKUPS = ["tokenizer", "encoder", "BART tokenizer", "BART", "AG News", "IMDB",
               "CNN/DailyMail", "ImageNet weights"]  # fmt: skip


@pytest.mark.parametrize("what", HUB_LOOKUPS)
def test_offline_every_hub_name_fails_at_once(
    what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline (HF_HUB_OFFLINE=1, set by conftest; no network for torchvision here either), each
    lookup fails with our message naming what to download, without retries: a hang or a retry
    loop with backoff would take far longer than the bound."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    call, name = _hub_lookup(what)
    start = time.perf_counter()
    with pytest.raises(OSError, match=re.escape(name)) as raised:
        call()
    assert time.perf_counter() - start < 10
    assert tasks.cli.raised_on_purpose(raised.value)
