"""matplotlib is the ``plots`` extra: nothing imports it at module level, and a run without it
finishes with a one-line note instead of ``loss_curve.png``."""

from __future__ import annotations

import subprocess
import sys

from clipforge.training import TrainConfig, train
from clipforge.training.run_log import plot_loss_curve

from synthetic import ShapesSource, micro_model_overrides

ROWS = [{"step": 1, "loss": 2.0, "lr": 1e-3}, {"step": 2, "loss": 1.5, "lr": 5e-4}]


def block_matplotlib(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)


def test_the_loss_curve_is_drawn_when_matplotlib_is_there(tmp_path):
    assert plot_loss_curve(ROWS, tmp_path / "loss_curve.png")
    assert (tmp_path / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_the_plot_is_a_one_line_note(tmp_path, monkeypatch, capsys):
    block_matplotlib(monkeypatch)
    assert plot_loss_curve(ROWS, tmp_path / "loss_curve.png") is False
    assert not (tmp_path / "loss_curve.png").exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'clipforge[plots]'" in err


def test_a_run_without_matplotlib_finishes_and_says_why_there_is_no_plot(tmp_path, monkeypatch):
    block_matplotlib(monkeypatch)
    config = TrainConfig.from_dict(
        {
            "model": {"name": "tiny", "overrides": micro_model_overrides()},
            "data": {"batch_size": 8, "workers": 0},
            "run": {"out": str(tmp_path / "run"), "steps": 2, "progress": False},
        }
    )
    train(config, ShapesSource(16), None)
    out = tmp_path / "run"
    assert (out / "model.safetensors").exists() and not (out / "loss_curve.png").exists()
    assert (
        "loss_curve.png not drawn: matplotlib is not installed" in (out / "train.log").read_text()
    )


def test_no_clipforge_module_imports_matplotlib_at_import_time():
    script = (  # with matplotlib blocked, a module importing it at the top fails to import
        "import pkgutil, importlib, sys, clipforge\n"
        "sys.modules['matplotlib'] = None\n"
        "for info in pkgutil.walk_packages(clipforge.__path__, 'clipforge.'):\n"
        "    if not info.name.endswith('__main__'):\n"
        "        importlib.import_module(info.name)\n"
        "print(sorted(m for m, v in sys.modules.items() if m.startswith('matplotlib') and v))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.strip() == "[]"
