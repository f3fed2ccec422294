"""Multinomial logistic regression on frozen features, and CLIP_benchmark's sweep of its L2 weight.

The probe is the linear classifier of Radford et al. 2021, App. A.3: logits = X W + b, fitted by
minimising the convex objective

    mean_i CE(x_i W + b, y_i) + λ/2 · ‖W‖²_F          (the bias is not regularised)

with full-batch L-BFGS (strong-Wolfe line search) from zero weights, so a fit is deterministic —
the paper used scikit-learn's L-BFGS; CLIP_benchmark replaced it with AdamW on mini-batches.

λ is chosen on a validation set exactly as CLIP_benchmark's ``linear_probe.find_peak`` search
does: the grid is 97 values logspace(-6, 2); first the 7 values logspace(-6, 2, 7) (every 16th
grid point), then around the best one the neighbours at ±8, ±4, ±2, ±1 grid steps, keeping the
first value with the strictly highest validation top-1 accuracy (ties keep the earlier, i.e. the
one evaluated first). Fits are memoised, so a grid point is fitted at most once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

L2_GRID: tuple[float, ...] = tuple(torch.logspace(-6, 2, 97, dtype=torch.float64).tolist())
INITIAL_STRIDE = 16  # logspace(-6, 2, 7) are grid points 0, 16, …, 96
REFINE_SPANS = (8, 4, 2, 1)


@dataclass
class LinearClassifier:
    weight: torch.Tensor  # [D, C]
    bias: torch.Tensor  # [C]

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """[N, D] → [N, C]."""
        return features.to(self.weight) @ self.weight + self.bias


def fit_logistic(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    l2: float,
    max_iter: int = 100,
) -> LinearClassifier:
    """Minimise mean cross-entropy + λ/2‖W‖² over W [D, C], b [C]; features [N, D], labels [N].

    ``max_iter`` bounds the L-BFGS iterations (with λ → 0 on separable data the optimum is at
    infinity, so the bound is what stops it).
    """
    if len(features) == 0:
        raise ValueError("no training features to fit the linear probe on")
    # fp64 on CPUs: as the fit converges, softmax tails go subnormal in fp32, and CPUs handle
    # subnormals ~100× slower (measured: 20 s vs 0.4 s for one 80×12 fit at λ = 1e-6)
    dtype = torch.float64 if features.device.type == "cpu" else torch.float32
    features = features.to(dtype)
    labels = labels.to(features.device).long()
    weight = torch.zeros(features.shape[1], num_classes, dtype=dtype, device=features.device)
    bias = torch.zeros(num_classes, dtype=dtype, device=features.device)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(features @ weight + bias, labels) + 0.5 * l2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return LinearClassifier(weight.detach(), bias.detach())


def top1_accuracy(classifier: LinearClassifier, features: torch.Tensor, labels: torch.Tensor):
    predictions = classifier.logits(features).argmax(dim=1).cpu()
    return (predictions == labels.cpu()).double().mean().item()


@dataclass
class SweepResult:
    l2: float  # the chosen λ
    tried: list[tuple[float, float]]  # (λ, validation acc1), in the order fitted


def sweep_l2(
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    num_classes: int,
    grid: Sequence[float] = L2_GRID,
    max_iter: int = 100,
) -> SweepResult:
    """CLIP_benchmark's coarse-then-binary search of λ on validation top-1 accuracy."""
    scores: dict[int, float] = {}
    tried: list[tuple[float, float]] = []

    def score(index: int) -> float:
        if index not in scores:
            classifier = fit_logistic(*train, num_classes, grid[index], max_iter)
            scores[index] = top1_accuracy(classifier, *val)
            tried.append((grid[index], scores[index]))
        return scores[index]

    def peak(indices: Sequence[int]) -> int:
        best, best_score = indices[0], -1.0
        for index in indices:
            if score(index) > best_score:
                best, best_score = index, score(index)
        return best

    best = peak(range(0, len(grid), INITIAL_STRIDE))
    for span in REFINE_SPANS:
        best = peak([max(best - span, 0), best, min(best + span, len(grid) - 1)])
    return SweepResult(grid[best], tried)


def k_shot_indices(
    labels: torch.Tensor, k: int, num_classes: int, seed: int, class_names: Sequence[str] = ()
) -> torch.Tensor:
    """Indices of exactly ``k`` samples of each class, drawn without replacement with ``seed``.

    Every class must have at least ``k`` samples (CLIP_benchmark reports "insufficient data"
    and gives no result); the error names the short classes.
    """
    if k < 1:
        raise ValueError(f"--k-shot must be ≥ 1 samples per class, got {k}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    shuffled = labels.cpu()[order]
    chosen, short = [], []
    for label in range(num_classes):
        members = order[shuffled == label]
        if len(members) < k:
            name = class_names[label] if label < len(class_names) else str(label)
            short.append(f"{name} ({len(members)})")
        chosen.append(members[:k])
    if short:
        shown = ", ".join(short[:5]) + (f" and {len(short) - 5} more" if len(short) > 5 else "")
        raise ValueError(
            f"--k-shot {k}: {len(short)} classes have fewer than {k} training samples: {shown}"
        )
    return torch.cat(chosen).sort().values


def stratified_split(
    labels: torch.Tensor, proportion: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices): round(proportion × n_c) of each class c to validation,
    at random with ``seed``; a class with one sample stays in training."""
    if not 0 < proportion < 1:
        raise ValueError(f"validation proportion must be in (0, 1), got {proportion}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    shuffled = labels.cpu()[order]
    train, val = [], []
    for label in shuffled.unique().tolist():
        members = order[shuffled == label]
        held = min(round(proportion * len(members)), len(members) - 1)
        val.append(members[:held])
        train.append(members[held:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values
