"""Summarization: ROUGE against Google's reference, batches, BART, generation settings, export."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from datamodules.summarization import SummarizationDataModule, collate_pairs
from tasks.bart_summarization import BartSummarizationTask
from tasks.cli import cli
from tasks.rouge import ROUGE_KEYS, rouge_metric, split_sentences

CONFIG = Path(__file__).parents[1] / "configs" / "bart_summarization.yaml"
SMALL_MODEL = [
    "--model.init_args.d_model=16",
    "--model.init_args.num_layers=1",
    "--model.init_args.num_beams=2",
    "--model.init_args.max_new_tokens=8",
]
SMALL_DATA = [
    "--data.init_args.demo_articles=32",
    "--data.init_args.batch_size=8",
    "--data.init_args.tokenizer_vocab_size=400",
]
STEPS = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=1",
]

PAIRS = [
    ("The cats were running quickly. Dr. Smith watched them.", "A cat ran quickly. Smith watched."),
    ("Shares in Velto rose 12 percent on Monday.", "Velto shares rise 12 percent"),
    ("Police arrested 5 people.\nThey were released later!", "Five people arrested by police."),
    ("Storms hit the U.S. coast. Thousands lost power.", "Storm cuts power on the U.S. coast."),
]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------- ROUGE


def test_rouge_matches_googles_rouge_score_with_stemming() -> None:
    """Ours (torchmetrics, offline sentence splits) against `rouge-score`, pair by pair."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    for prediction, target in PAIRS:
        ours = rouge_metric()([prediction], [target])
        # rouge-score's Lsum wants one sentence per line: split as ours does.
        lines = {t: "\n".join(split_sentences(t)) for t in (prediction, target)}
        theirs = scorer.score(lines[target], lines[prediction])
        for key in ROUGE_KEYS:
            assert float(ours[f"{key}_fmeasure"]) == pytest.approx(theirs[key].fmeasure, abs=1e-6)
    assert split_sentences(PAIRS[0][0]) == [
        "The cats were running quickly.",
        "Dr. Smith watched them.",
    ]


def test_rouge_lsum_needs_no_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import nltk

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("nltk tried to download")

    monkeypatch.setattr(nltk, "download", no_network)
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty")])  # no punkt_tab anywhere
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    scores = rouge_metric()(["One sentence. Two sentences."], ["One sentence. Another one."])
    assert 0 < float(scores["rougeLsum_fmeasure"]) < 1
    assert (tmp_path / "cache" / "lightning-task-zoo" / "nltk_data").is_dir()


# ---------------------------------------------------------------- data


def test_batches_pad_labels_with_minus_100_and_the_loss_ignores_them() -> None:
    data = SummarizationDataModule(demo_articles=32, tokenizer_vocab_size=400, cache=False)
    data.setup("fit")
    dataset = data.datasets["train"]
    short, long = sorted((dataset[i] for i in range(8)), key=lambda pair: len(pair[1]))[::7]
    batch = collate_pairs([short, long], pad_id=data.tokenizer.pad_token_id)
    assert batch["labels"].shape[1] == len(long[1])
    assert (batch["labels"][0, len(short[1]) :] == -100).all()
    assert (batch["ids"][0, len(short[0]) :] == data.tokenizer.pad_token_id).all() or len(
        short[0]
    ) >= len(long[0])
    task = BartSummarizationTask(tokenizer=data.tokenizer, d_model=16, num_layers=1, dropout=0.0)
    task.log = lambda *args, **kwargs: None
    alone = collate_pairs([short], pad_id=data.tokenizer.pad_token_id)
    padded = task._shared_step(batch, 0, "train")
    # The padded pair's loss over its own tokens equals its loss alone: -100 is ignored.
    with torch.no_grad():
        loss_alone = task._shared_step(alone, 0, "train")
        logits = task.net(
            input_ids=batch["ids"],
            attention_mask=(batch["ids"] != data.tokenizer.pad_token_id).long(),
            labels=batch["labels"],
        ).logits
        per_token = torch.nn.functional.cross_entropy(
            logits[0], batch["labels"][0], ignore_index=-100
        )
    assert per_token.item() == pytest.approx(loss_alone.item(), rel=1e-5)
    assert torch.isfinite(padded)


