"""Where a run stands: the typed state the loop advances and a checkpoint saves.

``training_state.pt`` stores :meth:`TrainState.to_dict` (the same keys as before this class
existed, plus ``optimizer`` and ``rng`` added by the checkpoint writer), so old checkpoints load
and new ones stay readable by a plain ``torch.load``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..data.record import BadRecordError

MAX_SKIPPED_EXAMPLES = 20  # bad records named in metrics.json; the rest are only counted


@dataclass
class TrainState:
    """Position and counters of a run (all reproduced exactly on resume)."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # data epoch the next batch comes from
    batch_in_epoch: int = 0  # batches of that epoch already consumed
    samples: int = 0  # samples seen, all ranks
    skipped: int = 0  # bad records skipped, all epochs
    skipped_per_epoch: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[dict[str, str]] = field(default_factory=list)
    train_seconds: float = 0.0  # time in optimizer steps (incl. data waits)
    total_steps: int | None = None  # the plan; None until a time budget sets it

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TrainState:
        """The state in a checkpoint's dict; other keys (``optimizer``, ``rng``) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})

    def record_skipped(
        self, skipped: list[tuple[str, str]], epoch: int, stop_in: str | None = None
    ) -> None:
        """Count bad records ``(key, reason)`` of a batch, naming the first few; with
        ``stop_in`` (a data spec: --strict) stop at the first, naming it and that data. Raised
        here, in the main process: from a loader worker it would arrive wrapped in the worker's
        traceback."""
        if not skipped:
            return
        if stop_in is not None:
            key, reason = skipped[0]
            raise BadRecordError(
                key, f"{reason} (in {stop_in}; --strict stops at the first bad record)"
            )
        self.skipped += len(skipped)
        self.skipped_per_epoch[str(epoch)] = self.skipped_per_epoch.get(str(epoch), 0) + len(
            skipped
        )
        room = max(0, MAX_SKIPPED_EXAMPLES - len(self.skipped_examples))
        self.skipped_examples.extend({"key": k, "reason": r} for k, r in skipped[:room])
