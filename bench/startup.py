"""Start-up costs of `zoo`, each measured side by side with its baseline in one run.

1. `zoo --help` vs `python -c "import lightning.pytorch"` (goal <= 1.3x: heavy libraries are
   imported where tasks need them).
2. `zoo validate --ckpt_path` on an IMDB checkpoint with a 100k-word vocabulary vs `zoo --help`
   (goal <= 1.5x: the vocabulary travels outside the hyperparameters, so neither the CLI nor
   `load_from_checkpoint` re-validates it; one validation batch, the data cached by the fit).

Usage: python bench/startup.py [--repeats 5] [--vocab 100000]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = Path(__file__).parents[1] / "configs" / "imdb_lstm.yaml"


def wall(command: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd
    )
    return time.perf_counter() - start


def compare(name: str, baseline_name: str, ours: list[str], baseline: list[str], goal: float,
            repeats: int, cwd: Path | None = None) -> None:  # fmt: skip
    wall(baseline, cwd)  # warm the file cache for both
    wall(ours, cwd)
    base_runs, our_runs = [], []
    for _ in range(repeats):  # interleaved, so machine load hits both alike
        base_runs.append(wall(baseline, cwd))
        our_runs.append(wall(ours, cwd))
    b, o = statistics.median(base_runs), statistics.median(our_runs)
    for label, median, runs in ((baseline_name, b, base_runs), (name, o, our_runs)):
        print(f"{label:<32} median {median:.2f} s  (runs: {' '.join(f'{t:.2f}' for t in runs)})")
    verdict = "PASS" if o / b <= goal else "OVER"
    print(f"ratio {o / b:.2f}x (goal <= {goal}x): {verdict}\n")


def big_vocabulary_checkpoint(zoo: str, folder: Path, words: int) -> tuple[Path, list[str]]:
    """Fit one step on reviews whose words are all distinct: a `words`-token vocabulary."""
    data = folder / "reviews.csv"
    per_review = 100
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for r in range(words // per_review):
            text = " ".join(f"w{r}x{i}" for i in range(per_review))
            writer.writerow([text, "pos" if r % 2 else "neg"])
    args = ["-c", str(CONFIG), f"--data.init_args.root={data}", "--data.init_args.val_split=0.01"]
    args += ["--model.init_args.embedding_dim=8", "--model.init_args.hidden_dim=8"]
    args += [f"--data.init_args.cache_dir={folder / 'cache'}"]
    fit = [zoo, "fit", *args, "--trainer.max_epochs=1", "--trainer.limit_train_batches=1"]
    subprocess.run(fit, check=True, cwd=folder, stdout=subprocess.DEVNULL)
    (checkpoint,) = folder.rglob("last.ckpt")
    return checkpoint, args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vocab", type=int, default=100_000, help="vocabulary size")
    options = parser.parse_args()
    beside = Path(sys.executable).with_name("zoo")  # the environment of this interpreter
    zoo = str(beside) if beside.exists() else shutil.which("zoo")
    if zoo is None:
        sys.exit("`zoo` is not installed: pip install -e . first")
    help_cmd = [zoo, "--help"]
    compare(
        "zoo --help",
        "import lightning.pytorch",
        help_cmd,
        [sys.executable, "-c", "import lightning.pytorch"],
        1.3,
        options.repeats,
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint, args = big_vocabulary_checkpoint(zoo, folder, options.vocab)
        validate = [zoo, "validate", *args, f"--ckpt_path={checkpoint}"]
        validate += ["--trainer.limit_val_batches=1", "--trainer.logger=false"]
        compare(
            f"zoo validate --ckpt_path ({options.vocab // 1000}k)",
            "zoo --help",
            validate,
            help_cmd,
            1.5,
            options.repeats,
            cwd=folder,
        )


if __name__ == "__main__":
    main()
