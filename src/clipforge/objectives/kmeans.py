"""Spherical k-means: unit-norm centres by cosine assignment (MLCD's clustering step)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def spherical_kmeans(
    points: torch.Tensor, k: int, iterations: int = 20, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Unit-norm centres [k, D] of unit-norm ``points`` [N, D]: k-means++ seeding, then Lloyd steps
    with cosine assignment and re-normalised means. Empty clusters are re-seeded at the point
    farthest from its centre."""
    points = F.normalize(points.float(), dim=-1)
    count = points.shape[0]
    if count < k:
        raise ValueError(f"k-means needs at least k={k} points, got {count}")
    first = int(torch.randint(count, (1,), generator=generator))
    seeds = [points[first]]
    distance = (1 - points @ points[first]).clamp(min=0)  # [N]
    for _ in range(1, k):
        weights = distance if distance.sum() > 0 else torch.ones_like(distance)
        index = int(torch.multinomial(weights.cpu(), 1, generator=generator))
        seeds.append(points[index])
        distance = torch.minimum(distance, (1 - points @ points[index]).clamp(min=0))
    centres = torch.stack(seeds)
    for _ in range(iterations):
        similarity = points @ centres.T  # [N, k]
        assignment = similarity.argmax(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assignment, points)
        sizes = torch.bincount(assignment, minlength=k)
        empty = (sizes == 0).nonzero().flatten()
        if len(empty):
            worst = similarity.max(dim=1).values.argsort()[: len(empty)]
            sums[empty] = points[worst]
        centres = F.normalize(sums, dim=-1)
    return centres
