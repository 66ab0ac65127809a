"""News classification: data sources and labels, the BERT task, export, and bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from datamodules.news import NewsDataModule
from tasks.bert_news import BertNewsTask
from tasks.cli import cli
from tasks.hf import parameter_groups

CONFIG = Path(__file__).parents[1] / "configs" / "bert_news.yaml"
SMALL_MODEL = [
    "--model.init_args.hidden_size=16",
    "--model.init_args.num_layers=1",
    "--model.init_args.num_heads=2",
]
SMALL_DATA = ["--data.init_args.demo_headlines=64", "--data.init_args.batch_size=16"]
STEPS = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=1",
]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _ag_news(folder: Path, rows: int = 24) -> Path:
    """AG News's on-disk shape: label,title,description with 1-based labels, and classes.txt."""
    from datamodules.demo.headlines import make_headlines

    folder.mkdir(parents=True, exist_ok=True)
    texts, topics, _ = make_headlines(rows, seed=3)
    lines = [
        [str(t + 1), text.split(" as ")[0], text] for text, t in zip(texts, topics, strict=True)
    ]
    (folder / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
    return _write_csv(folder / "train.csv", ["label", "title", "description"], lines)


# ---------------------------------------------------------------- data


def test_demo_needs_word_order_for_a_perfect_score() -> None:
    """A bag-of-words classifier cannot separate the demo (two-topic headlines): ~0.92."""
    from datamodules.demo.headlines import make_headlines

    texts, topics, mentioned = make_headlines(2000, seed=0)
    held_out, held_topics, _ = make_headlines(1000, seed=1)
    assert 0.15 < np.mean([len(m) == 2 for m in mentioned]) < 0.25
    words = sorted({w for t in texts + held_out for w in t.lower().split()})
    index = {w: i for i, w in enumerate(words)}

    def bag(lines: list[str]) -> torch.Tensor:
        x = torch.zeros(len(lines), len(words))
        for row, text in enumerate(lines):
            for word in text.lower().split():
                x[row, index[word]] += 1
        return x

    x, y = bag(texts), torch.tensor(topics)
    linear = nn.Linear(len(words), 4)
    optimizer = torch.optim.Adam(linear.parameters(), 0.05)
    for _ in range(200):
        optimizer.zero_grad()
        nn.functional.cross_entropy(linear(x), y).backward()
        optimizer.step()
    accuracy = (linear(bag(held_out)).argmax(1) == torch.tensor(held_topics)).float().mean()
    assert 0.8 < accuracy < 0.95


def test_ag_news_shape_one_based_labels_and_classes_txt(tmp_path: Path) -> None:
    table = _ag_news(tmp_path / "ag")
    data = NewsDataModule(root=str(table), text_column=["title", "description"], cache=False)
    data.setup("fit")
    assert data.class_names == ["World", "Sports", "Business", "Sci/Tech"]
    rows = list(csv.DictReader(table.open()))
    train = data.tokenised.splits["train"]
    # label "1" is World (id 0): every 1-based label moved down by one
    counts = np.bincount(train.labels, minlength=4) + np.bincount(
        data.tokenised.splits["val"].labels, minlength=4
    )
    assert counts.tolist() == np.bincount([int(r["label"]) - 1 for r in rows], minlength=4).tolist()
    # title and description are joined with the tokenizer's separator
    text = data.tokenised.val_texts.texts[0]
    assert " [SEP] " in text
    ids = data.datasets["val"][0][0].tolist()
    assert ids.count(data.tokenizer.sep_token_id) == 2


def test_labels_inferred_in_a_stable_order_and_unknown_labels_named(tmp_path: Path) -> None:
    folder = tmp_path / "named"
    folder.mkdir()
    rows = [["sports", "a match"], ["business", "a merger"], ["world", "a summit"]] * 4
    _write_csv(folder / "train.csv", ["label", "text"], rows)
    _write_csv(folder / "val.csv", ["label", "text"], [["weather", "rain"], ["sports", "a goal"]])
    data = NewsDataModule(root=str(folder), cache=False)
    with pytest.raises(ValueError, match=r"val\.csv:2: unknown label 'weather'.*'business'"):
        data.setup("fit")
    _write_csv(folder / "val.csv", ["label", "text"], [["sports", "a goal"]])
    data = NewsDataModule(root=str(folder), cache=False)
    data.setup("fit")
    assert data.class_names == ["business", "sports", "world"]
    numbers = tmp_path / "numbers.csv"
    _write_csv(numbers, ["label", "text"], [["10", "a"], ["2", "b"], ["0", "c"]] * 3)
    assert NewsDataModule(root=str(numbers), cache=False).class_names == ["0", "2", "10"]


def test_missing_column_lists_the_columns(tmp_path: Path) -> None:
    table = _ag_news(tmp_path / "ag")
    data = NewsDataModule(root=str(table), text_column="text", cache=False)
    with pytest.raises(ValueError, match=r"no column\(s\) \['text'\].*\['label', 'title', 'desc"):
        data.setup("fit")


def test_empty_texts_and_label_less_rows_are_counted_skips(tmp_path: Path) -> None:
    rows = [["a|b", "both"], ["a", "only a"], ["", "no label"], ["b", "   "], ['["a", "b"]', "js"]]
    table = _write_csv(tmp_path / "multi.csv", ["label", "text"], rows * 3)
    data = NewsDataModule(root=str(table), multi_label=True, cache=False, val_split=0.3)
    with pytest.warns(UserWarning, match="skipped") as caught:
        data.setup("fit")
    messages = " ".join(str(w.message) for w in caught)
    assert "3 empty text(s) skipped" in messages
    assert "3 row(s) with no label (or an empty summary) skipped" in messages
    splits = data.tokenised.splits
    assert sum(len(s.labels) for s in splits.values()) == 9
    labels = np.concatenate([s.labels for s in splits.values()])
    assert labels.shape[1] == 2
    assert sorted(map(tuple, labels.tolist())) == sorted([(1.0, 1.0), (1.0, 0.0), (1.0, 1.0)] * 3)


def test_tokenised_data_is_cached_and_truncation_counted(tmp_path: Path, capsys) -> None:
    text = " ".join(["word"] * 50)
    rows = [["x", text], ["y", "short one"]] * 5
    table = _write_csv(tmp_path / "t.csv", ["label", "text"], rows)
    args = {"root": str(table), "max_length": 16, "cache_dir": str(tmp_path / "cache")}
    first = NewsDataModule(**args)
    first.setup("fit")
    out = capsys.readouterr().out
    assert "> 16" in out
    assert "50.0%" in out
    train = first.tokenised.splits["train"]
    assert (np.diff(train.offsets) <= 16).all()
    assert max(train.full_lengths) == 52  # 50 words + [CLS] + [SEP], before the cut
    second = NewsDataModule(**args)
    second.setup("fit")
    assert (tmp_path / "cache").is_dir()
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert second.tokenised.splits["train"].ids.tolist() == train.ids.tolist()
    assert second.tokenizer.get_vocab() == first.tokenizer.get_vocab()


def test_multi_label_batches_are_multi_hot() -> None:
    data = NewsDataModule(demo_headlines=64, multi_label=True, batch_size=8, cache=False)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["label"].shape == (8, 4)
    assert batch["label"].dtype == torch.float32
    assert set(batch["label"].sum(1).tolist()) <= {1.0, 2.0}
    assert batch["ids"].shape[0] == 8
    assert (batch["lengths"] <= batch["ids"].shape[1]).all()


# ---------------------------------------------------------------- model


def test_no_decay_group_holds_exactly_biases_and_norm_weights() -> None:
    task = BertNewsTask(tokenizer=NewsDataModule(demo_headlines=32, cache=False).tokenizer)
    groups = {g["name"]: g for g in parameter_groups(task.net)}
    assert set(groups) == {"decay", "no_decay"}
    no_decay = {id(p) for p in groups["no_decay"]["params"]}
    expected = set()
    for module in task.net.modules():
        for name, param in module.named_parameters(recurse=False):
            if name == "bias" or isinstance(module, nn.LayerNorm):
                expected.add(id(param))
    assert no_decay == expected
    assert groups["no_decay"]["weight_decay"] == 0.0
    assert "weight_decay" not in groups["decay"]
    every = sum(len(g["params"]) for g in groups.values())
    assert every == len(list(task.net.parameters()))
    norms = [m for m in task.net.modules() if isinstance(m, nn.LayerNorm)]
    assert all(id(m.weight) in no_decay for m in norms)
    assert len(norms) == 2 * 2 + 1


def test_layer_lr_decay_scales_lower_layers_down() -> None:
    task = BertNewsTask(
        tokenizer=NewsDataModule(demo_headlines=32, cache=False).tokenizer,
        num_layers=3,
        layer_lr_decay=0.5,
    )
    groups = parameter_groups(task.net, 0.5)
    scale = {g["name"]: g["lr_scale"] for g in groups}
    assert scale["decay/embeddings"] == 0.5**4
    assert scale["decay/layer1"] == 0.5**3
    assert scale["decay/layer3"] == 0.5
    assert scale["decay/head"] == 1.0
    assert scale["no_decay/head"] == 1.0
    embeddings = task.net.bert.embeddings.word_embeddings.weight
    (group,) = [g for g in groups if any(p is embeddings for p in g["params"])]
    assert group["name"] == "decay/embeddings"
    optimizer = task.configure_optimizers()
    assert sorted(g["lr"] for g in optimizer.param_groups)[0] == pytest.approx(1e-3 * 0.5**4)


def test_gradient_checkpointing_trains_with_the_same_gradients() -> None:
    tokenizer = NewsDataModule(demo_headlines=32, cache=False).tokenizer
    batch = {"ids": torch.randint(5, 100, (4, 12)), "lengths": torch.tensor([12, 9, 5, 3])}
    batch["label"] = torch.tensor([0, 1, 2, 3])
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        task = BertNewsTask(tokenizer=tokenizer, dropout=0.0, gradient_checkpointing=checkpointing)
        task.train()
        assert task.net.is_gradient_checkpointing == checkpointing
        logits, labels = task._logits_and_labels(batch)
        task.loss_fn(logits, labels).backward()
        grads.append(task.net.bert.embeddings.word_embeddings.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_max_length_above_the_models_positions_is_an_error(tiny_bert: Path) -> None:
    tokenizer = NewsDataModule(pretrained=str(tiny_bert)).tokenizer
    with pytest.raises(ValueError, match="max_length 128 exceeds the 64 positions"):
        BertNewsTask(pretrained=str(tiny_bert), tokenizer=tokenizer, max_length=128)


def test_offline_hub_name_fails_at_once_with_the_fix() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    code = (
        "from tasks.bert_news import BertNewsTask\n"
        "BertNewsTask(pretrained='no-such-org/bert-nowhere')\n"
    )
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert time.perf_counter() - start < 60  # import time included; no retry storm
    assert run.returncode != 0
    assert "Could not load the model 'no-such-org/bert-nowhere'" in run.stderr
    assert "pass DIR instead" in run.stderr
    with pytest.raises(OSError, match="Could not load the tokenizer 'no-such-org/tok'"):
        NewsDataModule(pretrained="no-such-org/tok").tokenizer  # noqa: B018


# ---------------------------------------------------------------- end to end


def test_pretrained_folder_fine_tunes_and_the_checkpoint_stands_alone(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """A `save_pretrained` folder through `pretrained` (the users' path); afterwards the folder is
    gone and the checkpoint alone predicts, from Python and from `zoo predict`."""
    local = tmp_path / "bert"
    shutil.copytree(tiny_bert, local)
    data = [*SMALL_DATA, f"--data.init_args.pretrained={local}", "--data.init_args.max_length=64"]
    fitted = cli(["fit", "-c", str(CONFIG), *data, *STEPS])
    model = fitted.model
    assert model.net.training, "from_pretrained returns eval mode: dropout would be off"
    assert model.net.config.num_labels == 4
    assert model.net.config.hidden_size == 16
    assert model.net.config.id2label[3] == "Sci/Tech"
    checkpoint = Path(fitted.trainer.log_dir) / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert saved["hyper_parameters"]["pretrained"] is None
    assert saved["artifacts"]["pretrained"] == str(local)
    shutil.rmtree(local)

    loaded = BertNewsTask.load_from_checkpoint(checkpoint, map_location="cpu")
    texts = ["The striker wins the final", "Researchers unveil a new chip"]
    rows = loaded.classify(texts)
    model.eval()
    with torch.inference_mode():
        expected = model(**{k: v for k, v in model.encode(texts).items() if k != "label"})
    got = torch.tensor([[r[f"prob_{c}"] for c in loaded.class_names] for r in rows])
    torch.testing.assert_close(got, expected)

    inputs = tmp_path / "headlines.txt"
    inputs.write_text("\n".join(texts) + "\n\n")
    result = cli(["predict", "-c", str(CONFIG), f"--ckpt_path={checkpoint}",
                  f"--data.init_args.predict_path={inputs}"])  # fmt: skip
    assert result.datamodule.pretrained is None
    predicted = _rows(Path(result.trainer.log_dir) / "predictions.csv")
    assert [r["text"] for r in predicted] == texts
    assert [r["predicted"] for r in predicted] == [r["predicted"] for r in rows]


def test_multi_label_end_to_end_with_a_threshold_set_at_predict(tmp_path: Path) -> None:
    args = ["-c", str(CONFIG), *SMALL_MODEL, *SMALL_DATA, "--data.init_args.multi_label=true"]
    fitted = cli(["fit", *args, "--trainer.max_epochs=2", "--trainer.limit_val_batches=1"])
    assert fitted.model.multi_label
    assert isinstance(fitted.model.loss_fn, nn.BCEWithLogitsLoss)
    metrics = fitted.trainer.callback_metrics
    assert {"val/f1", "val/f1_micro", "val/exact_match", "val/precision_World"} <= set(metrics)
    checkpoint = Path(fitted.trainer.log_dir) / "checkpoints" / "last.ckpt"
    assert torch.load(checkpoint, weights_only=True)["hyper_parameters"]["threshold"] == 0.5

    inputs = tmp_path / "multi.jsonl"
    records = [
        {
            "text": "The striker wins the final as investors buy new shares",
            "label": "Sports|Business",
        },
        {"text": "Researchers unveil a new chip", "label": ["Sci/Tech"]},
    ]
    inputs.write_text("\n".join(json.dumps(r) for r in records))
    predictions = {}
    for threshold in (0.01, 0.99):
        result = cli(["predict", "-c", str(CONFIG), f"--ckpt_path={checkpoint}",
                      f"--data.init_args.predict_path={inputs}",
                      f"--model.init_args.threshold={threshold}"])  # fmt: skip
        assert result.model.threshold == threshold
        predictions[threshold] = _rows(Path(result.trainer.log_dir) / "predictions.csv")
    low, high = predictions[0.01], predictions[0.99]
    assert [r["true"] for r in low] == ["Sports|Business", "Sci/Tech"]
    assert low[0]["predicted"].count("|") == 3  # every probability passes 0.01
    assert all(r["predicted"].count("|") < 3 for r in high)
    assert all(0 <= float(r["prob_World"]) <= 1 for r in low)


def test_export_loads_in_a_pipeline_with_the_same_labels_and_probabilities(
    tmp_path: Path,
) -> None:
    from transformers import pipeline

    args = ["-c", str(CONFIG), *SMALL_MODEL, *SMALL_DATA]
    fitted = cli(["fit", *args, *STEPS])
    checkpoint = Path(fitted.trainer.log_dir) / "checkpoints" / "last.ckpt"
    folder = tmp_path / "exported"
    cli(["export", str(checkpoint), str(folder)])
    assert {"config.json", "tokenizer.json", "model.safetensors"} <= {
        p.name for p in folder.iterdir()
    }

    inputs = tmp_path / "headlines.txt"
    texts = ["The striker wins the final in london", "The central bank cuts interest rates"]
    inputs.write_text("\n".join(texts))
    result = cli(["predict", "-c", str(CONFIG), f"--ckpt_path={checkpoint}",
                  f"--data.init_args.predict_path={inputs}"])  # fmt: skip
    ours = _rows(Path(result.trainer.log_dir) / "predictions.csv")

    classifier = pipeline("text-classification", model=str(folder), device="cpu")
    theirs = classifier(texts, top_k=None)
    for row, scores in zip(ours, theirs, strict=True):
        best = max(scores, key=lambda s: s["score"])
        assert best["label"] == row["predicted"]
        for score in scores:
            assert score["score"] == pytest.approx(float(row[f"prob_{score['label']}"]), abs=1e-5)


def test_export_of_a_checkpoint_without_a_hugging_face_model_is_refused(tmp_path: Path) -> None:
    checkpoint = Path(__file__).parent / "data" / "checkpoints" / "face_expression.ckpt"
    with pytest.raises(SystemExit):
        cli(["export", str(checkpoint), str(tmp_path / "out")])


def test_hugging_face_ag_news_from_a_local_copy(tmp_path: Path) -> None:
    """`fancyzhx/ag_news`'s layout: parquet shards with a `ClassLabel` label feature."""
    import datasets

    from datamodules.demo.headlines import TOPICS, make_headlines

    folder = tmp_path / "ag_news" / "data"
    folder.mkdir(parents=True)
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(TOPICS))}
    )
    for split, seed in (("train", 0), ("test", 1)):
        texts, topics, _ = make_headlines(40, seed)
        table = datasets.Dataset.from_dict({"text": texts, "label": topics}, features=features)
        table.to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
    data = NewsDataModule(hf_dataset=str(tmp_path / "ag_news"), val_split=0.25, cache=False)
    data.setup("test")
    assert data.class_names == list(TOPICS)
    assert len(data.datasets["test"]) == 40
    assert len(data.datasets["train"]) + len(data.datasets["val"]) == 40
