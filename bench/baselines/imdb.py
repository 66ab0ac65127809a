"""The course's IMDB BiLSTM script (course notes 004, line 5039): basic_english tokens, a
vocabulary of every training token, reviews padded to 256, batch 8, 2 x 300 bidirectional LSTM,
dropout 0.5, Adam 5e-4. Same split as the zoo: 5% of train held out with seed 0.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch


def baseline(root: str, epochs: int, seed: int = 0) -> tuple[list[float], float]:
    """The course's IMDB BiLSTM script, on the zoo's split (5% of train held out, seed 0)."""
    from datamodules.imdb import CLASS_NAMES, parse_label
    from datamodules.text_table import ReadReport, hold_out, read_labelled_texts
    from datamodules.tokens import Vocab, basic_english

    torch.manual_seed(seed)
    start = time.perf_counter()  # reading and tokenising count, as in the zoo's fit
    raw, _ = read_labelled_texts(
        Path(root), "text", "label", parse_label, CLASS_NAMES, ReadReport()
    )
    splits = hold_out(raw, 0.05, 0)
    tokens = {name: [basic_english(t) for t in split.texts] for name, split in splits.items()}
    vocab = Vocab.build(tokens["train"])  # every training token, as build_vocab_from_iterator

    def batches(name: str, shuffle: bool) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(tokens[name])).tolist() if shuffle else range(len(tokens[name]))
        out = []
        items = [(vocab.encode(tokens[name][i])[:256], splits[name].labels[i]) for i in order]
        for b in range(0, len(items), 8):
            chunk = items[b : b + 8]
            ids = torch.tensor([(x + [0] * 256)[:256] for x, _ in chunk])  # pad to 256
            lengths = torch.tensor([max(len(x), 1) for x, _ in chunk])
            out.append((ids, lengths, torch.tensor([y for _, y in chunk])))
        return out

    class LSTM(torch.nn.Module):
        def __init__(self, vocab_size: int) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab_size, 300, padding_idx=0)
            self.lstm = torch.nn.LSTM(
                300, 300, 2, bidirectional=True, dropout=0.5, batch_first=True
            )
            self.fc = torch.nn.Linear(600, 2)
            self.dropout = torch.nn.Dropout(0.5)

        def forward(self, ids: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
            embedded = self.dropout(self.embedding(ids))
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                embedded, length, batch_first=True, enforce_sorted=False
            )
            _, (hidden, _) = self.lstm(packed)
            return self.fc(self.dropout(torch.cat([hidden[-1], hidden[-2]], dim=-1)))

    model = LSTM(len(vocab))
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    val = batches("val", shuffle=False)
    scores = []
    for _ in range(epochs):
        model.train()
        for ids, lengths, labels in batches("train", shuffle=True):
            loss = torch.nn.functional.cross_entropy(model(ids, lengths), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            right = sum((model(i, n).argmax(-1) == y).sum().item() for i, n, y in val)
        scores.append(right / sum(len(y) for _, _, y in val))
        elapsed = time.perf_counter() - start
        print(
            f"baseline epoch {len(scores)}: val acc {scores[-1]:.3f}, {elapsed:.0f} s", flush=True
        )
    return scores, time.perf_counter() - start
