"""Every notebook runs top to bottom in small mode (WORKBENCH_SMALL=1), as a reader would run it."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from interp.paths import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, monkeypatch, tmp_path_factory):
    # one fresh run folder for the session: later notebooks reuse what earlier ones built
    run = tmp_path_factory.getbasetemp() / "notebooks_run"
    monkeypatch.setenv("WORKBENCH_SMALL", "1")
    monkeypatch.setenv("WORKBENCH_RUN", str(run))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
