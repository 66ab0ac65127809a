"""Fit, validate and predict configs with DDP on 2 CPU processes (gloo), as `zoo` would.

Run by `test_ddp.py` in a subprocess: `python tests/ddp_run.py JOBS.json`, where the file lists
`{"name": ..., "args": [...]}` jobs (a config and its overrides). Lightning re-runs this script
for rank 1; both ranks run every job's three commands in turn, and every command after the first
reuses the process group, so the start-up is paid once. Rank zero writes `<name>.json` per job:
the checkpoint, the validation metrics and the predictions file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tasks.cli import ZooCLI, cli

DDP = ["--trainer.strategy=ddp", "--trainer.accelerator=cpu", "--trainer.devices=2"]


def main() -> None:
    """For each job: fit, then validate and predict from the fitted `last.ckpt`."""
    for job in json.loads(Path(sys.argv[1]).read_text()):
        args = [*job["args"], *DDP]
        fitted = run(["fit", *args])
        checkpoint = Path(fitted.trainer.checkpoint_callback.dirpath) / "last.ckpt"
        validated = run(["validate", *args, f"--ckpt_path={checkpoint}"])
        predicted = run(["predict", *args, f"--ckpt_path={checkpoint}"])
        if predicted.trainer.is_global_zero:
            (writer,) = [c for c in predicted.trainer.callbacks if hasattr(c, "write_on_batch_end")]
            result = {
                "checkpoint": str(checkpoint),
                "val": {k: v.item() for k, v in validated.trainer.callback_metrics.items()},
                "predictions": str(writer.path),
            }
            Path(f"{job['name']}.json").write_text(json.dumps(result, indent=1))


def run(args: list[str]) -> ZooCLI:
    """One `zoo` command; a W&B run ends with it, as it would with its process."""
    result = cli(args)
    if "wandb" in sys.modules:
        sys.modules["wandb"].finish()
    return result


if __name__ == "__main__":
    main()