def test_bad_input_is_counted_or_named(tmp_path: Path) -> None:
    rows = [
        {"document": "A long document " * 40, "summary": "Long."},
        {"document": "   ", "summary": "Empty document."},
        {"document": "No reference here.", "summary": ""},
    ] + [{"document": f"Document {i} is fine.", "summary": f"Fine {i}."} for i in range(6)]
    table = tmp_path / "train.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in rows))
    data = SummarizationDataModule(
        root=str(table), max_source_length=16, val_split=0.2, cache=False
    )
    with pytest.warns(UserWarning, match="skipped") as caught:
        data.setup("fit")
    messages = " ".join(str(w.message) for w in caught)
    assert "1 empty text(s) skipped" in messages
    assert "1 row(s) with no label (or an empty summary) skipped" in messages
    sources = data.tokenised.sources
    assert sum(len(s.offsets) - 1 for s in sources.values()) == 7
    assert max(s.full_lengths.max() for s in sources.values()) > 16  # counted, then cut
    assert max((s.offsets[1:] - s.offsets[:-1]).max() for s in sources.values()) == 16

    with pytest.raises(
        ValueError, match=r"no column\(s\) \['article'\].*\['document', 'summary'\]"
    ):
        SummarizationDataModule(root=str(table), document_column="article", cache=False).setup(
            "fit"
        )
    with pytest.raises(OSError, match="Could not load the tokenizer 'no-such-org/bart'"):
        SummarizationDataModule(pretrained="no-such-org/bart").tokenizer  # noqa: B018
    with pytest.raises(OSError, match="Could not load the model 'no-such-org/bart'.*pass DIR"):
        BartSummarizationTask(pretrained="no-such-org/bart")


# ---------------------------------------------------------------- model


def test_generation_respects_max_new_tokens() -> None:
    data = SummarizationDataModule(demo_articles=16, tokenizer_vocab_size=400, cache=False)
    task = BartSummarizationTask(
        tokenizer=data.tokenizer, d_model=16, num_layers=1, max_new_tokens=5, min_new_tokens=5
    )
    batch = task.encode(["Harlow council approved a budget of 42 million pounds on Monday."])
    generated = task.generate(batch["ids"], batch["lengths"])
    assert generated.shape[1] == 1 + 5  # the decoder start token, then exactly 5 new tokens


def test_every_path_generates_with_the_same_settings(tmp_path: Path) -> None:
    """Validation, test, predict and summarize() all pass the one GenerationConfig."""
    args = ["-c", str(CONFIG), *SMALL_MODEL, *SMALL_DATA, "--model.init_args.length_penalty=1.7"]
    fitted = cli(["fit", *args, *STEPS])
    task, trainer = fitted.model, fitted.trainer
    seen = []
    original = task.net.generate

    def recording(*a: object, **kwargs: object) -> torch.Tensor:
        seen.append(kwargs["generation_config"].to_dict())
        return original(*a, **kwargs)

    task.net.generate = recording
    assert seen == []
    assert task.generation_config.length_penalty == 1.7
    trainer.validate(task, fitted.datamodule)
    trainer.test(task, fitted.datamodule)
    trainer.predict(task, fitted.datamodule)
    task.summarize(["Kelso council approved a budget of 7 million pounds on Friday."])
    assert len(seen) >= 4
    expected = task.generation_config.to_dict()
    assert all(settings == expected for settings in seen)
    assert task.net.generation_config.to_dict() == expected  # what an export carries
    assert expected["num_beams"] == 2
    assert expected["max_new_tokens"] == 8

    checkpoint = Path(trainer.log_dir) / "checkpoints" / "last.ckpt"
    loaded = BartSummarizationTask.load_from_checkpoint(checkpoint, map_location="cpu")
    assert loaded.generation_config.to_dict() == expected


