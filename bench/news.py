"""News classification (BERT): Trainer overhead, bucketing, and the tokenisation cache.

Each part measures ours and a baseline side by side in one run and prints the ratio; it asserts
nothing. Data: `--root` (a CSV such as AG News's `label,title,description`, with
`--text-column title description`) or the demo headlines.

- step: `zoo fit -c configs/bert_news.yaml` step time vs a plain PyTorch loop over the same model
  and batches (bench/overhead.py's three variants). Goal: <= 1.05x.
- padding: `zoo fit` epochs with dynamic padding + length buckets (ours) vs padding every batch to
  `max_length`, same seed and epochs; wall time of the fit and val/acc after it. Goal: faster at
  equal accuracy.
- cache: `NewsDataModule` first start (read, train the tokenizer, tokenise, cache) vs a second
  start (the cache).
- gpu (only with CUDA): bert-base from config (random weights: no download), length 128, bf16:
  training tokens/s and model FLOPs utilisation (6 * params * tokens / s over the GPU's peak).

    python bench/news.py [--part all|step|padding|cache|gpu] [--root ag_news/train.csv
        --text-column title description] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import overhead  # noqa: E402 - bench/overhead.py, the step-time comparison

from datamodules.news import NewsDataModule  # noqa: E402
from tasks.cli import cli  # noqa: E402

CONFIG = str(Path(__file__).parents[1] / "configs" / "bert_news.yaml")


def data_overrides(args: argparse.Namespace) -> list[str]:
    if not args.root:
        return []
    columns = (
        args.text_column[0] if len(args.text_column) == 1 else f"[{','.join(args.text_column)}]"
    )
    return [
        f"--data.init_args.root={Path(args.root).resolve()}",
        f"--data.init_args.text_column={columns}",
    ]


def part_step(args: argparse.Namespace) -> None:
    print("\n== step: zoo fit vs a plain loop (same model, same batches)")
    args.goal, args.config, args.warmup = 1.05, CONFIG, 5
    started = time.perf_counter()
    epochs, batches, runs = overhead.compare(
        CONFIG, args.steps, 5, args.repeats, *data_overrides(args)
    )
    overhead.report(args, epochs, batches, runs, time.perf_counter() - started)


def part_padding(args: argparse.Namespace) -> None:
    print(f"\n== padding: {args.epochs} epoch(s) of zoo fit, bucketing vs pad to max_length")
    results = {}
    with tempfile.TemporaryDirectory(prefix="zoo-news-") as tmp:
        home = Path.cwd()
        os.chdir(tmp)
        try:
            for name, extra in (
                ("ours: per-batch padding + buckets", []),
                ("pad to max_length, shuffled", ["--data.init_args.fixed_padding=true"]),
            ):
                run = [*data_overrides(args), f"--trainer.max_epochs={args.epochs}", *extra]
                run += ["--trainer.logger=false"]
                cli(["fit", "-c", CONFIG, *run, "--trainer.max_epochs=0"])  # fill the cache
                start = time.perf_counter()
                fitted = cli(["fit", "-c", CONFIG, *run])
                seconds = time.perf_counter() - start
                results[name] = (seconds, float(fitted.trainer.callback_metrics["val/acc"]))
        finally:
            os.chdir(home)
    for name, (seconds, accuracy) in results.items():
        print(f"  {name:<36} fit {seconds:6.1f} s   val acc {accuracy:.3f}")
    (ours, ours_acc), (fixed, fixed_acc) = results.values()
    print(f"ours is {fixed / ours:.2f}x faster (val acc {ours_acc:.3f} vs {fixed_acc:.3f})")


def part_cache(args: argparse.Namespace) -> None:
    print("\n== cache: NewsDataModule first start vs cached start")
    columns = args.text_column[0] if len(args.text_column) == 1 else list(args.text_column)
    with tempfile.TemporaryDirectory(prefix="zoo-news-cache-") as cache:
        times = []
        for _ in range(2):
            data = NewsDataModule(root=args.root, text_column=columns, cache_dir=cache)
            start = time.perf_counter()
            _ = data.tokenised
            times.append(time.perf_counter() - start)
    first, second = times
    print(f"  first start {first:.2f} s, cached start {second:.2f} s: {first / second:.1f}x")


def part_gpu(args: argparse.Namespace) -> None:
    if not torch.cuda.is_available():
        print("\n== gpu: no CUDA device here; skipped")
        return
    from transformers import AutoModelForSequenceClassification, BertConfig

    print("\n== gpu: bert-base (random weights), length 128, bf16 autocast, AdamW")
    torch.backends.cuda.matmul.allow_tf32 = True
    model = AutoModelForSequenceClassification.from_config(BertConfig(num_labels=4)).cuda()
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), 2e-5, fused=True)
    batch, length = args.gpu_batch, 128
    ids = torch.randint(1000, 30000, (batch, length), device="cuda")
    labels = torch.randint(0, 4, (batch,), device="cuda")
    for step in range(args.gpu_steps + 10):
        if step == 10:
            torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast("cuda", torch.bfloat16):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens = batch * length * args.gpu_steps / seconds
    peak = args.peak_tflops * 1e12
    print(f"  {torch.cuda.get_device_name()}: {tokens:,.0f} tokens/s, "
          f"MFU {6 * params * tokens / peak:.1%} of {args.peak_tflops:.0f} TFLOP/s, "
          f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="all", choices=["all", "step", "padding", "cache", "gpu"])
    parser.add_argument("--root", help="a labelled CSV/JSONL table; default the demo headlines")
    parser.add_argument("--text-column", nargs="+", default=["text"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-batch", type=int, default=64)
    parser.add_argument("--gpu-steps", type=int, default=50)
    parser.add_argument(
        "--peak-tflops", type=float, default=989.0, help="bf16 dense peak (H100/H200)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overhead.quiet_lightning()
    print(f"data: {args.root or 'demo headlines'}; load average {os.getloadavg()[0]:.2f}")
    for part, run in (("step", part_step), ("padding", part_padding), ("cache", part_cache),
                      ("gpu", part_gpu)):  # fmt: skip
        if args.part in ("all", part):
            run(args)


if __name__ == "__main__":
    main()
