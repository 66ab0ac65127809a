"""IMDB sentiment: tokenizer parity with torchtext, vocabulary, packing, data sources, cache."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import datamodules.imdb as imdb
from datamodules.demo.reviews import make_reviews
from datamodules.imdb import ImdbDataModule
from datamodules.text_table import ReadReport, read_text_folders, read_texts
from datamodules.tokens import (
    LengthBucketSampler,
    Vocab,
    basic_english,
    basic_english_regex,
    pad_batch,
)
from tasks.cli import cli
from tasks.imdb_lstm import ImdbSentimentTask, SentimentLSTM


def read_predict(path: Path, text_column: str, label_column: str):
    """The IMDB datamodule's predict reader: texts, ids, labels."""
    data = read_texts(path, text_column, label_column, imdb.parse_label, imdb.CLASS_NAMES)
    return data.texts, data.ids, data.labels


CONFIG = Path(__file__).parents[1] / "configs" / "imdb_lstm.yaml"
TINY = ["--data.init_args.demo_reviews=64", "--model.init_args.embedding_dim=8"]
TINY += ["--model.init_args.hidden_dim=8", "--data.init_args.batch_size=16"]

TRICKY = [
    "You can now install TorchText using pip!",
    "I didn't like it.<br /><br />Not at ALL... (really)",
    'He said "wow", then: left; fine?',
    "<BR />Upper-case tags<br/>and <br /> spaced",
    'Quote inside a tag: <br "/> stays a tag',
    "Tabs\tand\nnewlines\u00a0and\u2003unicode spaces",
    "rock'n'roll isn't 'quoted'",
    "3.14, 2.5.1 and e.g. U.S.A.",
    "",
    "   ",
    "ÉCOLE naïve façade",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tokenizer_matches_basic_english_regex(text: str) -> None:
    assert basic_english(text) == basic_english_regex(text)


def test_tokenizer_matches_on_random_punctuation_soup() -> None:
    rng = np.random.default_rng(0)
    alphabet = list("ab '\".,()!?;:<>/\t\n") + ["<br />", "<BR />", "\u00a0"]
    for _ in range(500):
        text = "".join(rng.choice(alphabet, size=rng.integers(0, 30)))
        assert basic_english(text) == basic_english_regex(text), repr(text)


def test_vocab_orders_by_frequency_and_honours_limits() -> None:
    tokens = [["b", "a", "c"], ["b", "a"], ["b", "d", "<unk>"]]
    vocab = Vocab.build(tokens)
    assert vocab.itos == ["<pad>", "<unk>", "b", "a", "c", "d"]  # ties alphabetical
    assert Vocab.build(tokens, min_freq=2).itos == ["<pad>", "<unk>", "b", "a"]
    assert Vocab.build(tokens, max_size=3).itos == ["<pad>", "<unk>", "b"]
    assert vocab.encode(["a", "zzz"]) == [3, 1]


def test_packing_equals_running_each_review_unpadded() -> None:
    torch.manual_seed(0)
    net = SentimentLSTM(20, embedding_dim=6, hidden_dim=5, num_layers=2, dropout=0.0).eval()
    reviews = [torch.randint(2, 20, (n,)) for n in (7, 3, 5)]
    batch = pad_batch([(r, 0) for r in reviews])
    assert batch["ids"].shape == (3, 7)
    together = net(batch["ids"], batch["lengths"])
    alone = torch.cat([net(r[None], torch.tensor([len(r)])) for r in reviews])
    torch.testing.assert_close(together, alone)


def test_padding_is_per_batch_unless_fixed() -> None:
    samples = [(torch.tensor([5, 6, 7]), 1), (torch.tensor([8]), 0)]
    assert pad_batch(samples)["ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert pad_batch(samples, pad_to=6)["ids"].shape == (2, 6)


def test_length_buckets_cover_every_index_with_little_padding() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 300, 1000)
    sampler = LengthBucketSampler(lengths, batch_size=32, seed=1)
    first, second = list(sampler), list(sampler)
    assert sorted(first) == list(range(1000))
    assert first != second  # reshuffled each epoch
    batches = [first[i : i + 32] for i in range(0, 992, 32)]
    padded = sum(32 * lengths[b].max() for b in batches)
    randomly = sum(32 * lengths[b].max() for b in np.array_split(rng.permutation(1000)[:992], 31))
    assert padded < 0.6 * randomly


def test_length_buckets_are_dealt_whole_to_ranks() -> None:
    from torch.utils.data import DataLoader

    lengths = np.random.default_rng(0).integers(5, 300, 1000)
    alone = LengthBucketSampler(lengths, batch_size=32, seed=1)
    alone.set_epoch(3)
    full = [b for b in np.array_split(np.array(list(alone)), range(32, 1000, 32)) if len(b) == 32]
    shards = []
    for rank in range(3):
        sampler = LengthBucketSampler(lengths, batch_size=32, seed=1, num_replicas=3, rank=rank)
        sampler.set_epoch(3)  # what Lightning calls each epoch, on every rank alike
        loader = DataLoader(range(1000), batch_size=32, sampler=sampler, drop_last=True)
        shards.append([batch.tolist() for batch in loader])
        assert len(loader) == len(sampler) // 32
    # Every rank runs the same number of steps, with whole buckets of the single-process epoch:
    # 31 full batches dealt round-robin, padded to 33 by wrapping round.
    assert [len(s) for s in shards] == [11, 11, 11]
    dealt = [batch for step in zip(*shards, strict=True) for batch in step]
    assert dealt[:31] == [b.tolist() for b in full]
    assert dealt[31:] == dealt[:2]
    # Lightning keeps a DistributedSampler as it is instead of wrapping (and reshuffling) it.
    assert isinstance(sampler, torch.utils.data.DistributedSampler)


def test_demo_reviews_need_word_order() -> None:
    texts, labels = make_reviews(2000, seed=0)
    assert set(labels) == {0, 1}
    assert 0.4 < np.mean(labels) < 0.6
    # Bag-of-words is blind: sentiment words are as frequent in both classes.
    for word in ("good", "bad", "not", "very"):
        has = np.array([word in basic_english(t) for t in texts])
        assert abs(np.mean(np.array(labels)[has]) - np.mean(labels)) < 0.06, word


# --- data sources ------------------------------------------------------------------------------


@pytest.fixture
def acl_imdb(tmp_path: Path) -> Path:
    """A tiny aclImdb tree, with an empty review, a non-UTF-8 one and the unsup folder."""
    texts, labels = make_reviews(40, seed=3, mean_words=15)
    for split in ("train", "test"):
        for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
            folder = tmp_path / "aclImdb" / split / ("pos" if label else "neg")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}_{7 if label else 2}.txt").write_text(text)
    (tmp_path / "aclImdb" / "train" / "unsup").mkdir()
    (tmp_path / "aclImdb" / "train" / "unsup" / "0_0.txt").write_text("no label")
    (tmp_path / "aclImdb" / "train" / "pos" / "900_9.txt").write_text("  \n")
    (tmp_path / "aclImdb" / "train" / "neg" / "901_1.txt").write_bytes(b"caf\xe9 was bad")
    return tmp_path / "aclImdb"


