"""The examples run and write their figures; their data helpers read a data directory.

Each example runs as a user runs it, ``python examples/NAME.py``, in a subprocess
and in quick mode (tiny models, few rows). Its data directory points at a folder
that does not exist, so it falls back to scikit-learn's bundled data: nothing
here needs ``../shared/data``.
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES_DIR.glob("plot_*.py"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: The figures each example must write; a new example needs an entry here.
FIGURES = {
    "plot_anomaly_detection.py": ["anomaly_detection.png"],
    "plot_conditional.py": ["conditional_regression.png", "conditional_digits.png"],
    "plot_model_selection.py": ["model_selection.png"],
    "plot_paper_example.py": ["paper_example.png"],
    "plot_sampling_diagnostics.py": ["sampling_pair_plot.png", "sampling_qq_plots.png"],
}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.stem)
def test_example_runs_in_quick_mode_and_writes_its_figures(script, tmp_path):
    assert script.name in FIGURES, f"list the figures of {script.name} in FIGURES"
    environment = {
        **os.environ,
        "SKMAF_EXAMPLES_QUICK": "1",
        "SKMAF_EXAMPLES_OUTPUT": str(tmp_path),
        "OMP_NUM_THREADS": "1",
    }
    completed = subprocess.run(
        [sys.executable, str(script), "--data-dir", str(tmp_path / "no-such-folder")],
        env=environment, capture_output=True, text=True, timeout=300,
    )

    assert completed.returncode == 0, completed.stderr
    assert "| --- |" in completed.stdout  # the Markdown table
    for name in FIGURES[script.name]:
        assert (tmp_path / name).read_bytes().startswith(PNG_SIGNATURE)


@pytest.fixture
def example_utils(monkeypatch):
    """The examples' shared helper module, imported as the examples import it."""
    monkeypatch.syspath_prepend(str(EXAMPLES_DIR))
    return importlib.import_module("_example_utils")


@pytest.fixture
def data_dir(tmp_path):
    """A data directory holding ``toy.npz``: 30 normal rows, then 10 anomalies."""
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.normal(size=40), rng.randint(0, 5, size=40)])
    y = np.repeat([0, 1], [30, 10])
    np.savez(tmp_path / "toy.npz", X=X, y=y)
    return tmp_path


def test_load_normal_rows_keeps_the_normal_rows(example_utils, data_dir):
    data = example_utils.load_normal_rows("toy", data_dir, max_rows=20)
    toy = np.load(data_dir / "toy.npz")

    assert data.name == "toy"
    assert data.X.shape == (20, 2)
    assert np.isin(data.X[:, 0], toy["X"][:30, 0]).all()


def test_load_labelled_rows_keeps_every_row_with_its_label(example_utils, data_dir):
    data = example_utils.load_labelled_rows("toy", data_dir, max_rows=100)
    toy = np.load(data_dir / "toy.npz")

    np.testing.assert_array_equal(data.X, toy["X"])
    np.testing.assert_array_equal(data.y, toy["y"])


def test_missing_data_fall_back_to_scikit_learn(example_utils, tmp_path):
    normal = example_utils.load_normal_rows("missing", tmp_path, max_rows=100)
    labelled = example_utils.load_labelled_rows("missing", tmp_path, max_rows=10_000)

    assert (normal.name, normal.X.shape) == ("digits", (100, 64))
    assert labelled.name == "breast_cancer"
    assert labelled.y.mean() == pytest.approx(0.05, abs=0.005)


def test_dequantize_adds_unit_noise_to_integer_columns_only(example_utils, data_dir):
    X = np.load(data_dir / "toy.npz")["X"]
    dequantized = example_utils.dequantize(X, random_state=0)

    np.testing.assert_array_equal(dequantized[:, 0], X[:, 0])
    noise = dequantized[:, 1] - X[:, 1]
    assert ((noise >= 0) & (noise < 1)).all() and noise.std() > 0
