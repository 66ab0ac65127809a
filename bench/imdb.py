"""IMDB sentiment: tokenizer pipelines, the on-disk cache, bucketing, and Trainer overhead.

Each part measures ours and a baseline side by side in one run, on the same corpus: synthetic
reviews from the demo generator at IMDB scale (`--reviews 25000 --words 230`). It prints tables
and ratios and asserts nothing.

- tokenize: vocabulary build + encoding of the whole corpus with
    (1) ours: torchtext's `basic_english` rules as literal `str.replace` calls in its order,
        plus `Counter`;
    (2) the 12 compiled regex substitutions torchtext runs, plus `Counter`;
    (3) Hugging Face `tokenizers`: normaliser rules equal to basic_english, whitespace split,
        WordLevel trainer, `encode_batch`.
  All three must produce the same tokens; the bench checks that on a sample. Then
  `ImdbDataModule` on the corpus written as a CSV: first run (read, tokenise, build, cache) vs
  a second run (the cache). Goal: >= 5x.
- epoch: one training epoch of the same model (`--hidden`) on `--epoch-reviews` reviews of
  `--epoch-words` words (shorter than IMDB's so that a few epochs on 2 cores learn something),
  with dynamic padding + length bucketing (ours) vs fixed padding to 256 and shuffled batches
  (the course), both with packed sequences; `--epochs` each, alternating, reporting the median
  epoch time and the validation accuracy after training. Goal: >= 1.5x faster at equal accuracy.
- step: training-step time of `ImdbSentimentTask` under a bare `Trainer` vs a plain loop over
  the same model and pre-built batches, alternating for `--repeats` rounds. Goal: <= 1.10x.

    python bench/imdb.py [--part all|tokenize|epoch|step] [--reviews 25000 --words 230]
"""

from __future__ import annotations

import argparse
import csv
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import datamodules.tokens as tokens
from datamodules.demo.reviews import make_reviews
from datamodules.encoded import EncodedSplit
from datamodules.imdb import ImdbDataModule
from datamodules.tokens import (
    LengthBucketSampler,
    Vocab,
    basic_english,
    basic_english_regex,
    pad_batch,
)


def counter_pipeline(texts: list[str], tokenize) -> tuple[Vocab, list[list[int]]]:  # noqa: ANN001
    tokens = [tokenize(t) for t in texts]
    vocab = Vocab.build(tokens)
    return vocab, [vocab.encode(t) for t in tokens]


