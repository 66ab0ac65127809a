"""IMDB sentiment data: aclImdb folders, a CSV, Hugging Face `imdb`, or synthetic reviews.

Text becomes tokens by torchtext's `basic_english` rules, tokens become ids through a vocabulary
built on the training split. Encoded splits are cached on disk, keyed by the data and the
vocabulary settings, so a second run starts without tokenising.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from torch.utils.data import DataLoader, Dataset, Sampler

from datamodules.common import (
    check_model_classes,
    labels_from_folders,
    make_loader,
    stratified_split,
)

CLASS_NAMES = ("neg", "pos")
PAD, UNK = "<pad>", "<unk>"  # ids 0 and 1
LABELS = {"neg": 0, "negative": 0, "0": 0, "pos": 1, "positive": 1, "1": 1}
CACHE_VERSION = 2  # bump when the tokenizer, the readers, the split or the cache layout change

# --- tokenizer and vocabulary ------------------------------------------------------------------

# torchtext's basic_english runs 12 regex substitutions in order. Each pattern but the last is a
# literal string, so the same replacements as `str.replace` calls, in the same order, give the
# same text; `split()` does the last one (whitespace runs). About 2.5x faster than the regexes.
_RULES = (("'", " '  "), ('"', ""), (".", " . "), ("<br />", " "), (",", " , "), ("(", " ( "),
          (")", " ) "), ("!", " ! "), ("?", " ? "), (";", " "), (":", " "))  # fmt: skip


# torchtext.data.utils._basic_english_normalize's patterns, verbatim: the reference.
_TORCHTEXT = [
    (re.compile(pattern), replacement)
    for pattern, replacement in zip(
        [r"\'", r"\"", r"\.", r"<br \/>", r",", r"\(", r"\)", r"\!", r"\?", r"\;", r"\:", r"\s+"],
        [" '  ", "", " . ", " ", " , ", " ( ", " ) ", " ! ", " ? ", " ", " ", " "],
        strict=True,
    )
]


def basic_english_regex(text: str) -> list[str]:
    """Torchtext's own implementation, regex by regex: the reference `basic_english` matches."""
    text = text.lower()
    for pattern, replacement in _TORCHTEXT:
        text = pattern.sub(replacement, text)
    return text.split()


def basic_english(text: str) -> list[str]:
    """Tokenise like torchtext's `basic_english`: lowercase, its 12 substitutions, split."""
    text = text.lower()
    for old, new in _RULES:
        text = text.replace(old, new)
    return text.split()


