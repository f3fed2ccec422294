"""``--time-budget`` on a controlled clock: the plan follows the measured step time, the run
ends inside the budget, and its last step runs at the schedule's final learning rate."""

from __future__ import annotations

import json
import multiprocessing
import time

import pytest

from clipforge.training import TrainConfig, train, trainer
from clipforge.training.budget import BudgetPlanner
from clipforge.training.clock import CpuClock

from synthetic import ShapesSource, micro_model_overrides


class SteppingClock:
    """Stands in for the step clock: the trainer reads it at the start and end of each step,
    and step ``k`` takes ``duration(k)`` seconds."""

    def __init__(self, duration):
        self.duration, self.now, self.calls = duration, 0.0, 0

    def __call__(self) -> float:
        if self.calls % 2 == 1:
            self.now += self.duration(self.calls // 2)
        self.calls += 1
        return self.now


def budget_config(out, minutes: float) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "model": {
                "name": "tiny",
                "overrides": micro_model_overrides(),
                "tokenizer_vocab_size": 300,
            },
            "data": {"batch_size": 8, "workers": 0, "val": None},
            "optim": {"lr": 1e-3, "min_lr_fraction": 0.1},
            "run": {"out": str(out), "time_budget": minutes, "log_every": 1, "progress": False},
        }
    )


def test_budget_is_replanned_when_steps_slow_down(tmp_path, monkeypatch, capsys):
    # a 3 s warm-up step, 1 s steps, then from step 10 on 2 s steps: 3 + 9 + 9·2 = 30 s
    clock = SteppingClock(lambda k: 3.0 if k == 0 else 1.0 if k < 10 else 2.0)
    monkeypatch.setattr(trainer, "step_clock", clock)
    result = train(budget_config(tmp_path / "run", minutes=0.5), ShapesSource(48))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert result.steps == 19  # planned 28 at 1 s/step, then re-planned
    assert summary["train_seconds"] <= 30.0
    assert rows[-1]["step"] == 19
    assert rows[-1]["lr"] == pytest.approx(1e-4)  # decayed to min_lr_fraction · lr
    assert rows[-2]["lr"] > rows[-1]["lr"]
    said = capsys.readouterr().err
    assert "planned 28 steps" in said and "time budget: 19 steps in 30.0 s" in said


def test_budget_plans_more_steps_when_steps_speed_up(tmp_path, monkeypatch):
    # 2 s steps, then 0.5 s steps from step 4: 4·2 + 14·0.5 = 15 s
    clock = SteppingClock(lambda k: 2.0 if k < 4 else 0.5)
    monkeypatch.setattr(trainer, "step_clock", clock)
    result = train(budget_config(tmp_path / "run", minutes=0.25), ShapesSource(48))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert result.steps == 18
    assert rows[-1]["lr"] == pytest.approx(1e-4)


def test_planner_leaves_out_the_warmup_step_and_reacts_to_the_last_one():
    planner = BudgetPlanner(seconds=100.0)
    assert planner.plan(0, 0.0) is None  # nothing measured yet
    planner.observe(10.0)  # warm-up: a stand-in only
    assert planner.plan(1, 10.0) == 1 + 9
    for _ in range(5):
        planner.observe(1.0)
    assert planner.plan(6, 15.0) == 6 + 85
    planner.observe(3.0)  # a slow-down counts at once
    assert planner.plan(7, 18.0) == 7 + 27
    assert planner.plan(7, 101.0) == 7  # over budget: stop


@pytest.mark.parametrize("total", [2, 3, 20])
def test_the_last_step_runs_at_the_floor_however_short_the_plan(total):
    from clipforge.training.optim import WarmupCosine

    schedule = WarmupCosine(1.0, total, warmup_fraction=0.05, min_lr_fraction=0.1)
    assert schedule.lr(total - 1) == pytest.approx(0.1)
    assert schedule.lr(0) > schedule.lr(total - 1)


def burn_cpu(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_cpu_clock_counts_children_and_keeps_exited_ones(tmp_path):
    clock = CpuClock()
    start = clock()
    child = multiprocessing.get_context("fork").Process(target=burn_cpu, args=(0.6,))
    child.start()
    seen = start
    while child.is_alive():  # read while the child runs, as the trainer reads its workers
        now = clock()
        assert now >= seen
        seen = now
        time.sleep(0.05)
    child.join()
    after = clock()
    # the child's 0.6 CPU seconds count though it has exited (as seen at its last reading)
    assert after - start >= 0.4
    # a sleeping process costs no CPU: the clock does not move like a wall clock
    before_sleep = clock()
    time.sleep(0.3)
    assert clock() - before_sleep < 0.1


def test_budget_clock_choice_is_validated(tmp_path):
    with pytest.raises(ValueError, match="run.budget_clock"):
        TrainConfig.from_dict({"run": {"budget_clock": "tsc"}})


def test_cpu_budget_is_counted_in_cpu_seconds(tmp_path, monkeypatch):
    # a wall clock that runs 1000× fast would end a wall budget after the first step;
    # a CPU budget does not look at it
    fast_wall = SteppingClock(lambda k: 1000.0)
    monkeypatch.setattr(trainer, "step_clock", fast_wall)
    config = budget_config(tmp_path / "run", minutes=0.05)
    config.run.budget_clock = "cpu"
    result = train(config, ShapesSource(48))
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert fast_wall.calls == 0
    assert result.steps > 1
    assert summary["train_seconds"] <= 3.0 + 0.5  # the CPU budget, plus at most one step
