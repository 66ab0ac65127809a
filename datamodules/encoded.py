"""Tokenised splits as flat id arrays plus offsets, cached on disk as a whole.

A second run with unchanged data and settings reads the cache instead of tokenising.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import Dataset

from datamodules.text_table import TextSplit
from datamodules.tokens import Vocab

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def fingerprint_files(paths: Iterable[Path]) -> list[Any]:
    """Path, size and modification time of each file: changes when the data changes."""
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(paths)]


def folder_fingerprint(name: str) -> list[Any] | None:
    """`fingerprint_files` of a local folder's files; None for a hub name."""
    local = Path(name).expanduser()
    return fingerprint_files(p for p in local.rglob("*") if p.is_file()) if local.is_dir() else None


@dataclass
class EncodedSplit:
    """All reviews of a split as one flat id array plus offsets: compact and fast to cache."""

    ids: np.ndarray  # (total tokens,) int32
    offsets: np.ndarray  # (N + 1,) int64
    labels: np.ndarray  # (N,) int64 class ids, or (N, C) float32 multi-hot
    # (N,) token counts before truncation, when `ids` hold truncated texts (None: `offsets`' own)
    full_lengths: np.ndarray | None = None

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


def encode_texts(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    labels: np.ndarray,
    max_length: int,
    description: str = "Tokenising",
) -> EncodedSplit:
    """Tokenise with a fast tokenizer through `datasets.map(batched=True)` (progress bar).

    Texts are cut to `max_length` tokens by the tokenizer, so the special tokens stay; each text's
    length before the cut is kept in `full_lengths` for the audit.
    """
    import datasets
    import pyarrow.compute as pc

    def tokenise(batch: dict[str, list]) -> dict[str, list]:
        # A long text comes back as several windows: keep the first, count the others' tokens.
        encoded = tokenizer(
            batch["text"], truncation=True, max_length=max_length, return_overflowing_tokens=True
        )
        specials = tokenizer.num_special_tokens_to_add()
        ids: list[list[int]] = []
        lengths: list[int] = []
        for row, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            window = encoded["input_ids"][row]
            if sample == len(ids):  # the first window of a text
                ids.append(window)
                lengths.append(len(window))
            else:
                lengths[sample] += len(window) - specials
        return {"input_ids": ids, "length": lengths}

    table = datasets.Dataset.from_dict({"text": list(texts)})
    table = table.map(tokenise, batched=True, desc=description, remove_columns=["text"])
    column = table.data.column("input_ids").combine_chunks()
    offsets = np.zeros(len(table) + 1, np.int64)
    np.cumsum(pc.list_value_length(column).to_numpy(), out=offsets[1:])
    flat = column.flatten().to_numpy().astype(np.int32)
    return EncodedSplit(flat, offsets, labels, np.asarray(table["length"], np.int64))


def save_cache(
    folder: Path,
    splits: dict[str, EncodedSplit],
    tokenizer: PreTrainedTokenizerBase,
    meta: dict[str, Any],
) -> None:
    """Write splits, tokenizer and `meta` (JSON) as one cache folder.

    Written to a temporary folder, then renamed: concurrent runs never see half a cache.
    """
    import shutil

    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for name, split in splits.items():
        arrays = {k: v for k, v in vars(split).items() if v is not None}
        np.savez(tmp / f"{name}.npz", **arrays)
    tokenizer.save_pretrained(tmp / "tokenizer")
    (tmp / "meta.json").write_text(json.dumps(meta))  # written last: marks a complete cache
    try:
        tmp.rename(folder)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)


def load_cache(
    folder: Path, tokenizer: PreTrainedTokenizerBase | None = None
) -> tuple[dict[str, EncodedSplit], PreTrainedTokenizerBase, dict[str, Any]]:
    """Read what `save_cache` wrote; `tokenizer` (a checkpoint's) replaces the saved one."""
    from datamodules.subwords import load_tokenizer

    splits = {}
    for path in folder.glob("*.npz"):
        with np.load(path) as data:
            splits[path.stem] = EncodedSplit(**data)
    if tokenizer is None:
        tokenizer = load_tokenizer(str(folder / "tokenizer"))
    return splits, tokenizer, json.loads((folder / "meta.json").read_text())


def vocab_digest(vocab: Vocab | None) -> str | None:
    """A short fingerprint of a vocabulary (None stays None)."""
    if vocab is None:
        return None
    return hashlib.sha1("\n".join(vocab.itos).encode()).hexdigest()[:16]


def cache_folder(cache_dir: Path, settings: dict[str, Any]) -> Path:
    """Where the data built with `settings` is cached: a short hash of them under `cache_dir`."""
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / key


def default_cache_dir(name: str) -> Path:
    """`$XDG_CACHE_HOME/lightning-task-zoo/<name>` (default `~/.cache/...`)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lightning-task-zoo" / name


class EncodedDataset(Dataset):
    """Samples `(ids (T,) int64, label)` of an `EncodedSplit`, cut to `max_length` tokens."""

    def __init__(self, split: EncodedSplit, max_length: int) -> None:
        self.split = split
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.split.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        start, end = self.split.offsets[index], self.split.offsets[index + 1]
        ids = self.split.ids[start : min(end, start + self.max_length)]
        if len(ids) == 0:
            ids = np.array([1], np.int32)  # a text of unknown words only still gets one step
        return torch.from_numpy(ids.astype(np.int64)), self.split.labels[index].tolist()


@rank_zero_only
def print_audit(
    title: str,
    splits: dict[str, EncodedSplit],
    class_names: Sequence[str],
    max_length: int,
    footer: str,
    unk_id: int | None = 1,
) -> None:
    """Texts per class and split, lengths, the share over `max_length`, unknown-token rates.

    Lengths are those before truncation. Multi-label splits count texts per class (a text with
    two labels counts twice).
    """
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Data audit: {title}", title_justify="left")
    columns = ["split", "texts", *class_names, "median tokens", "p95 tokens", f"> {max_length}"]
    for column in [*columns, *(["<unk>"] if unk_id is not None else [])]:
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, data in splits.items():
        lengths = np.diff(data.offsets) if data.full_lengths is None else data.full_lengths
        if not class_names:  # unlabelled texts (summarization)
            counts = []
        elif data.labels.ndim == 2:
            counts = data.labels.sum(axis=0).astype(int)
        else:
            counts = np.bincount(data.labels, minlength=len(class_names))
        row = [
            split,
            str(len(lengths)),
            *(str(c) for c in counts),
            f"{np.median(lengths):.0f}" if len(lengths) else "-",
            f"{np.percentile(lengths, 95):.0f}" if len(lengths) else "-",
            f"{(lengths > max_length).mean():.1%}" if len(lengths) else "-",
        ]
        if unk_id is not None:
            row.append(f"{float((data.ids == unk_id).mean()) if len(data.ids) else 0.0:.2%}")
        table.add_row(*row)
    console = Console()
    console.print(table)
    if footer:
        console.print(footer)
