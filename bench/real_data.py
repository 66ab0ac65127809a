"""Real data: the zoo against a course-style script, same sample, same split, same epochs.

For an application APP, trains in one run, on the same machine:

- the baseline: plain PyTorch written from the course notes (the course's architecture,
  optimizer, batch size, padding and defaults; no Lightning), on the same train/validation split
  the zoo's datamodule makes (its own reader and seeded hold-out are called for it);
- the zoo: `zoo fit -c configs/<app>.yaml --data.init_args.root ROOT --trainer.max_epochs N`,
  with nothing else changed;

and prints, for each, the validation metric after the last epoch and the best one, the wall time,
and the ratios. It asserts nothing.

Applications so far: imdb (the course's BiLSTM: basic_english tokens, a vocabulary of every
training token, reviews padded to 256, batch 8, 2 x 300 bidirectional LSTM, dropout 0.5, Adam
5e-4).

    python bench/real_data.py imdb --root ../shared/data/imdb_reviews --epochs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tasks.cli import cli

CONFIGS = Path(__file__).parents[1] / "configs"


def zoo_fit(app: str, root: str, epochs: int, extra: list[str]) -> tuple[list[float], float]:
    """`zoo fit` with only root and epochs set: validation metric per epoch, wall seconds."""
    from lightning.pytorch import Callback

    scores: list[float] = []

    class Record(Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: ANN001
            # After the epoch's validation (callbacks' validation hooks run before the task logs).
            scores.append(float(trainer.callback_metrics["val/acc"]))

    config = str(CONFIGS / f"{app}.yaml")
    args = ["-c", config, f"--data.init_args.root={Path(root).resolve()}"]  # run=False: no verb
    args += [f"--trainer.max_epochs={epochs}", "--trainer.logger=false", *extra]
    with tempfile.TemporaryDirectory(prefix="zoo-real-") as tmp:
        home = Path.cwd()
        os.chdir(tmp)
        try:
            built = cli(args, run=False)
            built.trainer.callbacks.append(Record())
            start = time.perf_counter()
            built.trainer.fit(built.model, datamodule=built.datamodule)
            seconds = time.perf_counter() - start
        finally:
            os.chdir(home)
    return scores, seconds


# ---------------------------------------------------------------- imdb


def imdb_baseline(root: str, epochs: int) -> tuple[list[float], float]:
    """The course's IMDB BiLSTM script, on the zoo's split (5% of train held out, seed 0)."""
    from datamodules.imdb import CLASS_NAMES, parse_label
    from datamodules.text_table import ReadReport, hold_out, read_labelled_texts
    from datamodules.tokens import Vocab, basic_english

    torch.manual_seed(0)
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
        print(f"baseline epoch {len(scores)}: val acc {scores[-1]:.3f}, {elapsed:.0f} s")
    return scores, time.perf_counter() - start


BASELINES = {"imdb": ("imdb_lstm", imdb_baseline)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", choices=sorted(BASELINES))
    parser.add_argument("--root", required=True, help="the real sample, e.g. ../shared/data/...")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--zoo-args", nargs="*", default=[], help="extra zoo overrides (tuning)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config, baseline = BASELINES[args.app]
    load = os.getloadavg()[0]
    results = {
        "course baseline": baseline(args.root, args.epochs),
        "zoo": zoo_fit(config, args.root, args.epochs, args.zoo_args),
    }
    print(f"\n{args.app}: {args.root}, {args.epochs} epochs, load average {load:.2f} at start")
    print(f"{'':<16}{'last val':>10}{'best val':>10}{'wall s':>9}   per epoch")
    for name, (scores, seconds) in results.items():
        per_epoch = " ".join(f"{s:.3f}" for s in scores)
        print(f"{name:<16}{scores[-1]:>10.3f}{max(scores):>10.3f}{seconds:>9.1f}   {per_epoch}")
    (base, base_s), (zoo, zoo_s) = results.values()
    last, best = 100 * (zoo[-1] - base[-1]), 100 * (max(zoo) - max(base))
    print(f"zoo - baseline: last {last:+.1f} points, best {best:+.1f} points; time "
          f"{zoo_s / base_s:.2f}x; median epoch metric {statistics.median(zoo):.3f} vs "
          f"{statistics.median(base):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