def test_aclimdb_counts_empty_and_undecodable_reviews(acl_imdb: Path) -> None:
    data = ImdbDataModule(root=str(acl_imdb), val_split=0.25, batch_size=8)
    with pytest.warns(UserWarning, match="empty text") as warned:
        data.setup("fit")
    messages = " ".join(str(w.message) for w in warned)
    assert re.search(r"1 empty text\(s\) skipped.*900_9\.txt", messages)
    assert re.search(r"1 text\(s\) had non-UTF-8 bytes.*901_1\.txt", messages)
    sizes = {split: len(data.datasets[split]) for split in ("train", "val", "test")}
    assert sizes == {"train": 31, "val": 10, "test": 40}  # 41 kept of train, unsup ignored
    batch = next(iter(data.train_dataloader()))
    assert batch["ids"].shape[1] == batch["lengths"].max()  # padded to the longest only
    assert "caf\ufffd" in data.encoded.vocab.itos


def _write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_labels_in_any_spelling(tmp_path: Path) -> None:
    rows = [("a fine film", "positive"), ("dull", "NEG"), ("loved it", "1"), ("meh", "0")] * 5
    path = _write_csv(tmp_path / "reviews.csv", rows, ("review", "sentiment"))
    data = ImdbDataModule(
        root=str(path), text_column="review", label_column="sentiment", val_split=0.2
    )
    data.setup("fit")
    labels = np.concatenate([s.labels for s in data.encoded.splits.values()])
    assert labels.tolist().count(1) == 10


