"""Prompt learning: CoOp context vectors, GRAM gradient regulation, few-shot curves.

``clipforge adapt prompt`` runs :func:`.curve.adapt_prompt`; ``clipforge eval zeroshot --prompt
FILE`` classifies with a saved prompt (:func:`.prompt_file.load_prompt`).
"""

from __future__ import annotations

from .curve import AdaptConfig, adapt_prompt, parse_shots, plot_curve
from .few_shot import k_shot_indices
from .gram import regulated_meta_step
from .learner import PromptLearner
from .prompt_file import load_prompt, save_prompt
from .tuning import PromptTuningConfig, train_prompt

__all__ = [
    "AdaptConfig",
    "PromptLearner",
    "PromptTuningConfig",
    "adapt_prompt",
    "k_shot_indices",
    "load_prompt",
    "parse_shots",
    "plot_curve",
    "regulated_meta_step",
    "save_prompt",
    "train_prompt",
]