def test_pretrained_folder_fine_tunes_and_the_checkpoint_stands_alone(
    tiny_bart: Path, tmp_path: Path
) -> None:
    local = tmp_path / "bart"
    shutil.copytree(tiny_bart, local)
    data = [*SMALL_DATA, f"--data.init_args.pretrained={local}"]
    fitted = cli(["fit", "-c", str(CONFIG), *data, "--model.init_args.num_beams=2", *STEPS])
    assert fitted.model.net.training
    assert fitted.model.net.config.d_model == 16  # the folder's model, not a scratch one
    checkpoint = Path(fitted.trainer.log_dir) / "checkpoints" / "last.ckpt"
    shutil.rmtree(local)

    documents = ["Shares in Velto rose 12 percent on Monday.", "Police in Kelso arrested 4 people."]
    loaded = BartSummarizationTask.load_from_checkpoint(checkpoint, map_location="cpu")
    one_by_one = [loaded.summarize([d])[0] for d in documents]
    assert loaded.summarize(documents, batch_size=2) == one_by_one

    inputs = tmp_path / "documents.jsonl"
    inputs.write_text(
        json.dumps({"document": documents[0], "summary": "Velto shares rise 12 percent"})
        + "\n"
        + json.dumps({"document": documents[1], "summary": ""})
    )
    result = cli(["predict", "-c", str(CONFIG), f"--ckpt_path={checkpoint}",
                  f"--data.init_args.predict_path={inputs}"])  # fmt: skip
    rows = _jsonl(Path(result.trainer.log_dir) / "summaries.jsonl")
    assert [r["summary"] for r in rows] == one_by_one
    assert rows[0]["reference"] == "Velto shares rise 12 percent"
    assert 0 <= rows[0]["rouge1"] <= 1
    assert "reference" not in rows[1]  # an empty reference: no ROUGE for that row


def test_export_generates_the_same_summaries_with_auto_classes(tmp_path: Path) -> None:
    """transformers 5 removed the summarization pipeline: the export is for the Auto classes."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    fitted = cli(["fit", "-c", str(CONFIG), *SMALL_MODEL, *SMALL_DATA, *STEPS])
    checkpoint = Path(fitted.trainer.log_dir) / "checkpoints" / "last.ckpt"
    folder = tmp_path / "exported"
    cli(["export", str(checkpoint), str(folder)])
    assert (folder / "generation_config.json").is_file()

    documents = ["Harlow council approved a budget of 42 million pounds on Monday."]
    inputs = tmp_path / "documents.txt"
    inputs.write_text(documents[0] + "\n")
    result = cli(["predict", "-c", str(CONFIG), f"--ckpt_path={checkpoint}",
                  f"--data.init_args.predict_path={inputs}"])  # fmt: skip
    (row,) = _jsonl(Path(result.trainer.log_dir) / "summaries.jsonl")

    model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoded = tokenizer(documents, return_tensors="pt", truncation=True)
    generated = model.generate(**encoded)  # settings from generation_config.json
    decoded = tokenizer.batch_decode(generated, skip_special_tokens=True)
    assert [text.strip() for text in decoded] == [row["summary"]]
    assert model.generation_config.num_beams == 2


def test_the_validation_table_and_rouge_are_logged(tmp_path: Path) -> None:
    fitted = cli(["fit", "-c", str(CONFIG), *SMALL_MODEL, *SMALL_DATA, *STEPS])
    metrics = fitted.trainer.callback_metrics
    assert {f"val/{k}" for k in ROUGE_KEYS} | {"val/gen_len", "val/loss"} <= set(metrics)
    assert 0 < float(metrics["val/gen_len"]) <= 8
    (table,) = Path(fitted.trainer.log_dir).rglob("val_examples_epoch000.csv")
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    assert set(rows[0]) == {"document", "reference", "generated", *ROUGE_KEYS}


def test_hugging_face_xsum_from_a_local_copy(tmp_path: Path) -> None:
    """`EdinburghNLP/xsum`'s layout: parquet shards with document, summary and id columns."""
    import datasets

    from datamodules.demo.articles import make_articles

    folder = tmp_path / "xsum" / "data"
    folder.mkdir(parents=True)
    for split, seed in (("train", 0), ("validation", 1)):
        documents, summaries = make_articles(12, seed)
        ids = [f"{split}{i}" for i in range(12)]
        table = datasets.Dataset.from_dict({"document": documents, "summary": summaries, "id": ids})
        table.to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
    data = SummarizationDataModule(hf_dataset=str(tmp_path / "xsum"), cache=False)
    data.setup("fit")
    assert len(data.datasets["train"]) == 12
    assert len(data.datasets["val"]) == 12
