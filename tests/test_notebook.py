"""notebooks/stackgan.ipynb runs top to bottom in a real Jupyter kernel (nbclient + ipykernel, on this Python),
small (STACKGAN_NOTEBOOK_SMALL=1: 48 + 16 birds, 2 epochs) and without its pip install (this environment is
installed), writing into a folder of the test's own; the kernel starts in notebooks/, as Jupyter starts it. The
notebook is committed without outputs."""

import json
import os
import sys

import nbformat
from nbclient import NotebookClient

from helpers import REPO

NOTEBOOK = os.path.join(REPO, "notebooks", "stackgan.ipynb")
STRIP = "jupyter nbconvert --clear-output --inplace notebooks/stackgan.ipynb"


def read_notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_the_notebook_is_committed_without_outputs():
    notebook = read_notebook()
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code), f"strip it: {STRIP}"


def outputs_of(cell):
    """(the text the cell printed, the number of PNG images it showed)."""
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    images = sum(
        "image/png" in o.get("data", {}) for o in cell.outputs if o.output_type in ("display_data", "execute_result")
    )
    return text, images


def test_the_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    monkeypatch.setenv("STACKGAN_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("STACKGAN_NOTEBOOK_INSTALL", "0")
    monkeypatch.setenv("STACKGAN_NOTEBOOK_WORK", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    # The kernel runs this test's Python (the installed "python3" kernel runs whichever `python` is on PATH).
    spec = tmp_path / "jupyter" / "kernels" / "stackgan-tests"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps(dict(argv=argv, display_name="stackgan tests", language="python")))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    notebook = read_notebook()
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="stackgan-tests",
        resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}},
    )
    client.execute()  # a cell that raises fails the test (CellExecutionError), naming the cell
    by_heading = {}
    heading = None
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            heading = cell.source.splitlines()[0][3:]
        elif cell.cell_type == "code":
            text, images = outputs_of(cell)
            previous = by_heading.get(heading, ("", 0))
            by_heading[heading] = (previous[0] + text, previous[1] + images)
    assert f"models: {tmp_path / 'results' / 'demo'}" in by_heading["Install"][0]
    assert by_heading["Synthetic birds"][1] == 1
    trained = by_heading["Train the Stage-I demo"][0]
    assert "stage1 epoch 2/2" in trained and "Attributes of 160 generated 64x64 test images" in trained
    assert by_heading["Loss curves and samples"] == ("the latest grid: epoch_0002.png\n", 2)
    drawn = by_heading["Birds from your own sentences"]
    assert drawn[0] == "(3, 4, 64, 64, 3) uint8\n" and drawn[1] == 1
    heard = by_heading["What the model heard"][0]
    assert heard.count("read as: ") == 4 and "words it cannot read: 🐦" in heard
    assert os.path.isfile(tmp_path / "results" / "demo" / "text_encoder.weights.h5")
    assert not os.path.exists(os.path.join(REPO, "notebooks", "results"))  # nothing written beside the notebook
