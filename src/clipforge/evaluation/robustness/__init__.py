"""Adversarial robustness and view invariance: ``clipforge eval robustness``.

PGD (white-box, per image), a universal perturbation trained on one split and tested on another,
SGA transferred from a surrogate model, and Omniview-style view consistency; see :mod:`.task`.
"""

from .config import RobustnessConfig, parse_eps, parse_eps_list
from .flags import add_arguments, config_from_args
from .pgd import pgd, project
from .task import TASK, open_robustness_data, robustness

__all__ = [
    "TASK",
    "RobustnessConfig",
    "add_arguments",
    "config_from_args",
    "open_robustness_data",
    "parse_eps",
    "parse_eps_list",
    "pgd",
    "project",
    "robustness",
]