@dataclass
class Vocab:
    """Token <-> id; `<pad>` is 0, `<unk>` is 1, then tokens by falling frequency (ties A-Z)."""

    itos: list[str]
    stoi: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.itos[:2] != [PAD, UNK]:
            raise ValueError(f"A vocabulary starts with {PAD!r}, {UNK!r}; got {self.itos[:2]}")
        self.stoi = {token: i for i, token in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(
        cls, token_lists: Iterable[list[str]], min_freq: int = 1, max_size: int | None = None
    ) -> Vocab:
        """Count tokens (of the training split) and keep those seen at least `min_freq` times.

        At most `max_size` entries including the two specials (torchtext's `max_tokens`).
        """
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        for special in (PAD, UNK):
            counts.pop(special, None)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = [token for token, count in ranked if count >= min_freq]
        if max_size is not None:
            kept = kept[: max(0, max_size - 2)]
        return cls([PAD, UNK, *kept])

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of `tokens`, 1 (`<unk>`) for unknown ones."""
        get = self.stoi.get
        return [get(token, 1) for token in tokens]


# --- demo source: synthetic reviews whose sentiment needs word order ----------------------------

_POSITIVE = ("good", "great", "wonderful", "brilliant", "moving", "funny", "gripping", "superb",
             "charming", "clever", "beautiful", "memorable")  # fmt: skip
_NEGATIVE = ("bad", "boring", "awful", "dull", "clumsy", "terrible", "predictable", "weak",
             "silly", "painful", "forgettable", "messy")  # fmt: skip
_INTENSIFIERS = ("very", "really", "truly", "extremely", "incredibly")
_SUBJECTS = ("the film", "the movie", "the plot", "the acting", "the script", "the ending",
             "the soundtrack", "the cast", "the dialogue", "the pacing", "this picture",
             "the camera work")  # fmt: skip
_FILLERS = (
    "i saw it on a rainy sunday with two friends.",
    "it runs a little over two hours.",
    "the story follows a family in a small town by the sea.",
    'my sister called it "a classic" before we even started.',
    "there is a long scene in a train station (you will know it when you see it).",
    "the lead actor also made a war film the year before.",
    "we watched the director's cut on a big screen.",
    "it is based on a novel that i have not read.",
    "half the audience had popcorn; the other half had questions.",
    "the second act takes place in winter.",
    "some scenes were shot in black and white!",
    "my grandfather fell asleep twice, which tells you something about the hour.",
)


def _opinion(rng: np.random.Generator) -> tuple[str, int]:
    """One sentence with a sentiment word, maybe intensified (x2) and maybe negated (x-1)."""
    positive = rng.random() < 0.5
    adjective = str(rng.choice(_POSITIVE if positive else _NEGATIVE))
    weight = 1
    if rng.random() < 0.35:
        adjective = f"{rng.choice(_INTENSIFIERS)} {adjective}"
        weight = 2
    subject = str(rng.choice(_SUBJECTS))
    negated = rng.random() < 0.5
    if negated:
        form = rng.integers(4)
        text = (
            f"{subject} was not {adjective}.",
            f"{subject} isn't {adjective} at all.",
            f"i would never call {subject} {adjective}.",
            f"{subject} is far from {adjective}.",
        )[form]
    else:
        form = rng.integers(3)
        text = (
            f"{subject} was {adjective}.",
            f"{subject} is {adjective}, no doubt.",
            f"i found {subject} {adjective}.",
        )[form]
    return text, weight * (1 if positive else -1) * (-1 if negated else 1)


def make_reviews(count: int, seed: int, mean_words: float = 60.0) -> tuple[list[str], list[int]]:
    """`count` synthetic reviews (text, label 0 neg / 1 pos), seeded.

    A review mixes opinion sentences with neutral filler; its label is the sign of the summed
    opinions, where "very" doubles a sentence's weight and "not"/"never"/"isn't"/"far from" flip
    it. Positive and negative words, negations and intensifiers are equally common in both
    classes, so counting words gives chance accuracy: a model must read "not good" as negative.
    Lengths are spread around `mean_words` (IMDB reviews average ~230).
    """
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    while len(texts) < count:
        opinions = [_opinion(rng) for _ in range(rng.integers(1, 4) * 2 - 1)]  # 1, 3 or 5
        score = sum(weight for _, weight in opinions)
        if score == 0:
            continue
        words = max(8.0, rng.gamma(2.0, mean_words / 2.0))  # long-tailed, like real reviews
        fillers = [str(rng.choice(_FILLERS)) for _ in range(int(words / 10))]
        sentences = [text for text, _ in opinions] + fillers
        order = rng.permutation(len(sentences))
        text = " ".join(sentences[i] for i in order)
        if rng.random() < 0.3:
            text = text.replace(". ", ".<br /><br />", 1)  # IMDB's line breaks
        texts.append(text[0].upper() + text[1:])
        labels.append(int(score > 0))
    return texts, labels


# --- reading: aclImdb folders, CSV, Hugging Face ------------------------------------------------


@dataclass
class TextSplit:
    """Raw texts and labels of one split, and where each came from (file or row)."""

    texts: list[str]
    labels: list[int]
    ids: list[str]


@dataclass
class ReadReport:
    """Counted problems: nothing is dropped silently."""

    empty: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # non-UTF-8 bytes decoded with U+FFFD
    extra_fields: list[str] = field(default_factory=list)  # CSV rows longer than the header
    not_text: list[str] = field(default_factory=list)  # files in review folders that aren't .txt

    def warn(self, where: str) -> None:
        """One warning per kind, with counts and the first few sources."""
        for what, items in (
            ("empty review(s) skipped", self.empty),
            ("text(s) had non-UTF-8 bytes, decoded with replacement characters", self.replaced),
            (
                "CSV row(s) with more fields than the header skipped (an unquoted comma? quote "
                "the text, or give a .txt file with one review per line)",
                self.extra_fields,
            ),
            ("file(s) without a .txt extension skipped", self.not_text),
        ):
            if items:
                shown = ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")
                rank_zero_warn(f"{len(items)} {what} in {where}: {shown}")


def _decode(data: bytes, source: str, report: ReadReport) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        report.replaced.append(source)
        return data.decode("utf-8", errors="replace")


def _add(split: TextSplit, text: str, label: int, source: str, report: ReadReport) -> None:
    if text.strip():
        split.texts.append(text)
        split.labels.append(label)
        split.ids.append(source)
    else:
        report.empty.append(source)


def read_aclimdb(root: Path, report: ReadReport) -> dict[str, TextSplit]:
    """`root/{train,test}/{neg,pos}/*.txt` (the `unsup` folder is ignored)."""
    splits = {}
    for split in ("train", "test"):
        if not (root / split).is_dir():
            if split == "train":
                raise FileNotFoundError(
                    f"{root} has no train/ folder: expected train/pos, train/neg."
                )
            continue
        data = TextSplit([], [], [])
        for label, name in enumerate(CLASS_NAMES):
            folder = root / split / name
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"Missing {folder}: aclImdb keeps reviews in {split}/neg/ and {split}/pos/."
                )
            for path in text_files(folder, report):
                _add(data, _decode(path.read_bytes(), str(path), report), label, str(path), report)
        splits[split] = data
    return splits


def text_files(
    folder: Path, report: ReadReport | None = None, recursive: bool = False
) -> list[Path]:
    """The `.txt` files of `folder` (any case: `.TXT` too), sorted; others counted in `report`."""
    files, others = [], []
    for path in sorted(folder.rglob("*") if recursive else folder.iterdir()):
        if path.is_file():
            (files if path.suffix.lower() == ".txt" else others).append(path)
    if report is not None:
        report.not_text += [str(p) for p in others if not p.name.startswith(".")]
    return files


def _label(value: Any, source: str) -> int:
    key = str(value).strip().lower()
    if key not in LABELS:
        raise ValueError(
            f"{source}: unknown label {value!r}. Use one of pos/neg, positive/negative or 1/0 "
            "(or point label_column at the right column)."
        )
    return LABELS[key]


def read_csv(
    path: Path, text_column: str, label_column: str, report: ReadReport, labelled: bool = True
) -> TextSplit:
    """A CSV with a text and a label column (names configurable).

    With `labelled=False` the label column is optional: without it every label is -1.
    """
    text = _decode(path.read_bytes(), str(path), report)
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    has_labels = label_column in columns
    required = (text_column, label_column) if labelled else (text_column,)
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValueError(
            f"{path} has no column(s) {missing}; its columns are {reader.fieldnames}. Set "
            "--data.init_args.text_column / --data.init_args.label_column."
        )
    data = TextSplit([], [], [])
    for row in reader:
        source = f"{path}:{reader.line_num}"
        if None in row:  # DictReader keeps fields beyond the header under the key None
            report.extra_fields.append(source)
            continue
        label = _label(row[label_column], source) if has_labels else -1
        _add(data, row[text_column] or "", label, source, report)
    return data


def read_hf(
    name: str, text_column: str, label_column: str, report: ReadReport
) -> dict[str, TextSplit]:
    """A Hugging Face dataset (hub name or local copy) with train/test splits, e.g. `imdb`."""
    import datasets

    try:
        loaded = datasets.load_dataset(name)
    except (ConnectionError, FileNotFoundError, ValueError) as error:
        raise FileNotFoundError(
            f"Could not load the Hugging Face dataset {name!r}: {error}. Offline, it must be in "
            "the datasets cache (HF_HOME) or a local folder in the hub's layout."
        ) from error
    splits = {}
    for split in ("train", "validation", "test"):
        if split not in loaded:
            continue
        part = loaded[split]
        missing = [c for c in (text_column, label_column) if c not in part.column_names]
        if missing:
            raise ValueError(
                f"{name} [{split}] has no column(s) {missing}; its columns are "
                f"{part.column_names}. Set text_column / label_column."
            )
        data = TextSplit([], [], [])
        for i, (text, label) in enumerate(zip(part[text_column], part[label_column], strict=True)):
            source = f"{name}[{split}][{i}]"
            _add(data, text or "", _label(label, source), source, report)
        splits["val" if split == "validation" else split] = data
    if "train" not in splits:
        raise ValueError(f"{name} has no train split (splits: {list(loaded)}).")
    return splits


def _fingerprint_files(paths: Iterable[Path]) -> list[Any]:
    """Path, size and modification time of each file: changes when the data changes."""
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(paths)]


# --- encoded splits, bucketing, batches --------------------------------------------------------


@dataclass
class EncodedSplit:
    """All reviews of a split as one flat id array plus offsets: compact and fast to cache."""

    ids: np.ndarray  # (total tokens,) int32
    offsets: np.ndarray  # (N + 1,) int64
    labels: np.ndarray  # (N,) int64

    @classmethod
    def encode(
        cls, vocab: Vocab, token_lists: Iterable[list[str]], labels: Sequence[int]
    ) -> EncodedSplit:
        """Encode tokenised reviews."""
        encoded = [vocab.encode(tokens) for tokens in token_lists]
        offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        flat = np.fromiter((i for e in encoded for i in e), np.int32, count=int(offsets[-1]))
        return cls(flat, offsets, np.asarray(labels, np.int64))

    def lengths(self, max_length: int) -> np.ndarray:
        """Token counts after truncation (at least 1: an LSTM needs one step)."""
        return np.clip(np.diff(self.offsets), 1, max_length)


class _ReviewDataset(Dataset):
    def __init__(self, split: EncodedSplit, max_length: int) -> None:
        self.split = split
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.split.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        start, end = self.split.offsets[index], self.split.offsets[index + 1]
        ids = self.split.ids[start : min(end, start + self.max_length)]
        if len(ids) == 0:
            ids = np.array([1], np.int32)  # a review of unknown words only still gets one step
        return torch.from_numpy(ids.astype(np.int64)), int(self.split.labels[index])


class _TextDataset(Dataset):
    """Raw texts for prediction (the task tokenises them with its own vocabulary)."""

    def __init__(self, texts: Sequence[str], ids: Sequence[str], labels: Sequence[int]) -> None:
        self.texts, self.ids, self.labels = list(texts), list(ids), list(labels)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"text": self.texts[index], "id": self.ids[index], "label": self.labels[index]}


def pad_batch(
    samples: list[tuple[torch.Tensor, int]], pad_to: int | None = None
) -> dict[str, torch.Tensor]:
    """Pad to the longest review in the batch (or to `pad_to`): ids (B, T), lengths, labels."""
    ids = [s[0] for s in samples]
    width = pad_to or max(len(i) for i in ids)
    batch = torch.zeros(len(ids), width, dtype=torch.long)  # 0 is <pad>
    for row, tokens in enumerate(ids):
        batch[row, : len(tokens)] = tokens
    return {
        "ids": batch,
        "lengths": torch.tensor([len(i) for i in ids]),
        "label": torch.tensor([s[1] for s in samples]),
    }


def _collate_texts(samples: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {key: [s[key] for s in samples] for key in samples[0]}


class LengthBucketSampler(Sampler[int]):
    """Shuffled indices in which each run of `batch_size` has similar lengths: less padding.

    Every epoch: shuffle, cut into chunks of `batch_size * bucket_batches`, sort each chunk by
    length, cut into batches, shuffle the batches (the one short batch goes last, so DataLoader
    batches line up with ours). Under DDP, Lightning's sampler wrapper deals the indices out
    round-robin, which keeps neighbours of similar length together on each rank.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, bucket_batches: int = 50, seed: int = 0
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.bucket_batches = bucket_batches
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1
        order = rng.permutation(len(self.lengths))
        chunk = self.batch_size * self.bucket_batches
        batches = []
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        short = [b for b in batches if len(b) < self.batch_size]
        full = [b for b in batches if len(b) == self.batch_size]
        for i in rng.permutation(len(full)):
            yield from full[i].tolist()
        for batch in short:
            yield from batch.tolist()


# --- the datamodule ----------------------------------------------------------------------------


@dataclass
class Encoded:
    """What setup needs, cached on disk as a whole: vocabulary, encoded splits, val texts."""

    vocab: Vocab
    splits: dict[str, EncodedSplit]
    val_texts: TextSplit  # raw, for predicting the validation split
    description: str

    def save(self, folder: Path) -> None:
        """Write to a temporary folder, then rename: concurrent runs never see half a cache."""
        tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for name, split in self.splits.items():
            np.savez(tmp / f"{name}.npz", ids=split.ids, offsets=split.offsets, labels=split.labels)
        meta = {"vocab": self.vocab.itos, "description": self.description}
        val = {
            "texts": self.val_texts.texts,
            "labels": self.val_texts.labels,
            "ids": self.val_texts.ids,
        }
        (tmp / "val_texts.json").write_text(json.dumps(val))
        (tmp / "meta.json").write_text(json.dumps(meta))  # written last: marks a complete cache
        try:
            tmp.rename(folder)
        except OSError:  # another process finished first
            for path in tmp.iterdir():
                path.unlink()
            tmp.rmdir()

    @classmethod
    def load(cls, folder: Path) -> Encoded:
        """Read a cache written by `save`."""
        meta = json.loads((folder / "meta.json").read_text())
        splits = {}
        for path in folder.glob("*.npz"):
            with np.load(path) as data:
                splits[path.stem] = EncodedSplit(data["ids"], data["offsets"], data["labels"])
        val = json.loads((folder / "val_texts.json").read_text())
        return cls(Vocab(meta["vocab"]), splits, TextSplit(**val), meta["description"])


def _digest(vocab: Vocab | None) -> str | None:
    """A short fingerprint of a vocabulary (None stays None)."""
    if vocab is None:
        return None
    return hashlib.sha1("\n".join(vocab.itos).encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/lightning-task-zoo/imdb` (default `~/.cache/...`)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lightning-task-zoo" / "imdb"


class ImdbDataModule(LightningDataModule):
    """Reviews labelled neg/pos, tokenised with `basic_english`, padded per batch.

    Training batches are dicts: "ids" (B, T) int64 padded with 0 to the longest review in the
    batch (T <= `max_length`), "lengths" (B,), "label" (B,). Prediction batches hold raw "text",
    "id" and "label" (-1 when unknown): the task tokenises with the vocabulary in its checkpoint.

    Args:
        root: aclImdb folder (`train/{neg,pos}/*.txt`, `test/...`), a CSV file, or a folder with
            `train.csv` (and optionally `val.csv`, `test.csv`); unset (and no `hf_dataset`) for
            synthetic demo reviews.
        hf_dataset: A Hugging Face dataset name or local copy, e.g. `stanfordnlp/imdb`.
        text_column: CSV / Hugging Face column holding the review.
        label_column: Column holding the label: pos/neg, positive/negative or 1/0.
        max_length: Reviews are cut to this many tokens (the course used 256).
        min_freq: Tokens seen fewer times in the training split map to `<unk>`.
        max_vocab: At most this many vocabulary entries, specials included (None: all).
        batch_size: Reviews per batch.
        num_workers: DataLoader worker processes.
        val_split: Share of train held out for validation when there is no val split.
        seed: Seed of that split, of the bucketing and of the demo reviews.
        bucketing: Batch reviews of similar length together (less padding, faster epochs).
        fixed_padding: Pad every batch to `max_length`, as the course did (for comparison).
        predict_path: Reviews to classify: a .txt file (one per line), a .csv (`text_column`),
            or a folder of .txt files; unset to predict the validation split.
        cache_dir: Where tokenised data is cached (default `~/.cache/lightning-task-zoo/imdb`).
        cache: Read and write that cache.
        demo_reviews: Training reviews in the demo (val and test get a quarter each).
        demo_mean_words: Mean length of demo reviews in words.
    """

    def __init__(
        self,
        root: str | None = None,
        hf_dataset: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        max_length: int = 256,
        min_freq: int = 1,
        max_vocab: int | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        val_split: float = 0.05,
        seed: int = 0,
        bucketing: bool = True,
        fixed_padding: bool = False,
        predict_path: str | None = None,
        cache_dir: str | None = None,
        cache: bool = True,
        demo_reviews: int = 4000,
        demo_mean_words: float = 60.0,
    ) -> None:
        super().__init__()
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if root and hf_dataset:
            raise ValueError("Set either root or hf_dataset, not both.")
        self.root = Path(root).expanduser() if root else None
        self.hf_dataset = hf_dataset
        self.text_column = text_column
        self.label_column = label_column
        self.max_length = max_length
        self.min_freq = min_freq
        self.max_vocab = max_vocab
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_split = val_split
        self.seed = seed
        self.bucketing = bucketing
        self.fixed_padding = fixed_padding
        self.predict_path = predict_path
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.cache = cache
        self.demo_reviews = demo_reviews
        self.demo_mean_words = demo_mean_words
        self.class_names = list(CLASS_NAMES)
        self.datasets: dict[str, Dataset] = {}
        self.model_facts: dict[str, Any] = {}
        self.model_vocab: Vocab | None = None

    def use_model_facts(self, facts: Mapping[str, Any]) -> None:
        """Read data the way a trained model expects (`zoo ... --ckpt_path` calls this).

        `facts` come from the checkpoint: its vocabulary (reviews are encoded with it, not with
        one built on this data), `max_length` and class names. Predicting `predict_path` reads
        nothing else.
        """
        self.model_facts = dict(facts)
        self.max_length = facts.get("max_length", self.max_length)
        self.model_vocab = Vocab(list(facts["vocab"])) if facts.get("vocab") else None

    @property
    def vocab(self) -> Vocab:
        """The vocabulary; `zoo` links it into the task, which saves it in its checkpoints.

        A `Vocab` object, not a token list: the CLI passes it on as is, where it would check
        a 100k-token list item by item.
        """
        if self.model_vocab is not None:
            return self.model_vocab
        return self.encoded.vocab

    @functools.cached_property
    def encoded(self) -> Encoded:
        """Tokenised, encoded splits: from the cache when the data and settings are unchanged."""
        settings = {
            "version": CACHE_VERSION,
            "data": self._fingerprint(),
            "min_freq": self.min_freq,
            "max_vocab": self.max_vocab,
            "val_split": self.val_split,
            "seed": self.seed,
            "model_vocab": _digest(self.model_vocab),
        }
        key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        folder = self.cache_dir / key
        if self.cache and (folder / "meta.json").is_file():
            rank_zero_info(f"Tokenised data from the cache {folder}")
            return Encoded.load(folder)
        encoded = self._build()
        if self.cache:
            encoded.save(folder)
            rank_zero_info(f"Cached the tokenised data in {folder}")
        return encoded

    def _fingerprint(self) -> list[Any]:
        """Changes whenever the data does (file sizes and times, or the demo's settings)."""
        if self.hf_dataset:  # a hub name is a fixed snapshot in the HF cache; a folder may change
            local = Path(self.hf_dataset)
            files = [p for p in local.rglob("*") if p.is_file()] if local.is_dir() else []
            return [
                "hf",
                self.hf_dataset,
                self.text_column,
                self.label_column,
                _fingerprint_files(files),
            ]
        if self.root is None:
            return ["demo", self.demo_reviews, self.demo_mean_words, self.seed]
        if not self.root.exists():
            raise FileNotFoundError(
                f"Data root {self.root} does not exist. Point --data.init_args.root at an aclImdb "
                "folder or a CSV, set hf_dataset, or leave both unset for demo data."
            )
        if self.root.is_file():
            files = [self.root]
        elif (self.root / "train").is_dir():  # what read_aclimdb reads (not unsup/: 50k files)
            folders = [
                self.root / split / name for split in ("train", "test") for name in CLASS_NAMES
            ]
            files = [path for folder in folders if folder.is_dir() for path in text_files(folder)]
        else:
            files = list(self.root.glob("*.csv"))
        return [
            "files",
            str(self.root),
            self.text_column,
            self.label_column,
            _fingerprint_files(files),
        ]

    def _read(self) -> tuple[dict[str, TextSplit], str]:
        report = ReadReport()
        if self.hf_dataset:
            splits = read_hf(self.hf_dataset, self.text_column, self.label_column, report)
            description = f"Hugging Face dataset {self.hf_dataset}"
        elif self.root is None:
            splits = {}
            sizes = (self.demo_reviews, self.demo_reviews // 4, self.demo_reviews // 4)
            for offset, (split, count) in enumerate(
                zip(("train", "val", "test"), sizes, strict=True)
            ):
                texts, labels = make_reviews(
                    max(count, 2), self.seed + offset, self.demo_mean_words
                )
                splits[split] = TextSplit(
                    texts, labels, [f"demo/{split}/{i}" for i in range(len(texts))]
                )
            description = "demo: synthetic reviews from templates (not IMDB), seeded"
        elif (self.root / "train").is_dir():
            splits = read_aclimdb(self.root, report)
            description = f"aclImdb folders under {self.root}"
        elif self.root.is_file() or (self.root / "train.csv").is_file():
            files = {"train": self.root} if self.root.is_file() else {
                split: self.root / f"{split}.csv" for split in ("train", "val", "test")
                if (self.root / f"{split}.csv").is_file()
            }  # fmt: skip
            splits = {
                split: read_csv(path, self.text_column, self.label_column, report)
                for split, path in files.items()
            }
            description = f"CSV {self.root}"
        else:
            raise FileNotFoundError(
                f"Cannot tell the layout of {self.root}: expected aclImdb folders "
                "(train/pos/*.txt, train/neg/*.txt), a CSV file, or a folder with train.csv."
            )
        report.warn(description)
        if not splits["train"].texts:
            raise ValueError(f"{description}: the training split has no reviews.")
        if "val" not in splits:
            train_idx, val_idx = stratified_split(splits["train"].labels, self.val_split, self.seed)
            train = splits["train"]
            pick = lambda idx: TextSplit(  # noqa: E731
                [train.texts[i] for i in idx],
                [train.labels[i] for i in idx],
                [train.ids[i] for i in idx],
            )
            splits["train"], splits["val"] = pick(train_idx), pick(val_idx)
        return splits, description

    def _build(self) -> Encoded:
        from rich.progress import track

        splits, description = self._read()
        tokens = {}
        quiet = rank_zero_only.rank != 0
        for split, data in splits.items():
            tokens[split] = [
                basic_english(text)
                for text in track(data.texts, f"Tokenising {split}", disable=quiet, transient=True)
            ]
        if self.model_vocab is not None:  # a checkpoint's: its ids are what the model learned
            vocab = self.model_vocab
        else:
            vocab = Vocab.build(tokens["train"], self.min_freq, self.max_vocab)
        encoded = {
            split: EncodedSplit.encode(vocab, tokens[split], splits[split].labels)
            for split in splits
        }
        return Encoded(vocab, encoded, splits["val"], description)

    def prepare_data(self) -> None:
        """Tokenise once (rank zero per node) and fill the cache that `setup` reads."""
        predicting_files = self.predict_path and self.trainer and self.trainer.predicting
        if self.cache and not predicting_files:
            _ = self.encoded

    def setup(self, stage: str) -> None:
        """Datasets for `stage`; the data audit is printed once."""
        if stage == "predict" and self.predict_path:  # only these texts: no training data
            texts, ids, labels = read_predict(
                Path(self.predict_path), self.text_column, self.label_column
            )
            self.datasets["predict"] = _TextDataset(texts, ids, labels)
            return
        if "class_names" in self.model_facts:
            check_model_classes(self.class_names, self.model_facts["class_names"], "IMDB data")
        encoded = self.encoded
        if not self.datasets:
            origin = "built on train" if self.model_vocab is None else "the checkpoint's"
            _print_audit(encoded, self.max_length, origin)
        for split, data in encoded.splits.items():
            self.datasets[split] = _ReviewDataset(data, self.max_length)
        if stage == "test" and "test" not in encoded.splits:
            rank_zero_warn("No test split: testing on the validation split.")
        if stage == "predict":
            val = encoded.val_texts
            self.datasets["predict"] = _TextDataset(val.texts, val.ids, val.labels)

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        # Only what `setup` built: Lightning's `__str__` calls every loader method.
        dataset = self.datasets[split]
        pad_to = self.max_length if self.fixed_padding else None
        sampler = None
        if train and self.bucketing and not self.fixed_padding:
            lengths = dataset.split.lengths(self.max_length)
            sampler = LengthBucketSampler(lengths, self.batch_size, seed=self.seed)
        collate = functools.partial(pad_batch, pad_to=pad_to)
        return make_loader(dataset, self.batch_size, self.num_workers, train, collate, sampler)

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches, length-bucketed unless `bucketing` is off."""
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches."""
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        """Test batches (the test split, or validation when there is none)."""
        return self._loader("test" if "test" in self.datasets else "val")

    def predict_dataloader(self) -> DataLoader:
        """Batches of raw texts."""
        return DataLoader(
            self.datasets["predict"], batch_size=self.batch_size, collate_fn=_collate_texts
        )


def read_predict(
    path: Path, text_column: str, label_column: str
) -> tuple[list[str], list[str], list[int]]:
    """Reviews to classify: a CSV, a text file with one review per line, or a folder of .txt files.

    A CSV keeps its labels when it has `label_column`. Empty reviews are counted and skipped.
    """
    report = ReadReport()
    if path.is_dir():
        files = text_files(path, report, recursive=True)
        if not files:
            raise FileNotFoundError(f"predict_path {path} holds no .txt files.")
        data = TextSplit([], [], [])
        labels = labels_from_folders(files, path, CLASS_NAMES)  # neg/, pos/: an aclImdb split
        for file, label in zip(files, labels, strict=True):
            _add(data, _decode(file.read_bytes(), str(file), report), label, str(file), report)
    elif path.suffix.lower() == ".csv":
        data = read_csv(path, text_column, label_column, report, labelled=False)
    elif path.is_file():
        data = TextSplit([], [], [])
        lines = _decode(path.read_bytes(), str(path), report).splitlines()
        for number, line in enumerate(lines, start=1):
            _add(data, line, -1, f"{path}:{number}", report)
    else:
        raise FileNotFoundError(f"predict_path {path} does not exist.")
    report.warn(str(path))
    if not data.texts:
        raise ValueError(f"predict_path {path} holds no reviews.")
    return data.texts, data.ids, data.labels


@rank_zero_only
def _print_audit(encoded: Encoded, max_length: int, vocab_origin: str) -> None:
    """Reviews per class and split, lengths, truncation and unknown-token rates."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Data audit: {encoded.description}", title_justify="left")
    for column in (
        "split",
        "reviews",
        "neg",
        "pos",
        "median tokens",
        "p95 tokens",
        f"> {max_length}",
        "<unk>",
    ):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, data in encoded.splits.items():
        lengths = np.diff(data.offsets)
        counts = np.bincount(data.labels, minlength=2)
        unknown = float((data.ids == 1).mean()) if len(data.ids) else 0.0
        table.add_row(
            split,
            str(len(lengths)),
            str(counts[0]),
            str(counts[1]),
            f"{np.median(lengths):.0f}",
            f"{np.percentile(lengths, 95):.0f}",
            f"{(lengths > max_length).mean():.1%}",
            f"{unknown:.2%}",
        )
    console = Console()
    console.print(table)
    console.print(f"vocabulary: {len(encoded.vocab)} tokens (with <pad>, <unk>), {vocab_origin}")
