"""The typed config of ``clipforge eval robustness`` and the parsing of ε values.

ε is an L∞ radius in pixel space [0, 1], before the model's mean/std normalisation (the
convention of the adversarial-robustness literature: ε = 4/255 means every pixel may move by at
most four grey levels). It is written as a number (``0.0157``) or a fraction (``4/255``); a list
``1/255,2/255,4/255,8/255`` sweeps it (one attack per value, an accuracy-vs-ε plot with
``--plot``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..embedding import EncodeConfig

ATTACKS = ("pgd", "uap", "sga", "views")
VIEWS = ("rotation", "perspective", "crop", "flip", "colour")


def parse_eps(text: str) -> float:
    """``"4/255"`` → 0.01568…, ``"0.03"`` → 0.03; one-line ValueError naming the text when it is
    no number or fraction, or not in (0, 1]."""
    numerator, slash, denominator = str(text).strip().partition("/")
    try:
        value = float(numerator) / float(denominator) if slash else float(numerator)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"eps {text!r}: expected a number or a fraction such as 4/255") from None
    if not 0.0 < value <= 1.0:
        raise ValueError(f"eps {text!r}: must lie in (0, 1] (pixels are in [0, 1]), got {value:g}")
    return value


def parse_eps_list(text: str) -> tuple[float, ...]:
    """``"1/255,2/255"`` → (1/255, 2/255); each value checked by :func:`parse_eps`."""
    parts = [part for part in str(text).split(",") if part.strip()]
    if not parts:
        raise ValueError(f"eps {text!r}: expected one or more values such as 4/255")
    return tuple(parse_eps(part) for part in parts)


@dataclass
class RobustnessConfig:
    """What to attack and how. Defaults: PGD-10, ε = 4/255, α = ε/4, random start.

    ``on`` names the tasks attacked: ``zeroshot`` (cross-entropy of the true class over the class
    text embeddings), ``retrieval`` (cosine of the image to its own captions) or ``auto`` (each the
    data supports: labels → zeroshot, captions → retrieval). Each task gets its own attack.
    """

    attack: str = "pgd"
    eps: tuple[float, ...] = (4 / 255,)  # strings such as "4/255" are parsed
    steps: int = 10
    step_size: float | None = None  # α; None: ε/4
    random_start: bool = True
    on: str = "auto"  # auto | zeroshot | retrieval
    limit: int | None = None  # attack N images spread evenly over the data (None: all)
    seed: int = 0
    surrogate: str | None = None  # sga: the model the attack is computed on
    sga_scales: tuple[float, ...] = (0.5, 0.75, 1.25, 1.5)  # sga: resize factors of the image set
    uap_data: str | None = None  # uap: the split δ is trained on; None: --data with split=train
    uap_epochs: int = 5  # uap: passes over uap_data
    save_perturbation: Path | None = None  # uap: write δ here (.pt)
    perturbation: Path | None = None  # uap: test a saved δ instead of training one
    views: tuple[str, ...] = VIEWS
    plot: Path | None = None  # accuracy-vs-ε PNG
    templates_file: Path | None = None  # zero-shot prompts; None: the data's, else built-in
    encode: EncodeConfig = field(default_factory=EncodeConfig)

    def __post_init__(self):
        if self.attack not in ATTACKS:
            raise ValueError(f"unknown attack {self.attack!r}; known: {', '.join(ATTACKS)}")
        given: Any = self.eps  # a YAML option or flag may give one value or strings
        if isinstance(given, (int, float, str)):
            given = (given,)
        self.eps = tuple(parse_eps(v) if isinstance(v, str) else float(v) for v in given)
        for value in self.eps:
            if not 0.0 < value <= 1.0:
                raise ValueError(f"eps {value:g}: must lie in (0, 1]")
        if self.steps < 1 or (self.step_size is not None and self.step_size <= 0):
            raise ValueError(
                f"attack steps must be ≥ 1 and step size > 0, got {self.steps} and {self.step_size}"
            )
        if self.on not in ("auto", "zeroshot", "retrieval"):
            raise ValueError(f"--on {self.on!r}: expected auto, zeroshot or retrieval")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be ≥ 1, got {self.limit}")
        if self.attack == "sga" and not self.surrogate:
            raise ValueError(
                "--attack sga needs --surrogate MODEL (the model the attack is run on)"
            )
        if self.attack == "uap" and not self.uap_data and self.perturbation is None:
            raise ValueError(
                "--attack uap needs --uap-data SPEC (the split the perturbation is trained on; "
                "default: --data with split=train) or --perturbation FILE"
            )
        if self.uap_epochs < 1 or not self.sga_scales or min(self.sga_scales) <= 0:
            raise ValueError("uap epochs must be ≥ 1 and sga scales > 0")
        unknown = set(self.views) - set(VIEWS)
        if unknown or not self.views:
            raise ValueError(f"unknown views {sorted(unknown)}; known: {', '.join(VIEWS)}")

    def alpha(self, eps: float) -> float:
        """The PGD step size for radius ``eps``: given, else ε/4."""
        return self.step_size if self.step_size is not None else eps / 4
