"""What a run tells the person watching it (stderr; stdout stays for results such as ``--json``).

A header first (data, samples, model, planned steps, budget), a line for every long phase, and
progress: a tqdm bar on a terminal, and when stderr is a file or a pipe (a log, CI, ``nohup``)
one plain line every ``log_every`` steps instead of thousands of carriage-return updates.

Everything said during ``train()`` also goes to the run's plain-text ``train.log`` (with a
timestamp, and the error that stopped a run): see :class:`Transcript`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from tqdm.auto import tqdm


def say(message: str) -> None:
    """One line on stderr, flushed at once (a log file shows it while the phase runs)."""
    print(f"[clipforge] {message}", file=sys.stderr, flush=True)
    record(message)


class Transcript:
    """``train.log``: what the console showed during a run (header, budget plan, logged steps,
    evaluations, the summary, the error that stopped it), as plain timestamped text.

    Lines said before the run directory exists are held, then written when :meth:`open` is
    called (rank 0, once the directory is started); a run that never got one writes nothing."""

    def __init__(self) -> None:
        self.held: list[str] = []
        self.handle: TextIO | None = None

    def write(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        lines = str(message).splitlines() or [""]
        text = "".join(f"{stamp} {line.removeprefix('[clipforge] ')}\n" for line in lines)
        if self.handle is None:
            self.held.append(text)
        else:
            self.handle.write(text)
            self.handle.flush()

    def open(self, path: Path, append: bool) -> None:
        self.handle = path.open("a" if append else "w")
        self.handle.writelines(self.held)
        self.held.clear()
        self.handle.flush()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


_transcripts: list[Transcript] = []  # the transcripts of the runs under way in this process


@contextmanager
def transcript() -> Iterator[Transcript]:
    """Records :func:`say` and :func:`record` into a :class:`Transcript` while the block runs;
    an exception leaving the block is written as its last line, then raised on."""
    current = Transcript()
    _transcripts.append(current)
    try:
        yield current
    except BaseException as error:
        what = "interrupted" if isinstance(error, KeyboardInterrupt) else "error"
        current.write(f"{what}: {type(error).__name__}: {' '.join(str(error).split())}")
        raise
    finally:
        _transcripts.remove(current)
        current.close()


def record(message: str) -> None:
    """Write ``message`` to the transcript of the run under way only (not the console)."""
    if _transcripts:
        _transcripts[-1].write(message)


def open_transcript(path: Path, append: bool = False) -> None:
    """Start writing the run under way's transcript to ``path`` (its held lines first)."""
    if _transcripts:
        _transcripts[-1].open(path, append)


def is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def count(value: float | None) -> str:
    return "unknown" if value is None else f"{value:,}"


class Progress:
    """Step progress: a bar on a terminal, else a plain line per logged step."""

    def __init__(self, enabled: bool, total: int | None, initial: int, name: str):
        self.enabled, self.total = enabled, total
        self.bar = tqdm(
            total=total,
            initial=initial,
            unit="step",
            dynamic_ncols=True,
            desc=f"train {name}",
            disable=not (enabled and is_terminal()),
        )

    def set_total(self, total: int | None) -> None:
        self.total = self.bar.total = total

    def advance(self) -> None:
        self.bar.update(1)

    def logged(self, row: dict[str, Any]) -> None:
        """A logged step's numbers: bar postfix, or one plain line when not on a terminal;
        the line goes to ``train.log`` either way."""
        total = "?" if self.total is None else self.total
        line = (
            f"step {row['step']}/{total}  loss {row['loss']:.4f}  lr {row['lr']:.3g}  "
            f"{row['samples_per_s']:.0f} samples/s"
        )
        if not self.bar.disable:
            self.bar.set_postfix(loss=f"{row['loss']:.3f}", sps=f"{row['samples_per_s']:.0f}")
            record(line)
        elif self.enabled:
            say(line)
        else:
            record(line)

    def close(self) -> None:
        self.bar.close()
