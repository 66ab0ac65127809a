"""IMDB sentiment: a packed bidirectional LSTM over word embeddings, cross-entropy.

Metrics (the shared `ClassificationTask`'s): accuracy, macro F1, per-class precision and recall,
confusion matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from typing_extensions import override

from datamodules.tokens import PAD, UNK, Vocab, basic_english, pad_batch
from tasks.common import ARTIFACTS, ClassificationTask


class SentimentLSTM(nn.Module):
    """Embedding -> dropout -> (bi)LSTM over packed sequences -> last hidden states -> Linear.

    Packing runs each review only over its real tokens, so padding never reaches the LSTM and
    the last hidden state is the one after the last real word (in both directions).
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int = 2,
        embedding_dim: int = 300,
        hidden_dim: int = 300,
        num_layers: int = 2,
        bidirectional: bool = True,
        dropout: float = 0.5,
        pad_index: int = 0,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.lstm = nn.LSTM(
            embedding_dim,
            hidden_dim,
            num_layers,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_dim * (2 if bidirectional else 1), num_classes)

    @override
    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.dropout(self.embedding(ids))  # (B, T, E)
        packed = pack_padded_sequence(
            embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, (hidden, _) = self.lstm(packed)  # hidden: (layers * directions, B, H)
        if self.lstm.bidirectional:  # the last layer's forward and backward states
            last = torch.cat([hidden[-2], hidden[-1]], dim=-1)  # (B, 2H)
        else:
            last = hidden[-1]
        return self.fc(self.dropout(last))  # (B, classes)


def load_word_vectors(path: str | Path, vocab: Vocab, embedding: nn.Embedding) -> float:
    """Copy vectors of a GloVe-format text file ("word v1 v2 ...") into `embedding`.

    Words are matched as the tokenizer writes them (lowercase). Returns the share of the
    vocabulary found; the others keep their random initialisation.
    """
    dim, found = embedding.embedding_dim, 0
    weight = embedding.weight.data
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            word, _, rest = line.rstrip().partition(" ")
            index = vocab.stoi.get(word)
            if index is None or index < 2:
                continue
            values = rest.split(" ")
            if len(values) != dim:
                raise ValueError(
                    f"{path}:{number}: {len(values)} values for {word!r}, but embedding_dim is "
                    f"{dim}. Set --model.init_args.embedding_dim {len(values)}."
                )
            weight[index] = torch.tensor([float(v) for v in values])
            found += 1
    share = found / max(len(vocab) - 2, 1)
    rank_zero_info(f"Word vectors from {path}: {found} of {len(vocab) - 2} tokens ({share:.1%})")
    return share


class ImdbSentimentTask(ClassificationTask):
    """Classify reviews as neg/pos with a packed bidirectional LSTM (defaults as the course).

    Loss, metrics and the confusion matrix are `ClassificationTask`'s. The vocabulary travels in
    the checkpoint (as an artifact, not a hyperparameter: a 100k-token list would be
    re-validated on every `--ckpt_path`): `predict_texts` and `zoo predict` tokenise raw text
    with it, so a checkpoint alone predicts.

    Args:
        vocab: The vocabulary (linked from the datamodule by `zoo`), or its tokens by id,
            `<pad>` and `<unk>` first. None only when a checkpoint is loaded next: it brings
            its own.
        class_names: Class names in label order (linked).
        max_length: Reviews are cut to this many tokens (linked).
        embedding_dim: Word embedding size.
        hidden_dim: LSTM hidden size per direction.
        num_layers: Stacked LSTM layers.
        bidirectional: Read reviews both ways.
        dropout: Dropout on embeddings, between LSTM layers and before the classifier.
        word_vectors: Optional GloVe-format text file to initialise the embeddings.
        optimizer: Optimizer factory, chosen in YAML.
        scheduler: Optional LR scheduler factory (stepped per epoch).
    """

    def __init__(
        self,
        vocab: Vocab | Sequence[str] | None = None,
        class_names: Sequence[str] = ("neg", "pos"),
        max_length: int = 256,
        embedding_dim: int = 300,
        hidden_dim: int = 300,
        num_layers: int = 2,
        bidirectional: bool = True,
        dropout: float = 0.5,
        word_vectors: str | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        if not isinstance(vocab, Vocab):
            vocab = Vocab(list(vocab) if vocab else [PAD, UNK])
        net = SentimentLSTM(
            len(vocab),
            len(class_names),
            embedding_dim,
            hidden_dim,
            num_layers,
            bidirectional,
            dropout,
        )
        no_images = (None, None, None, None)
        super().__init__(net, class_names, *no_images, None, None, 0.0, optimizer, scheduler)
        self.save_hyperparameters(ignore=["vocab", "optimizer", "scheduler"])
        self.vocab = vocab
        if word_vectors:
            load_word_vectors(word_vectors, self.vocab, self.net.embedding)

    @override
    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class probabilities (B, classes) for padded ids (B, T) and their lengths (B,)."""
        return self.net(ids, lengths).softmax(dim=-1)

    @override
    def _logits_and_labels(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(batch["ids"], batch["lengths"]), batch["label"]

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise and pad raw texts with this model's vocabulary and `max_length`."""
        samples = []
        for text in texts:
            ids = self.vocab.encode(basic_english(text)[: self.hparams.max_length]) or [1]
            samples.append((torch.tensor(ids), -1))
        return pad_batch(samples)

    @override
    def decode(self, ids: Sequence[int]) -> str:
        """The words of token ids, as the model saw them (lower-cased, `<unk>` for unknown)."""
        return " ".join(self.vocab.itos[i] for i in ids)

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The trained embeddings are in the checkpoint: loading it must not need the vector file.
        checkpoint["hyper_parameters"]["word_vectors"] = None
        checkpoint.setdefault(ARTIFACTS, {})["vocab"] = self.vocab.itos

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # `load_from_checkpoint` builds the task without a vocabulary: install the checkpoint's
        # (and an embedding of its size) before the weights are loaded. Checkpoints of zoo 0.1
        # kept it in the hyperparameters.
        saved = checkpoint.get(ARTIFACTS, {}).get("vocab")
        vocab = list(saved if saved is not None else checkpoint["hyper_parameters"]["vocab"])
        if vocab != self.vocab.itos:
            self.vocab = Vocab(vocab)
            self.net.embedding = nn.Embedding(
                len(vocab), self.hparams.embedding_dim, padding_idx=0
            ).to(self.device)
