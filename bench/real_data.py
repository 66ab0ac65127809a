"""Real data: the zoo against a course-style script, same sample, same split, same epochs.

For an application APP, trains in one run, on the same machine, once per seed:

- the baseline (`bench/baselines/<app>.py`): plain PyTorch written from the course notes (the
  course's architecture, optimizer, batch size, padding and defaults; no Lightning), on the same
  train/validation split the zoo's datamodule makes (its own reader and seeded hold-out are
  called for it), scored with the same metric;
- the zoo: `zoo fit -c configs/<config>.yaml --data.init_args.root ROOT --trainer.max_epochs N
  --seed_everything SEED`, with nothing else changed but the sample's format (AG News's two text
  columns); extra arguments after the known ones are passed to `zoo fit` too (for tuning);

and prints, for each, the validation metric per epoch, after the last epoch and the best one, the
wall time (reading and tokenising included), their means over the seeds, and the differences and
ratio. It asserts nothing. Run it on an idle machine: a busy neighbour slows torch 2x here.

    python bench/real_data.py face --root ../shared/data/fer2013_train --epochs 10 --seeds 0 1 2
    python bench/real_data.py news --root ../shared/data/ag_news_train --epochs 3 --seeds 0 1
    python bench/real_data.py logo --root ../shared/data/flickr_logos_train --epochs 4 \
        --model.init_args.pretrained=false   # no ImageNet weights on this machine
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tasks.cli import cli

CONFIGS = Path(__file__).parents[1] / "configs"


def zoo_fit(
    config: str, metric: str, root: str, epochs: int, extra: list[str]
) -> tuple[list[float], float]:
    """`zoo fit` with only root and epochs set: validation metric per epoch, wall seconds."""
    from lightning.pytorch import Callback

    scores: list[float] = []

    class Record(Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: ANN001
            # After the epoch's validation (callbacks' validation hooks run before the task logs).
            scores.append(float(trainer.callback_metrics[metric]))

    root_arg = f"--data.init_args.root={Path(root).resolve()}"
    args = ["-c", str(CONFIGS / f"{config}.yaml"), root_arg]  # run=False: no verb
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


# app: (config, validation metric the zoo logs, baseline module in bench/baselines/, the zoo
# arguments that describe the sample's format: AG News has title and description columns)
APPS = {
    "face": ("face_expression", "val/acc", "face_expression", []),
    "logo": ("logo_photos", "val/acc", "logo", []),
    "cat": ("cat_segmentation_photos", "val/dice", "cat_segmentation", []),
    "imdb": ("imdb_lstm", "val/acc", "imdb", []),
    "news": ("bert_news", "val/acc", "news", ["--data.init_args.text_column=[title,description]"]),
    "summarization": ("bart_summarization", "val/rouge1", "summarization", []),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", choices=sorted(APPS))
    parser.add_argument("--root", required=True, help="the real sample, e.g. ../shared/data/...")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", help="zoo config name in configs/ (default: the app's)")
    args, zoo_args = parser.parse_known_args()  # the rest are zoo overrides (for tuning)
    torch.set_num_threads(args.threads)
    config, metric, module, data_format = APPS[args.app]
    config = args.config or config
    baseline = importlib.import_module(f"baselines.{module}").baseline
    load = os.getloadavg()[0]
    runs: dict[str, list[tuple[list[float], float]]] = {"course baseline": [], "zoo": []}
    for seed in args.seeds:  # alternate, so both sides see the same machine conditions
        runs["course baseline"].append(baseline(args.root, args.epochs, seed))
        extra = [f"--seed_everything={seed}", *data_format, *zoo_args]
        runs["zoo"].append(zoo_fit(config, metric, args.root, args.epochs, extra))

    print(f"\n{args.app}: {args.root}, {args.epochs} epochs, config {config}, seeds {args.seeds}, "
          f"load average {load:.2f} at start")  # fmt: skip
    print(f"{'':<16}{'seed':>5}{'last val':>10}{'best val':>10}{'wall s':>9}   per epoch")
    for name, results in runs.items():
        for seed, (scores, seconds) in zip(args.seeds, results, strict=True):
            per_epoch = " ".join(f"{s:.3f}" for s in scores)
            print(f"{name:<16}{seed:>5}{scores[-1]:>10.3f}{max(scores):>10.3f}{seconds:>9.1f}"
                  f"   {per_epoch}")  # fmt: skip
    mean = {
        name: (
            statistics.mean(scores[-1] for scores, _ in results),
            statistics.mean(max(scores) for scores, _ in results),
            statistics.mean(seconds for _, seconds in results),
        )
        for name, results in runs.items()
    }
    for name, (last, best, seconds) in mean.items():
        print(f"{name:<16}{'mean':>5}{last:>10.3f}{best:>10.3f}{seconds:>9.1f}")
    (base_last, base_best, base_s), (zoo_last, zoo_best, zoo_s) = mean.values()
    print(f"zoo - baseline ({metric}, mean over {len(args.seeds)} seed(s)): last "
          f"{100 * (zoo_last - base_last):+.1f} points, best {100 * (zoo_best - base_best):+.1f} "
          f"points; wall time {zoo_s / base_s:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
