"""Cat segmentation: training speed of ours vs a plain loop, and datamodule memory vs dataset size.

Two measurements, each side by side in one run:

- speed: images/s of training steps at `--image-size` (default 256) with the same UNet
  (`--features`), `DiceCELoss(dice_weight=0.5)` and Adam, over the same pre-built CPU batches
  (made once from `make_cats`, masks int64), two ways:
    plain:   a hand-written loop (forward, loss, zero_grad, backward, step);
    zoo:     a bare `Trainer` (no logger, checkpoints, progress bar, summary or validation) fitting
             `CatSegmentationTask` on a DataLoader over those batches, so the difference is the
             Trainer plus the task's per-step metrics and logging.
  Both start from the same seeded weights. The runs alternate (plain first, then zoo first, ...)
  for `--repeats` rounds so machine load hits both alike. A step is timed from one batch start to
  the next (the last one to its end), so the zoo loop's time includes fetching from its
  DataLoader; the first `--warmup` steps are dropped; each run keeps its median step, and the
  median over the repeats is reported. Goal: zoo step time <= 1.10x plain.

- memory: peak RSS growth in a fresh subprocess per dataset size and loader: the peak resident
  set (VmHWM in /proc/self/status, Linux) after the work minus the RSS after imports, the peak
  having been reset to it there (`echo 5 > /proc/self/clear_refs`; where that is refused, the
  peak after imports is the baseline). `getrusage().ru_maxrss` would not do: Linux keeps it across
  `execve`, so a child starts with this process's peak (GBs after the speed part). Loading a
  VOC-style folder of N JPEG images (quality 90) with palette PNG masks, drawn by `make_cats`:
    ours:    `CatSegmentationDataModule(root, image_size, batch_size)`, `setup("fit")` (the mask
             audit), then one epoch of `train_dataloader()` (the lazily read train split, 80%);
    eager:   the course's Dataset: every image and mask read into lists of numpy arrays resized
             with PIL in `__init__`, then one epoch of a DataLoader over all N.
  RSS counts numpy and torch buffers that `tracemalloc` partly misses. Ours should stay about flat
  in N; the eager one grows linearly (about 0.26 MB per 256x256 image and mask).

    python bench/segmentation.py [--part all|speed|memory] [--steps 10 --warmup 3 --repeats 3]
        [--features 16|32] [--sizes 50 200 800]

It prints tables and ratios and asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

GOAL = 1.10  # zoo step time may be at most this much of the plain loop's
NOISY = 1.15  # per-repeat spread of one variant above which the run is flagged as disturbed
SEED = 0
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
MARKER = "RESULT "


# --- speed ----------------------------------------------------------------------------------


def quiet_lightning() -> None:
    import lightning.pytorch  # noqa: F401  (its import sets its loggers to INFO)

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*validation_step` but have no `val_dataloader.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")


def build_batches(count: int, batch_size: int, image_size: int) -> list[dict]:
    """`count` distinct batches {"image" normalised float, "mask" int64, "name"} from make_cats."""
    from datamodules.demo.cats import make_cats

    images, masks = make_cats(count * batch_size, image_size, SEED)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    y = torch.from_numpy(masks).long()
    return [
        {
            "image": x[i : i + batch_size].contiguous(),
            "mask": y[i : i + batch_size].contiguous(),
            "name": [f"demo/{j:05d}" for j in range(i, i + batch_size)],
        }
        for i in range(0, count * batch_size, batch_size)
    ]


def step_time(starts: list[float], end: float, warmup: int) -> float:
    """Median seconds per step (batch start to next batch start) after the first `warmup`."""
    times = [b - a for a, b in zip(starts, [*starts[1:], end], strict=True)]
    return statistics.median(times[warmup:])


def run_plain(schedule: list[dict], features: int, warmup: int) -> float:
    from tasks.cat_segmentation import DiceCELoss, UNet

    torch.manual_seed(SEED)
    net = UNet(3, 1, features).train()
    loss_fn = DiceCELoss(dice_weight=0.5)
    optimizer = torch.optim.Adam(net.parameters())  # the task's default: Adam, lr 1e-3
    starts = []
    for batch in schedule:
        starts.append(time.perf_counter())
        loss = loss_fn(net(batch["image"]), batch["mask"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step_time(starts, time.perf_counter(), warmup)


def run_zoo(schedule: list[dict], features: int, image_size: int, warmup: int) -> float:
    from lightning.pytorch import Callback, Trainer
    from torch.utils.data import DataLoader

    from tasks.cat_segmentation import CatSegmentationTask, UNet

    class Clock(Callback):
        def __init__(self) -> None:
            self.starts: list[float] = []
            self.end = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.starts.append(time.perf_counter())

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.end = time.perf_counter()

    torch.manual_seed(SEED)
    task = CatSegmentationTask(
        image_size=image_size, init_features=features, dice_weight=0.5, num_logged_images=0
    )
    torch.manual_seed(SEED)
    reference = UNet(3, 1, features)
    same = all(
        torch.equal(a, b)
        for a, b in zip(
            task.net.state_dict().values(), reference.state_dict().values(), strict=True
        )
    )
    if not same:
        raise RuntimeError("the task's UNet and the plain loop's start from different weights")
    clock = Clock()
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=len(schedule),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[clock],
    )
    # batch_size=None: the loader hands out the pre-built batches as they are.
    trainer.fit(task, train_dataloaders=DataLoader(schedule, batch_size=None))
    if len(clock.starts) != len(schedule):
        raise RuntimeError(f"the Trainer ran {len(clock.starts)} steps, expected {len(schedule)}")
    return step_time(clock.starts, clock.end, warmup)


def speed(args: argparse.Namespace) -> None:
    quiet_lightning()
    total = args.warmup + args.steps
    started = time.perf_counter()
    batches = build_batches(min(args.distinct, total), args.batch_size, args.image_size)
    schedule = [batches[i % len(batches)] for i in range(total)]  # the same tensors, cycled
    runs: dict[str, list[float]] = {"plain": [], "zoo": []}
    for repeat in range(args.repeats):
        order = ("plain", "zoo") if repeat % 2 == 0 else ("zoo", "plain")
        for name in order:
            if name == "plain":
                runs[name].append(run_plain(schedule, args.features, args.warmup))
            else:
                runs[name].append(run_zoo(schedule, args.features, args.image_size, args.warmup))
    seconds = time.perf_counter() - started
    median = {name: statistics.median(times) for name, times in runs.items()}
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print()
    print(
        f"speed: image {args.image_size}x{args.image_size}, UNet features {args.features}, batch "
        f"{args.batch_size}, {args.steps} steps measured (warm-up {args.warmup} dropped), "
        f"{args.repeats} repeat(s), torch threads {torch.get_num_threads()}"
    )
    print(f"load average (1/5/15 min): {load}; wall time {seconds:.0f} s")
    # Each repeat's two runs are adjacent in time: their ratio is the one least hit by drift.
    paired = [z / p for p, z in zip(runs["plain"], runs["zoo"], strict=True)]
    print("per repeat, median ms/step:")
    for name, times in runs.items():
        print(f"  {name:<7}" + "".join(f"{1000 * t:9.0f}" for t in times))
    print(f"  {'zoo/pl':<7}" + "".join(f"{r:9.3f}" for r in paired))
    print(f"{'':<9}{'ms/step':>9}{'img/s':>9}")
    for name, t in median.items():
        print(f"{name:<9}{1000 * t:>9.0f}{args.batch_size / t:>9.2f}")
    ratio = median["zoo"] / median["plain"]
    verdict = "PASS" if ratio <= GOAL else "OVER"
    print(f"zoo step time / plain step time (median): {ratio:.3f} (goal <= {GOAL:.2f}): {verdict}")
    print(f"median of the per-repeat ratios: {statistics.median(paired):.3f}")
    spread = max(max(times) / min(times) for times in runs.values())
    if spread > NOISY:
        print(
            f"warning: a variant's per-repeat times differ up to {spread:.2f}x: the machine was "
            "busy (oversubscribed threads hit torchmetrics' sort/unique hardest); rerun when idle"
            " or with --threads 1"
        )


# --- memory ---------------------------------------------------------------------------------


def write_voc(root: Path, sizes: list[int], image_size: int) -> dict[int, Path]:
    """One VOC folder per size; the smaller ones hard-link the first files of the largest."""
    from PIL import Image

    from datamodules.demo.cats import make_cats
    from datamodules.masks import voc_colormap

    palette = voc_colormap().tobytes()
    largest = max(sizes)
    full = root / f"n{largest}"
    for sub in ("JPEGImages", "SegmentationClassPNG"):
        (full / sub).mkdir(parents=True)
    chunk = 50
    for start in range(0, largest, chunk):
        count = min(chunk, largest - start)
        images, masks = make_cats(count, image_size, SEED + start)
        for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
            stem = f"cat_{start + i:05d}"
            Image.fromarray(image).save(full / "JPEGImages" / f"{stem}.jpg", quality=90)
            png = Image.fromarray(mask)
            png.putpalette(palette)
            png.save(full / "SegmentationClassPNG" / f"{stem}.png")
    folders = {largest: full}
    for n in sorted(set(sizes) - {largest}):
        folder = root / f"n{n}"
        for sub, ext in (("JPEGImages", "jpg"), ("SegmentationClassPNG", "png")):
            (folder / sub).mkdir(parents=True)
            for i in range(n):
                name = f"cat_{i:05d}.{ext}"
                os.link(full / sub / name, folder / sub / name)
        folders[n] = folder
    return folders


class EagerSegmentation(torch.utils.data.Dataset):
    """The course's Dataset: every image and mask decoded and resized into memory up front."""

    def __init__(self, root: Path, image_size: int) -> None:
        from PIL import Image

        self.images, self.masks = [], []
        for path in sorted((root / "JPEGImages").glob("*.jpg")):
            with Image.open(path) as image:
                image = image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                self.images.append(np.array(image))
            mask_path = root / "SegmentationClassPNG" / f"{path.stem}.png"
            with Image.open(mask_path) as mask:
                self.masks.append(np.array(mask.resize((image_size, image_size), Image.NEAREST)))
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        image = torch.from_numpy(self.images[index]).permute(2, 0, 1).float() / 255
        return {
            "image": (image - self.mean) / self.std,
            "mask": torch.from_numpy(self.masks[index]).long(),
        }


