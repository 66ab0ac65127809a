"""Start-up cost of `zoo --help` vs `python -c "import lightning.pytorch"`, measured side by side.

Usage: python bench/startup.py [--repeats 5]
Goal: zoo --help <= 1.3x the Lightning import (heavy libraries are imported where tasks need them).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL = 1.3


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    beside = Path(sys.executable).with_name("zoo")  # the environment of this interpreter
    zoo = str(beside) if beside.exists() else shutil.which("zoo")
    if zoo is None:
        sys.exit("`zoo` is not installed: pip install -e . first")
    baseline_cmd = [sys.executable, "-c", "import lightning.pytorch"]
    wall(baseline_cmd)  # warm the file cache for both
    wall([zoo, "--help"])
    baseline, ours = [], []
    for _ in range(options.repeats):  # interleaved, so machine load hits both alike
        baseline.append(wall(baseline_cmd))
        ours.append(wall([zoo, "--help"]))
    b, o = statistics.median(baseline), statistics.median(ours)
    for name, median, runs in (("import lightning.pytorch", b, baseline), ("zoo --help", o, ours)):
        print(f"{name:<25} median {median:.2f} s  (runs: {' '.join(f'{t:.2f}' for t in runs)})")
    verdict = "PASS" if o / b <= GOAL else "OVER"
    print(f"ratio {o / b:.2f}x (goal <= {GOAL}x): {verdict}")


if __name__ == "__main__":
    main()
