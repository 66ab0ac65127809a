"""Write the small checkpoints in tests/data/checkpoints/ with the current code.

They are kept in the repository so that checkpoints written by an earlier release keep loading
after refactors (tests/test_checkpoints.py). Run from the repository root; rerun only on purpose
(a format change users will meet too):  python tests/data/make_checkpoints.py [APP ...]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from tasks.cli import cli

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "face_expression": ["--data.init_args.demo_per_class=16", "--model.init_args.widths=[4,8]"],
    "imdb_lstm": [
        "--data.init_args.demo_reviews=64",
        "--model.init_args.embedding_dim=4",
        "--model.init_args.hidden_dim=4",
        "--data.init_args.cache=false",
    ],
    "bart_summarization": [
        "--data.init_args.demo_articles=32",
        "--data.init_args.tokenizer_vocab_size=300",
        "--data.init_args.cache=false",
        "--model.init_args.d_model=8",
        "--model.init_args.num_layers=1",
        "--model.init_args.num_heads=2",
        "--model.init_args.num_beams=2",
        "--model.init_args.max_new_tokens=6",
    ],
    "bert_news": [
        "--data.init_args.demo_headlines=64",
        "--data.init_args.tokenizer_vocab_size=200",
        "--data.init_args.cache=false",
        "--model.init_args.hidden_size=8",
        "--model.init_args.num_layers=1",
        "--model.init_args.num_heads=2",
    ],
    "cat_segmentation": [
        "--data.init_args.demo_images=8",
        "--data.init_args.image_size=32",
        "--model.init_args.init_features=4",
    ],
    "logo": [
        "--data.init_args.demo_per_class=4",
        "--data.init_args.image_size=32",
        "--model.init_args.pretrained=false",
    ],
}
# EfficientNet-B0 alone is 16 MB: its kept checkpoint stores one value per tensor (`_compact`).
COMPACT = {"logo"}


def _compact(value: Any) -> Any:
    """Every floating tensor as its first value repeated (a stride-0 view of a 1-element copy).

    Names, shapes, dtypes and every non-tensor entry stay as written, so loading and predicting
    still go through the real code; only the learned values are gone.
    """
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel() > 1:
        return value.flatten()[:1].clone().expand(value.shape)
    if isinstance(value, dict):
        return {key: _compact(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_compact(item) for item in value)
    return value


def main(apps: list[str]) -> None:
    out = ROOT / "tests" / "data" / "checkpoints"
    out.mkdir(parents=True, exist_ok=True)
    for app, tiny in TINY.items():
        if apps and app not in apps:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            config = ROOT / "configs" / f"{app}.yaml"
            steps = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2"]
            result = cli(["fit", "-c", str(config), *tiny, *steps, "--trainer.logger=false"])
            checkpoint = Path(result.trainer.default_root_dir) / "checkpoints" / "last.ckpt"
            if app in COMPACT:
                saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
                torch.save(_compact(saved), out / f"{app}.ckpt")
            else:
                shutil.copy(checkpoint, out / f"{app}.ckpt")
            print(f"{app}: {(out / f'{app}.ckpt').stat().st_size / 1e3:.0f} KB")


if __name__ == "__main__":
    main(sys.argv[1:])
