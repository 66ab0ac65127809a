"""Word-level tokens, shared by text data and text tasks: tokenizer, vocabulary, batches.

Text becomes tokens by torchtext's `basic_english` rules, tokens become ids through a
vocabulary built on a training split; batches are padded per batch and grouped by length.
No Lightning here: the IMDB datamodule and `ImdbSentimentTask` both import it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from datamodules.samplers import ShuffleSampler

PAD, UNK = "<pad>", "<unk>"  # ids 0 and 1
LABEL_PAD = -100  # label padding that cross-entropy skips (summaries: padded target tokens)

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


def pad_batch(
    samples: list[tuple[torch.Tensor, Any]], pad_to: int | None = None, pad_id: int = 0
) -> dict[str, torch.Tensor]:
    """Pad to the longest text in the batch (or to `pad_to`) with `pad_id` (`<pad>` is 0).

    Returns ids (B, T), lengths (B,) and labels: (B,) class ids, or (B, C) multi-hot.
    """
    ids = [s[0] for s in samples]
    width = pad_to or max(len(i) for i in ids)
    batch = torch.full((len(ids), width), pad_id, dtype=torch.long)
    for row, tokens in enumerate(ids):
        batch[row, : len(tokens)] = tokens
    return {
        "ids": batch,
        "lengths": torch.tensor([len(i) for i in ids]),
        "label": torch.tensor([s[1] for s in samples]),
    }


class LengthBucketSampler(ShuffleSampler):
    """Shuffled indices in which each run of `batch_size` has similar lengths: less padding.

    Every epoch: shuffle, cut into chunks of `batch_size * bucket_batches`, sort each chunk by
    length, cut into batches, shuffle the batches (the one short batch goes last, so DataLoader
    batches line up with ours). The order depends on `(seed, epoch)` (`ShuffleSampler`: the
    same after a resume, which can start mid-epoch).

    Under DDP (`num_replicas` > 1) every rank draws the same batches and takes every
    `num_replicas`-th full one, wrapping round so all ranks run the same number of steps: whole
    buckets are dealt out, not single indices.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        bucket_batches: int = 50,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        super().__init__(len(lengths), seed, num_replicas, rank)
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.bucket_batches = bucket_batches

    def __len__(self) -> int:
        if self.num_replicas == 1:
            return len(self.lengths)
        return sum(len(batch) for batch in self._shard(self._batches(self._rng())))

    def _order(self, rng: np.random.Generator) -> list[int]:
        batches = self._batches(rng)
        if self.num_replicas > 1:
            batches = self._shard(batches)
        return [i for batch in batches for i in batch.tolist()]

    def _batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        """This epoch's batches: full ones shuffled, then the one short batch, if any."""
        order = rng.permutation(len(self.lengths))
        chunk = self.batch_size * self.bucket_batches
        batches = []
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        short = [b for b in batches if len(b) < self.batch_size]
        full = [b for b in batches if len(b) == self.batch_size]
        return [full[i] for i in rng.permutation(len(full))] + short

    def _shard(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """This rank's batches: full batches dealt round-robin, padded by wrapping round.

        Training drops a short last batch anyway; it is kept only when it is all there is.
        """
        pool = [b for b in batches if len(b) == self.batch_size] or batches
        per_rank = -(-len(pool) // self.num_replicas)
        padded = [pool[i % len(pool)] for i in range(per_rank * self.num_replicas)]
        return padded[self.rank :: self.num_replicas]
