"""What a run tells its user: a header, plain progress lines in a log, and an end-of-run table
with chance levels, the meaning of modality_gap and the next commands."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from clipforge.training import TrainConfig, train
from clipforge.training.report import GAP_LINE, chance_level, format_summary
from clipforge.training.state import TrainState

from synthetic import ShapesSource, micro_model_overrides


def test_chance_levels_by_hand():
    sizes = {"classes": 10, "images": 20, "texts": 40}
    assert chance_level("acc1", sizes) == pytest.approx(0.1)
    assert chance_level("acc5", sizes) == pytest.approx(0.5)
    assert chance_level("mean_per_class_recall", sizes) == pytest.approx(0.1)
    assert chance_level("image_retrieval_recall@5", sizes) == pytest.approx(5 / 20)
    # an image has 2 of the 40 captions: P(one of them in a random top 1) = 2/40
    assert chance_level("text_retrieval_recall@1", sizes) == pytest.approx(2 / 40)
    assert chance_level("text_retrieval_recall@5", sizes) == pytest.approx(
        1 - math.comb(38, 5) / math.comb(40, 5)
    )
    assert chance_level("modality_gap", sizes) is None


def test_end_of_run_table_has_chance_gap_and_next_steps():
    summary = {
        "steps": 10,
        "samples_seen": 640,
        "train_seconds": 12.0,
        "precision": "fp32",
        "skipped_records": {"count": 0},
        "eval": {"acc1": 0.31, "image_retrieval_recall@1": 0.2, "modality_gap": 0.84},
        "eval_sizes": {"classes": 4, "images": 50, "texts": 50},
        "config": {"data": {"train": "folder:my data", "val": "builtin:emoji?split=val"}},
    }
    table = format_summary(summary, Path("runs/x"))
    assert "chance" in table.splitlines()[2]
    assert "acc1" in table and " 25.00 %" in table  # 1 of 4 classes
    assert "image_retrieval_recall@1" in table and "2.00 %" in table
    assert GAP_LINE in table
    assert "clipforge eval retrieval --model runs/x --data 'builtin:emoji?split=val'" in table
    assert "clipforge embed --model runs/x --data 'folder:my data' --out runs/x/embeddings" in table
    assert "clipforge serve --index runs/x/index" in table


def test_a_logged_run_gets_a_header_and_plain_progress_lines(tmp_path, capsys):
    config = TrainConfig.from_dict(
        {
            "model": {
                "name": "tiny",
                "overrides": micro_model_overrides(),
                "tokenizer_vocab_size": 300,
            },
            "data": {"batch_size": 8, "workers": 0, "val": None},
            "run": {"out": str(tmp_path / "run"), "steps": 4, "log_every": 2, "progress": True},
        }
    )
    train(config, ShapesSource(48))
    err = capsys.readouterr().err  # not a terminal, as in a log file or CI
    assert "\r" not in err  # no progress-bar redraws
    assert "48 samples, batch 8, 6 steps per epoch" in err
    assert "plan: 4 steps;" in err
    steps = [line for line in err.splitlines() if line.startswith("[clipforge] step ")]
    assert [line.split()[2] for line in steps] == ["2/4", "4/4"]


def test_train_state_reads_a_checkpoint_dict_and_writes_the_same_keys():
    saved = {
        "step": 12,
        "epoch": 2,
        "batch_in_epoch": 0,
        "samples": 96,
        "skipped": 1,
        "skipped_per_epoch": {"1": 1},
        "skipped_examples": [{"key": "a", "reason": "b"}],
        "train_seconds": 3.5,
        "total_steps": 24,
        "optimizer": {},
        "rng": {},
    }
    state = TrainState.from_dict(saved)
    assert state.step == 12 and state.total_steps == 24 and state.skipped_per_epoch == {"1": 1}
    assert state.to_dict() == {k: v for k, v in saved.items() if k not in ("optimizer", "rng")}
    state.record_skipped([("c", "unreadable")], epoch=3)
    assert state.skipped == 2 and state.skipped_per_epoch == {"1": 1, "3": 1}
