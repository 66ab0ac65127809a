"""Summarization (BART): Trainer overhead, validation generation, batched summarize().

Each part measures ours and a baseline side by side in one run and prints the ratio; it asserts
nothing. Data: `--root` (a JSONL/CSV with document and summary columns) or the demo articles;
the model is the config's (a small BART from scratch, untrained: `generate` is made to write
`max_new_tokens` (32) tokens per summary, the same work on both sides).

- step: `zoo fit -c configs/bart_summarization.yaml` step time vs a plain PyTorch loop over the
  same model and batches (bench/overhead.py's three variants). Goal: <= 1.05x.
- generate: validation of `--batches` batches with generation on every one (`trainer.validate`:
  teacher-forced loss, beam search, decoding, ROUGE) vs `model.generate` in a plain loop over the
  same batches with the same `GenerationConfig`; generated tokens/s of each. Goal: <= 1.05x time.
- summarize: `task.summarize(documents)` (batched) vs one document at a time.
- gpu (only with CUDA): bart-base from config (random weights, no download), bf16, KV cache:
  generated tokens/s with beam search 4 over batches of 32 documents of 512 tokens.

    python bench/summarization.py [--part all|step|generate|summarize|gpu] [--root data.jsonl]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import overhead  # noqa: E402 - bench/overhead.py, the step-time comparison

CONFIG = str(Path(__file__).parents[1] / "configs" / "bart_summarization.yaml")


def data_overrides(args: argparse.Namespace) -> list[str]:
    return [f"--data.init_args.root={Path(args.root).resolve()}"] if args.root else []


def part_step(args: argparse.Namespace) -> None:
    print("\n== step: zoo fit vs a plain loop (same model, same batches)")
    args.goal, args.config, args.warmup = 1.05, CONFIG, 5
    started = time.perf_counter()
    data = data_overrides(args)
    epochs, batches, runs = overhead.compare(CONFIG, args.steps, 5, args.repeats, *data)
    overhead.report(args, epochs, batches, runs, time.perf_counter() - started)


def part_generate(args: argparse.Namespace) -> None:
    print(f"\n== generate: validation with generation vs plain model.generate, {args.batches} "
          "batches")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="zoo-summ-") as tmp:
        home = Path.cwd()
        os.chdir(tmp)
        try:
            # Untrained beams stop at once; make every summary max_new_tokens (32) long.
            overrides = [*data_overrides(args), "--model.init_args.generate_val_batches=null"]
            overrides += ["--model.init_args.min_new_tokens=32"]
            overrides += [f"--trainer.limit_val_batches={args.batches}", "--trainer.logger=false"]
            built = overhead.build(CONFIG, *overrides)
            task, data, trainer = built.model, built.datamodule, built.trainer
            data.setup("validate")
            batches = [b for _, b in zip(range(args.batches), data.val_dataloader(), strict=False)]
            task.eval()

            def plain() -> tuple[float, int]:
                tokens, start = 0, time.perf_counter()
                with torch.inference_mode():
                    for batch in batches:
                        positions = torch.arange(batch["ids"].shape[1])
                        mask = (positions[None, :] < batch["lengths"][:, None]).long()
                        out = task.net.generate(
                            input_ids=batch["ids"],
                            attention_mask=mask,
                            generation_config=task.generation_config,
                        )
                        tokens += int((out != task.tokenizer.pad_token_id).sum())
                return time.perf_counter() - start, tokens

            generate = task.generate
            inside: list[float] = []

            def timed_generate(*a: object, **k: object) -> torch.Tensor:
                start = time.perf_counter()
                out = generate(*a, **k)
                inside.append(time.perf_counter() - start)
                return out

            task.generate = timed_generate

            def ours() -> tuple[float, int]:
                inside.clear()
                start = time.perf_counter()
                trainer.validate(task, data, verbose=False)
                times["validate"].append(time.perf_counter() - start)
                count = task.val_gen_len.mean_value + task.val_gen_len.weight  # sum + n (starts)
                return sum(inside), int(count)

            times: dict[str, list[float]] = {"plain": [], "ours": [], "validate": []}
            tokens: dict[str, int] = {}
            for round_ in range(args.repeats):
                order = (("plain", plain), ("ours", ours))
                for name, run in order if round_ % 2 == 0 else order[::-1]:
                    seconds, tokens[name] = run()
                    times[name].append(seconds)
        finally:
            os.chdir(home)
    best = {name: min(t) for name, t in times.items()}
    for name, label in (("plain", "plain loop"), ("ours", "ours, in validation")):
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        rate = tokens[name] / best[name]
        print(f"  {label:<20} {best[name]:6.2f} s  {rate:8.0f} tokens/s  (runs: {runs})")
    print(f"generation time, ours / plain: {best['ours'] / best['plain']:.3f}x (goal <= 1.05)")
    print(
        "whole validation (adds the teacher-forced loss on every batch, decoding, ROUGE and the "
        f"loop): {best['validate']:.2f} s, {best['validate'] / best['plain']:.2f}x plain"
    )


def part_summarize(args: argparse.Namespace) -> None:
    from datamodules.demo.articles import make_articles

    print(f"\n== summarize: {args.documents} documents, batched vs one at a time")
    with tempfile.TemporaryDirectory(prefix="zoo-summ-") as tmp:
        home = Path.cwd()
        os.chdir(tmp)
        try:
            task = overhead.build(CONFIG, *data_overrides(args)).model
        finally:
            os.chdir(home)
    documents, _ = make_articles(args.documents, seed=7)
    times: dict[str, list[float]] = {"batched": [], "one by one": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        batched = task.summarize(documents, batch_size=16)
        times["batched"].append(time.perf_counter() - start)
        start = time.perf_counter()
        single = [task.summarize([d])[0] for d in documents]
        times["one by one"].append(time.perf_counter() - start)
    same = sum(a == b for a, b in zip(batched, single, strict=True))
    best = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"  batched {best['batched']:.2f} s, one by one {best['one by one']:.2f} s: "
        f"{best['one by one'] / best['batched']:.1f}x faster; {same}/{len(documents)} identical"
    )


def part_gpu(args: argparse.Namespace) -> None:
    if not torch.cuda.is_available():
        print("\n== gpu: no CUDA device here; skipped")
        return
    from transformers import AutoModelForSeq2SeqLM, BartConfig, GenerationConfig

    print("\n== gpu: bart-base (random weights), bf16, KV cache, 4 beams, 64 new tokens")
    model = AutoModelForSeq2SeqLM.from_config(BartConfig()).cuda().to(torch.bfloat16).eval()
    config = GenerationConfig(num_beams=4, max_new_tokens=64, min_new_tokens=64, use_cache=True,
                              decoder_start_token_id=2, eos_token_id=2, pad_token_id=1)  # fmt: skip
    ids = torch.randint(1000, 30000, (32, 512), device="cuda")
    with torch.inference_mode():
        model.generate(input_ids=ids[:2], generation_config=config)  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.gpu_batches):
            model.generate(input_ids=ids, generation_config=config)
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens = 32 * 64 * args.gpu_batches
    print(
        f"  {torch.cuda.get_device_name()}: {tokens / seconds:,.0f} generated tokens/s "
        f"({32 * args.gpu_batches / seconds:.1f} documents/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = ["all", "step", "generate", "summarize", "gpu"]
    parser.add_argument("--part", default="all", choices=parts)
    parser.add_argument("--root", help="a JSONL/CSV with document and summary; default the demo")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batches", type=int, default=4, help="validation batches (generate)")
    parser.add_argument("--documents", type=int, default=32, help="documents (summarize)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-batches", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overhead.quiet_lightning()
    print(f"data: {args.root or 'demo articles'}; load average {os.getloadavg()[0]:.2f}")
    for part, run in (("step", part_step), ("generate", part_generate),
                      ("summarize", part_summarize), ("gpu", part_gpu)):  # fmt: skip
        if args.part in ("all", part):
            run(args)


if __name__ == "__main__":
    main()
