"""Notebooks run top to bottom (code cells only), with their `parameters` cell made small."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
SMALL = {
    "face_expression": {"DEMO_PER_CLASS": 16, "EPOCHS": 1},
    "cat_segmentation": {"DEMO_IMAGES": 8, "IMAGE_SIZE": 32, "FEATURES": 4, "EPOCHS": 1},
    "imdb_lstm": {"REVIEWS": 64, "SIZE": 8, "EPOCHS": 1},
    "bert_news": {"HEADLINES": 64, "HIDDEN": 16, "EPOCHS": 1},
    "bart_summarization": {"ARTICLES": 32, "WIDTH": 16, "EPOCHS": 1},
}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_runs(notebook: Path) -> None:
    matplotlib.use("Agg")
    cells = json.loads(notebook.read_text())["cells"]
    namespace: dict = {"__name__": "__main__"}
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        exec(compile("".join(cell["source"]), f"{notebook.name}:{cell['id']}", "exec"), namespace)
        if "parameters" in cell["metadata"].get("tags", []):
            namespace.update(SMALL.get(notebook.stem, {}))
    assert namespace["trainer"].state.finished