def hf_pipeline(texts: list[str]) -> tuple[object, list[list[int]]]:
    """basic_english as a `tokenizers` pipeline: the same rules, in Rust."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    rules = [normalizers.Lowercase()] + [
        normalizers.Replace(Regex(p.pattern), r) for p, r in tokens._TORCHTEXT
    ]
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Sequence(rules)
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>"], show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer, [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def timed(fn, *args):  # noqa: ANN001, ANN201
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def part_tokenize(texts: list[str], labels: list[int]) -> None:
    print(f"\n== tokenize: vocabulary + encoding of {len(texts)} reviews")
    sample = texts[:300]
    from tokenizers import Tokenizer  # noqa: F401 - fail early if missing

    hf_tokenizer, _ = hf_pipeline(sample)
    hf_tokens = [e.tokens for e in hf_tokenizer.encode_batch(sample, add_special_tokens=False)]
    same = [basic_english(t) == basic_english_regex(t) for t in sample]
    same_hf = [a == basic_english(t) for a, t in zip(hf_tokens, sample, strict=True)]
    print(f"same tokens as torchtext's regexes on a sample: ours {np.mean(same):.0%}, "
          f"tokenizers {np.mean(same_hf):.0%}")  # fmt: skip
    results = {}
    for name, run in (
        ("ours (str.replace + Counter)", lambda: counter_pipeline(texts, basic_english)),
        ("12 regexes + Counter", lambda: counter_pipeline(texts, basic_english_regex)),
        ("tokenizers WordLevel", lambda: hf_pipeline(texts)),
    ):
        seconds, _ = timed(run)
        results[name] = seconds
        print(f"  {name:<28} {seconds:6.2f} s")
    ours = results["ours (str.replace + Counter)"]
    for name, seconds in results.items():
        print(f"  {name:<28} {seconds / ours:5.2f}x ours")

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reviews.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(zip(texts, ["pos" if y else "neg" for y in labels], strict=True))
        cache = Path(folder) / "cache"
        first, _ = timed(lambda: ImdbDataModule(root=str(path), cache_dir=str(cache)).encoded)
        second, _ = timed(lambda: ImdbDataModule(root=str(path), cache_dir=str(cache)).encoded)
        print(f"ImdbDataModule on a CSV: first run {first:.2f} s, cached run {second:.2f} s: "
              f"{first / second:.1f}x faster (goal >= 5x)")  # fmt: skip


def _net(vocab_size: int, hidden: int) -> torch.nn.Module:
    from tasks.imdb_lstm import SentimentLSTM

    torch.manual_seed(0)
    return SentimentLSTM(vocab_size, 2, hidden, hidden, 2, True, 0.2)


def _batches(split: EncodedSplit, order: list[int], size: int, pad_to: int | None) -> list:
    items = [
        (
            torch.from_numpy(
                split.ids[split.offsets[i] : split.offsets[i + 1]][:256].astype(np.int64)
            ),
            int(split.labels[i]),
        )
        for i in order
    ]
    return [pad_batch(items[i : i + size], pad_to) for i in range(0, len(items), size)]


def _accuracy(net: torch.nn.Module, batches: list) -> float:
    net.eval()
    with torch.no_grad():
        right = sum(
            (net(b["ids"], b["lengths"]).argmax(-1) == b["label"]).sum().item() for b in batches
        )
    net.train()
    return right / sum(len(b["label"]) for b in batches)


def part_epoch(texts: list[str], labels: list[int], args: argparse.Namespace) -> None:
    n = args.epoch_reviews
    print(f"\n== epoch: {n} training reviews, hidden {args.hidden}, batch {args.batch_size}")
    texts, labels = make_reviews(n + n // 5, seed=1, mean_words=args.epoch_words)
    tokens = [basic_english(t) for t in texts]
    vocab = Vocab.build(tokens[:n])
    train = EncodedSplit.encode(vocab, tokens[:n], labels[:n])
    val = EncodedSplit.encode(vocab, tokens[n:], labels[n : n + n // 5])
    lengths = train.lengths(256)
    print(f"tokens per review: median {np.median(np.diff(train.offsets)):.0f}, "
          f"{(np.diff(train.offsets) > 256).mean():.0%} longer than 256 (cut)")  # fmt: skip
    val_batches = _batches(val, list(range(len(val.labels))), 64, None)
    runs = {
        "ours: per-batch padding + buckets": lambda: LengthBucketSampler(
            lengths, args.batch_size, seed=0
        ),
        "course: pad to 256, shuffled": None,
    }
    nets = {name: _net(len(vocab), args.hidden) for name in runs}
    opts = {name: torch.optim.Adam(net.parameters(), 3e-3) for name, net in nets.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    rng = np.random.default_rng(0)
    samplers = {name: make() for name, make in runs.items() if make}
    for epoch in range(args.epochs):
        names = list(runs) if epoch % 2 == 0 else list(runs)[::-1]
        for name in names:
            if name in samplers:
                order, pad_to = list(samplers[name]), None
            else:
                order, pad_to = rng.permutation(n).tolist(), 256
            start = time.perf_counter()
            net, opt = nets[name], opts[name]
            for batch in _batches(train, order, args.batch_size, pad_to):
                loss = torch.nn.functional.cross_entropy(
                    net(batch["ids"], batch["lengths"]), batch["label"]
                )
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name in runs:
        accuracy = _accuracy(nets[name], val_batches)
        print(f"  {name:<36} epoch {medians[name]:6.1f} s   val acc {accuracy:.3f}")
    ours, course = medians.values()
    print(f"ours is {course / ours:.2f}x faster per epoch (goal >= 1.5x)")


def part_step(texts: list[str], labels: list[int], args: argparse.Namespace) -> None:
    from lightning.pytorch import Trainer

    from tasks.imdb_lstm import ImdbSentimentTask

    print(f"\n== step: Trainer vs a plain loop, hidden {args.hidden}, batch {args.batch_size}")
    tokens = [basic_english(t) for t in texts[:2000]]
    vocab = Vocab.build(tokens)
    split = EncodedSplit.encode(vocab, tokens, labels[:2000])
    order = list(LengthBucketSampler(split.lengths(256), args.batch_size, seed=0))
    batches = _batches(split, order, args.batch_size, None)[: args.steps]

    def plain() -> float:
        task = ImdbSentimentTask(
            vocab.itos, embedding_dim=args.hidden, hidden_dim=args.hidden, dropout=0.2
        )
        opt = torch.optim.Adam(task.parameters(), 3e-3)
        start = time.perf_counter()
        for batch in batches:
            loss = task.loss_fn(task.net(batch["ids"], batch["lengths"]), batch["label"])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    def zoo() -> float:
        task = ImdbSentimentTask(
            vocab.itos, embedding_dim=args.hidden, hidden_dim=args.hidden, dropout=0.2
        )
        task.optimizer = lambda params: torch.optim.Adam(params, 3e-3)
        trainer = Trainer(
            max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        )  # fmt: skip
        loader = torch.utils.data.DataLoader(batches, batch_size=None)
        start = time.perf_counter()
        trainer.fit(task, loader)
        return time.perf_counter() - start

    results: dict[str, list[float]] = {"plain": [], "zoo": []}
    for round_ in range(args.repeats):
        for name, fn in (
            (("plain", plain), ("zoo", zoo))
            if round_ % 2 == 0
            else (("zoo", zoo), ("plain", plain))
        ):
            torch.manual_seed(0)
            results[name].append(fn() / len(batches) * 1000)
    plain_ms, zoo_ms = (statistics.median(v) for v in results.values())
    print(f"  plain {plain_ms:.1f} ms/step, zoo {zoo_ms:.1f} ms/step: {zoo_ms / plain_ms:.3f}x "
          f"(goal <= 1.10; zoo includes Trainer setup over {len(batches)} steps)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "tokenize", "epoch", "step"], default="all")
    parser.add_argument("--reviews", type=int, default=25000, help="corpus size (IMDB: 25000)")
    parser.add_argument("--words", type=float, default=230.0, help="mean words per review")
    parser.add_argument("--epoch-reviews", type=int, default=4000)
    parser.add_argument("--epoch-words", type=float, default=60.0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64, help="embedding and LSTM size")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    texts, labels = make_reviews(args.reviews, seed=0, mean_words=args.words)
    print(f"corpus: {len(texts)} synthetic reviews, {np.mean([len(t.split()) for t in texts]):.0f} "
          f"words on average ({time.perf_counter() - start:.1f} s to generate)")  # fmt: skip
    if args.part in ("all", "tokenize"):
        part_tokenize(texts, labels)
    if args.part in ("all", "epoch"):
        part_epoch(texts, labels, args)
    if args.part in ("all", "step"):
        part_step(texts, labels, args)


if __name__ == "__main__":
    main()