def rss_kib(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process in KiB, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc/self/status: the memory part needs Linux")


def reset_peak_rss() -> int:
    """Reset the peak RSS to the current one where the kernel allows; the baseline in KiB."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return rss_kib("VmHWM")
    return rss_kib("VmRSS")


def child(kind: str, root: Path, image_size: int, batch_size: int) -> None:
    """In a fresh process: peak RSS growth of loading `root` one way; prints one result line."""
    import torchvision.transforms.v2  # noqa: F401  (both ways pay the same imports)
    from PIL import Image  # noqa: F401
    from torch.utils.data import DataLoader

    from datamodules.cat_segmentation import CatSegmentationDataModule

    torch.set_num_threads(1)  # memory only: stay out of the way of other work on the machine
    before = reset_peak_rss()
    started = time.perf_counter()
    if kind == "ours":
        data = CatSegmentationDataModule(
            root=str(root), image_size=image_size, batch_size=batch_size
        )
        data.setup("fit")
        loader = data.train_dataloader()
    else:
        loader = DataLoader(
            EagerSegmentation(root, image_size), batch_size=batch_size, shuffle=True
        )
    samples = 0
    for batch in loader:
        samples += len(batch["image"])
    after = rss_kib("VmHWM")
    result = {
        "mb": (after - before) / 1024,
        "baseline_mb": before / 1024,
        "samples": samples,
        "seconds": time.perf_counter() - started,
    }
    print(MARKER + json.dumps(result), flush=True)


def measure(kind: str, root: Path, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        kind,
        str(root),
        f"--image-size={args.image_size}",
        f"--batch-size={args.batch_size}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{kind} on {root} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(MARKER) :])


def memory(args: argparse.Namespace) -> None:
    sizes = sorted(set(args.sizes))
    started = time.perf_counter()
    results: dict[str, dict[int, dict]] = {"ours": {}, "eager": {}}
    with tempfile.TemporaryDirectory(prefix="zoo-segmem-") as tmp:
        folders = write_voc(Path(tmp), sizes, args.image_size)
        written = time.perf_counter() - started
        for n in sizes:
            for kind in results:
                results[kind][n] = measure(kind, folders[n], args)
    seconds = time.perf_counter() - started
    print()
    print(
        f"memory: peak RSS growth (VmHWM after the work - RSS after imports) in a fresh process, "
        f"JPEG q90 + palette PNG at {args.image_size}x{args.image_size}, batch {args.batch_size}"
    )
    print(f"wall time {seconds:.0f} s ({written:.0f} s writing the folders)")
    print(
        f"{'N':>6}{'ours MB':>10}{'eager MB':>10}{'ours s':>9}{'eager s':>9}"
        f"{'ours imgs':>11}{'eager imgs':>12}"
    )
    for n in sizes:
        ours, eager = results["ours"][n], results["eager"][n]
        print(
            f"{n:>6}{ours['mb']:>10.1f}{eager['mb']:>10.1f}{ours['seconds']:>9.1f}"
            f"{eager['seconds']:>9.1f}{ours['samples']:>11}{eager['samples']:>12}"
        )
    baseline = results["ours"][sizes[0]]["baseline_mb"]
    print(
        f"(imports before the baseline: about {baseline:.0f} MB RSS; "
        "imgs: samples iterated, ours is the 80% train split)"
    )
    small, large = sizes[0], sizes[-1]
    for kind, by_n in results.items():
        ratio = by_n[large]["mb"] / max(by_n[small]["mb"], 1e-3)
        slope = 1024 * (by_n[large]["mb"] - by_n[small]["mb"]) / max(large - small, 1)
        print(
            f"{kind:<6} MB(N={large}) / MB(N={small}): {ratio:.2f}"
            f"   growth: {slope:.0f} KB per image"
        )


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "speed", "memory"), default="all")
    parser.add_argument("--image-size", type=int, default=256, help="image side (256)")
    parser.add_argument("--features", type=int, default=16, help="UNet init_features (16)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch (8)")
    parser.add_argument("--steps", type=int, default=10, help="measured steps per run (10)")
    parser.add_argument("--warmup", type=int, default=3, help="steps dropped first (3)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument("--distinct", type=int, default=4, help="distinct pre-built batches (4)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (2)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[50, 200, 800], help="dataset sizes N (50 200 800)"
    )
    parser.add_argument("--child", nargs=2, metavar=("KIND", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.image_size, args.batch_size)
        return
    if min(args.steps, args.repeats, args.distinct, args.threads, args.batch_size) < 1:
        parser.error("--steps, --repeats, --distinct, --threads, --batch-size must be >= 1")
    if args.warmup < 0 or args.image_size < 16 or min(args.sizes) < 2:
        parser.error("--warmup must be >= 0, --image-size >= 16, --sizes >= 2")
    torch.set_num_threads(args.threads)
    if args.part in ("all", "speed"):
        speed(args)
    if args.part in ("all", "memory"):
        memory(args)


if __name__ == "__main__":
    main()
