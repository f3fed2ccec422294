"""Clean and adversarial embeddings gathered batch by batch, and their CLIP_benchmark metrics.

Zero-shot keys are ``clean_acc1``, ``clean_acc5``, ``clean_mean_per_class_recall`` and the same
with ``adv_``; retrieval keys are CLIP_benchmark's recall names with the same prefixes
(``clean_image_retrieval_recall@1`` — text → image —, ``adv_text_retrieval_recall@5`` — image →
text —, …). Texts are never perturbed, so only the image side changes between the two.
With several ε, the ``adv_`` keys are those of the largest ε and every ε also gets suffixed keys
(``adv_acc1@eps=2/255``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..metrics import classification_metrics_from_top, retrieval_recalls, top_indices


def eps_label(eps: float) -> str:
    """4/255 for a whole number of grey levels, else the value (``0.03``)."""
    levels = eps * 255
    return f"{round(levels)}/255" if abs(levels - round(levels)) < 1e-6 else f"{eps:g}"


@dataclass
class TaskScores:
    """One attacked task's gathered embeddings (rows: the images the task scores)."""

    clean: list[torch.Tensor] = field(default_factory=list)  # [b, D] per batch
    adversarial: dict[float, list[torch.Tensor]] = field(default_factory=dict)
    labels: list[torch.Tensor] = field(default_factory=list)  # zero-shot [b]
    texts: list[torch.Tensor] = field(default_factory=list)  # retrieval [m, D]
    text_owner: list[torch.Tensor] = field(default_factory=list)  # retrieval [m], global rows
    rows: int = 0

    def add(self, clean: torch.Tensor, adversarial: dict[float, torch.Tensor]) -> None:
        self.clean.append(clean.detach().cpu())
        for eps, embeds in adversarial.items():
            self.adversarial.setdefault(eps, []).append(embeds.detach().cpu())
        self.rows += len(clean)


def zeroshot_metrics(scores: TaskScores, classifier: torch.Tensor) -> dict[float | None, dict]:
    """{None: clean metrics, ε: adversarial metrics} with CLIP_benchmark's names."""
    targets = torch.cat(scores.labels)
    classifier = classifier.cpu()
    out = {}
    for eps, chunks in [(None, scores.clean), *scores.adversarial.items()]:
        top = top_indices(torch.cat(chunks), classifier, 5)
        out[eps] = classification_metrics_from_top(top, targets, classifier.shape[0])
    return out


def retrieval_metrics(scores: TaskScores, ks=(1, 5, 10)) -> dict[float | None, dict]:
    texts, owner = torch.cat(scores.texts), torch.cat(scores.text_owner)
    out = {}
    for eps, chunks in [(None, scores.clean), *scores.adversarial.items()]:
        out[eps] = retrieval_recalls(torch.cat(chunks), texts, owner, ks)
    return out


def flatten(per_task: list[dict[float | None, dict]], eps_values: tuple[float, ...]) -> dict:
    """The result's flat ``metrics`` (see the module docstring) and its per-ε ``sweep``."""
    metrics: dict[str, float] = {}
    per_eps: dict[float, dict[str, float]] = {eps: {} for eps in eps_values}
    for table in per_task:
        metrics.update({f"clean_{k}": v for k, v in table[None].items()})
    for table in per_task:
        metrics.update({f"adv_{k}": v for k, v in table[max(eps_values)].items()})
    for table in per_task:  # then every ε of a sweep, suffixed
        for eps in eps_values:
            per_eps[eps].update({f"adv_{k}": v for k, v in table[eps].items()})
            if len(eps_values) > 1:
                label = eps_label(eps)
                metrics.update({f"adv_{k}@eps={label}": v for k, v in table[eps].items()})
    sweep = [
        {"eps": eps, "eps_label": eps_label(eps), "metrics": per_eps[eps]} for eps in eps_values
    ]
    return {"metrics": metrics, "sweep": sweep}