def test_csv_bad_input_names_the_row_or_column(tmp_path: Path) -> None:
    bad_label = _write_csv(tmp_path / "a.csv", [("ok", "pos"), ("hm", "maybe")], ("text", "label"))
    with pytest.raises(ValueError, match=r"a\.csv:3: unknown label 'maybe'"):
        ImdbDataModule(root=str(bad_label)).setup("fit")
    no_column = _write_csv(tmp_path / "b.csv", [("ok", "pos")], ("review", "label"))
    with pytest.raises(ValueError, match=r"no column\(s\) \['text'\].*\['review', 'label'\]"):
        ImdbDataModule(root=str(no_column)).setup("fit")


def test_hugging_face_dataset_from_a_local_copy(tmp_path: Path) -> None:
    import datasets

    folder = tmp_path / "imdb" / "plain_text"  # the hub repository's layout
    folder.mkdir(parents=True)
    texts, labels = make_reviews(30, seed=4, mean_words=10)
    for split in ("train", "test"):
        table = datasets.Dataset.from_dict({"text": texts, "label": labels})
        table.to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
    data = ImdbDataModule(hf_dataset=str(tmp_path / "imdb"), val_split=0.2)
    data.setup("test")
    assert len(data.datasets["test"]) == 30
    assert len(data.datasets["train"]) + len(data.datasets["val"]) == 30


