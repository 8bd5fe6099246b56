"""Execute notebooks/quickstart.ipynb at toy scale so it cannot rot."""

import math
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_runs_and_reports_fid(tmp_path, monkeypatch, fid_weights_path):
    monkeypatch.setenv("GAN_LIGHTNING_FID_WEIGHTS", str(fid_weights_path))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    params = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    params[0].source = (
        "max_steps = 4\nimage_size = 16\nbase_channels = 8\n"
        f"fid_real, fid_fake = 12, 12\noutput_dir = {str(tmp_path / 'runs')!r}"
    )

    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()

    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "FID (12 generated vs 12 real digits) after 4 steps:" in text
    fid = float(text.split("after 4 steps:")[1].split()[0])
    assert math.isfinite(fid) and fid > 0


def test_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")
