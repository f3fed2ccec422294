"""``--time-budget``: fit the step count (and so the cosine schedule) to minutes of training.

Before every step the plan is made again from the step times measured so far::

    estimate    = max(median(last 20 step times), last step time)     # the first step of a
    total_steps = step + ⌊(budget − train_seconds) / estimate⌋         # process is left out

so a run that slows down (thermal throttling, a busy machine, a grown model) plans fewer steps
at once, and one that speeds up plans more. The schedule's ``total_steps`` follows the plan, so
the last step runs at the final learning rate and the run ends inside the budget. Taking the
max with the last step makes a slow-down count immediately; the median keeps one fast step
from planning too many.

The step times come from ``run.budget_clock`` (training/clock.py): wall seconds, or CPU
seconds of the trainer and its loader workers so a budget buys the same compute on a busy machine.
The budget counts training steps only (forward, backward, optimizer, waiting for data).
Checkpoints and evaluations are not counted: they are measured and reported separately, and
the final evaluation's duration is estimated up front so the user knows the whole wall time.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

RECENT_STEPS = 20  # step times the estimate looks at
FORWARD_SHARE = 1 / 3  # an eval forward costs ~1/3 of a training step (fwd + 2× bwd)


@dataclass
class BudgetPlanner:
    """Re-plans ``total_steps`` for a budget of ``seconds`` of training."""

    seconds: float
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_STEPS))
    seen: int = 0  # steps observed in this process (the first is a warm-up outlier)

    def observe(self, step_seconds: float) -> None:
        if self.seen == 1:
            self.recent.clear()  # the warm-up step was only a stand-in until now
        self.recent.append(step_seconds)
        self.seen += 1

    def step_estimate(self) -> float | None:
        """Seconds the next step is expected to take; None before any step was timed."""
        if not self.recent:
            return None
        return max(statistics.median(self.recent), self.recent[-1])

    def plan(self, step: int, train_seconds: float) -> int | None:
        """Total steps that fit the budget, given ``step`` done in ``train_seconds``."""
        estimate = self.step_estimate()
        if estimate is None:
            return None
        remaining = self.seconds - train_seconds
        return step + max(0, int(remaining // max(estimate, 1e-9)))


def estimate_eval_seconds(samples: int | None, seconds_per_train_sample: float) -> float | None:
    """A rough duration of an evaluation over ``samples`` images (and their captions)."""
    if not samples:
        return None
    return samples * seconds_per_train_sample * FORWARD_SHARE
