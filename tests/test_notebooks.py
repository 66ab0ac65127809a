"""Notebooks run top to bottom in a Jupyter kernel, as a user runs them, with small parameters.

As papermill does, a cell tagged `injected-parameters` after the `parameters` cell overrides them.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
SMALL = {
    "face_expression": {"DEMO_PER_CLASS": 16, "EPOCHS": 1},
    "cat_segmentation": {"DEMO_IMAGES": 8, "IMAGE_SIZE": 32, "FEATURES": 4, "EPOCHS": 1},
    "imdb_lstm": {"REVIEWS": 64, "SIZE": 8, "EPOCHS": 1},
    "bert_news": {"HEADLINES": 64, "HIDDEN": 16, "EPOCHS": 1},
    "bart_summarization": {"ARTICLES": 32, "WIDTH": 16, "EPOCHS": 1},
    "logo": {"DEMO_PER_CLASS": 8, "IMAGE_SIZE": 32, "EPOCHS": 1},
}
# Images (figures, overlays) each notebook shows; the text notebooks show none.
IMAGES = {"face_expression": 1, "cat_segmentation": 2, "logo": 2}
CELL_TIMEOUT = 120  # seconds


@pytest.fixture(scope="session")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A `python3` kernel of the interpreter running pytest, whatever `python` is on PATH.

    The kernel inherits `os.environ` (conftest's offline switches and cache folder). It draws
    figures inline, as Jupyter does, even where MPLBACKEND=Agg is set, and reads no user profile.
    """
    folder = tmp_path_factory.mktemp("kernels")
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (tests)",
        "language": "python",
        "env": {
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "IPYTHONDIR": str(folder / "ipython"),
        },
    }
    (folder / "python3").mkdir()
    (folder / "python3" / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(folder)])


def assigned_names(source: str) -> set[str]:
    tree = ast.parse(source)
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}


@pytest.mark.slow  # a kernel per notebook imports torch and Lightning afresh: 10-25 s each
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_runs(notebook: Path, tmp_path: Path, kernel_specs: KernelSpecManager) -> None:
    nb = nbformat.read(notebook, as_version=4)
    (at,) = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    small = SMALL[notebook.stem]
    unknown = set(small) - assigned_names(nb.cells[at].source)
    assert not unknown, f"{notebook.name} has no parameters {unknown}: update SMALL"
    lines = ["# Parameters (tests/test_notebooks.py)"]
    lines += [f"{name} = {value!r}" for name, value in small.items()]
    injected = nbformat.v4.new_code_cell(
        "\n".join(lines), metadata={"tags": ["injected-parameters"]}
    )
    nb.cells.insert(at + 1, injected)
    nb.cells.append(nbformat.v4.new_code_cell("trainer.state.finished"))

    km = KernelManager(kernel_name="python3", kernel_spec_manager=kernel_specs)
    resources = {"metadata": {"path": str(tmp_path)}}  # the kernel's working directory
    NotebookClient(nb, km=km, timeout=CELL_TIMEOUT, resources=resources).execute()

    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    expected = IMAGES.get(notebook.stem, 0)
    assert len(images) == expected, f"{len(images)} images shown, expected {expected}"
    assert nb.cells[-1].outputs[-1]["data"]["text/plain"] == "True", "training did not finish"
    assert (tmp_path / "runs" / "notebook").is_dir()  # not in the repository