def test_second_run_reads_the_cache_without_tokenising(
    acl_imdb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ImdbDataModule(root=str(acl_imdb), cache_dir=str(acl_imdb.parent / "cache"))
    vocab = first.vocab
    monkeypatch.setattr(imdb, "basic_english", _must_not_tokenise)
    again = ImdbDataModule(root=str(acl_imdb), cache_dir=str(acl_imdb.parent / "cache"))
    assert again.vocab == vocab
    np.testing.assert_array_equal(
        again.encoded.splits["train"].ids, first.encoded.splits["train"].ids
    )
    changed = ImdbDataModule(
        root=str(acl_imdb), cache_dir=str(acl_imdb.parent / "cache"), min_freq=2
    )
    with pytest.raises(AssertionError, match="tokenised again"):
        _ = changed.vocab  # other settings: another cache entry


def _must_not_tokenise(text: str) -> list[str]:
    raise AssertionError("tokenised again")


# --- model, checkpoint, prediction -------------------------------------------------------------


def test_word_vectors_initialise_embeddings(tmp_path: Path) -> None:
    vectors = tmp_path / "glove.txt"
    vectors.write_text("good 1 2 3\nunseen 4 5 6\nbad 7 8 9\n")
    task = ImdbSentimentTask(
        ["<pad>", "<unk>", "good", "bad", "film"],
        embedding_dim=3,
        hidden_dim=4,
        word_vectors=str(vectors),
    )
    assert task.net.embedding.weight[2].tolist() == [1, 2, 3]
    assert task.net.embedding.weight[3].tolist() == [7, 8, 9]
    with pytest.raises(ValueError, match=r"glove\.txt:1: 3 values .* embedding_dim is 5"):
        ImdbSentimentTask(["<pad>", "<unk>", "good"], embedding_dim=5, word_vectors=str(vectors))


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("imdb_run")
    cli(
        [
            "fit",
            "-c",
            str(CONFIG),
            *TINY,
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
        ]
        + [f"--trainer.logger.init_args.save_dir={folder}"]
    )
    (checkpoint,) = folder.rglob("last.ckpt")
    return checkpoint


def test_checkpoint_alone_predicts_texts(trained_checkpoint: Path) -> None:
    task = ImdbSentimentTask.load_from_checkpoint(trained_checkpoint)
    assert task.vocab.itos[:2] == ["<pad>", "<unk>"]
    rows = task.predict_texts(["The film was not good.", "", "Qwerty zxcv!"])  # unknown words too
    assert [set(r) for r in rows][0] >= {"predicted", "prob_neg", "prob_pos", "text"}
    assert all(r["predicted"] in ("neg", "pos") for r in rows)
    assert all(abs(r["prob_neg"] + r["prob_pos"] - 1) < 1e-5 for r in rows)


def test_zoo_predict_uses_the_checkpoint_vocabulary(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    # The data given to `zoo predict` has another vocabulary: the checkpoint's must win.
    other = _write_csv(
        tmp_path / "other.csv", [("zebra", "pos"), ("yak", "neg")] * 4, ("text", "label")
    )
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("What a wonderful film.\n\nIt was not good at all.\n")
    cli(
        ["predict", "-c", str(CONFIG), *TINY, f"--ckpt_path={trained_checkpoint}"]
        + [f"--data.init_args.root={other}", f"--data.init_args.predict_path={reviews}"]
    )
    (table,) = Path().rglob("predictions.csv")
    rows = list(csv.DictReader(table.open()))
    assert [r["text"] for r in rows] == ["What a wonderful film.", "It was not good at all."]
    assert all(0.0 <= float(r["prob_pos"]) <= 1.0 for r in rows)


def test_predict_csv_keeps_labels_only_when_it_has_them(tmp_path: Path) -> None:
    labelled = _write_csv(
        tmp_path / "l.csv", [("good film", "pos"), ("bad", "neg")], ("text", "label")
    )
    assert read_predict(labelled, "text", "label")[2] == [1, 0]
    unlabelled = tmp_path / "u.csv"
    unlabelled.write_text("text\ngood film\nbad\n")
    texts, ids, labels = read_predict(unlabelled, "text", "label")
    assert (texts, labels) == (["good film", "bad"], [-1, -1])
    assert ids == [f"{unlabelled}:2", f"{unlabelled}:3"]
    with pytest.raises(ValueError, match=r"no column\(s\) \['text'\]"):
        read_predict(_write_csv(tmp_path / "w.csv", [("x", "1")], ("review", "y")), "text", "label")


def test_a_100k_word_vocabulary_travels_outside_the_hyperparameters(tmp_path: Path) -> None:
    # 1,000 reviews of 100 words never seen twice: a 100k-token vocabulary.
    words = [" ".join(f"w{r}x{i}" for i in range(100)) for r in range(1000)]
    rows = [(text, "pos" if r % 2 else "neg") for r, text in enumerate(words)]
    data = _write_csv(tmp_path / "big.csv", rows, ("text", "label"))
    args = ["-c", str(CONFIG), *TINY, f"--data.init_args.root={data}"]
    args += ["--model.init_args.embedding_dim=2", "--data.init_args.val_split=0.01"]
    result = cli(["fit", *args, "--trainer.max_epochs=1", "--trainer.limit_train_batches=1"])
    checkpoint = Path(result.trainer.log_dir) / "checkpoints" / "last.ckpt"

    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert len(saved["artifacts"]["vocab"]) > 99_000
    assert all(len(str(v)) < 1000 for v in saved["hyper_parameters"].values())
    # Both ways of loading it work on the checkpoint alone, with its vocabulary.
    validated = cli(["validate", *args, f"--ckpt_path={checkpoint}"])
    assert len(validated.model.vocab) == len(saved["artifacts"]["vocab"])
    task = ImdbSentimentTask.load_from_checkpoint(checkpoint)
    assert task.vocab.itos == saved["artifacts"]["vocab"]
    assert task.net.embedding.num_embeddings == len(task.vocab)


def test_csv_row_longer_than_the_header_is_a_counted_skip(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text("review\nA great film, loved it\nJust fine\n")
    with pytest.warns(UserWarning, match=r"1 CSV row\(s\) with more fields.*reviews\.csv:2"):
        texts, _, _ = read_predict(path, "review", "label")
    assert texts == ["Just fine"]  # never "A great film" cut at the comma


def test_review_extensions_are_case_insensitive_and_others_counted(acl_imdb: Path) -> None:
    (acl_imdb / "train" / "pos" / "9996_10.TXT").write_text("An upper-case file, and a good film.")
    (acl_imdb / "train" / "pos" / "notes.md").write_text("not a review")
    report = ReadReport()
    splits = read_text_folders(acl_imdb, imdb.CLASS_NAMES, report)
    assert any(i.endswith("9996_10.TXT") for i in splits["train"].ids)
    assert [Path(p).name for p in report.not_text] == ["notes.md"]


def test_held_out_validation_keeps_the_class_balance(tmp_path: Path) -> None:
    rows = [("good", "pos")] * 4 + [("bad", "neg")] * 36
    data = ImdbDataModule(root=str(_write_csv(tmp_path / "r.csv", rows, ("text", "label"))))
    data.val_split = 0.25
    assert np.bincount(data.encoded.splits["val"].labels).tolist() == [9, 1]


def test_predicting_an_aclimdb_folder_keeps_its_labels(acl_imdb: Path) -> None:
    texts, ids, labels = read_predict(acl_imdb / "test", "text", "label")
    assert set(labels) == {0, 1}
    assert all(("pos" in i) == (label == 1) for i, label in zip(ids, labels, strict=True))
