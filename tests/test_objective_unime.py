"""UniME's hard-negative loss against the released ``SimpleContrastiveLossBatchRank``
(github.com/deepglint/UniME, ``loss.py``), written out below: similarity x yᵀ, negatives above
the positive + ``threshold_value`` and the diagonal set to −inf, ``torch.topk`` of k indices,
scores of [positive, the k chosen keys] by ``bmm``, cross-entropy at label 0 over scores / τ."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clipforge.models.clip import ModelOutput
from clipforge.objectives import OBJECTIVES


def released_loss(x, y, temperature=0.02, topk=8, threshold_value=0.1):
    similarity_matrix = x @ y.T
    n = similarity_matrix.size(0)
    modified = similarity_matrix.clone()
    threshold = torch.diag(similarity_matrix).view(-1, 1) + threshold_value
    threshold_mask = (modified > threshold) & (~torch.eye(n, dtype=torch.bool))
    modified[threshold_mask] = -float("inf")
    modified.fill_diagonal_(-float("inf"))
    _, neg_indices = torch.topk(modified, topk, dim=1)
    neg_keys = y[neg_indices]  # [bs, topk, fs]
    all_keys = torch.cat([y.unsqueeze(1), neg_keys], dim=1)
    scores = torch.bmm(x.unsqueeze(1), all_keys.transpose(1, 2)).squeeze(1)
    labels = torch.zeros(n, dtype=torch.long)
    return F.cross_entropy(scores / temperature, labels)


def case(size=14, dim=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(size, dim, generator=generator, dtype=torch.float64), dim=-1)
    texts = F.normalize(
        images + 0.9 * torch.randn(size, dim, generator=generator, dtype=torch.float64), dim=-1
    )
    texts[1] = F.normalize(images[0] + 0.05 * texts[1], dim=-1)  # a false negative for image 0
    return images, texts


def unime(images, texts, **options):
    outputs = ModelOutput(images.float(), texts.float(), torch.tensor(14.0))
    return OBJECTIVES.get("unime")(**options)(outputs, None)


def test_unime_matches_the_released_loss_number_for_number():
    images, texts = case()
    cosines = images @ texts.T
    assert cosines[0, 1] > cosines[0, 0] + 0.1  # the filter has work to do
    one_way = released_loss(images, texts).item()
    assert unime(images, texts, symmetric=False)["loss"].item() == pytest.approx(one_way, rel=1e-5)
    both = (one_way + released_loss(texts, images).item()) / 2
    assert unime(images, texts)["loss"].item() == pytest.approx(both, rel=1e-5)  # defaults


def test_unime_with_the_learned_scale_and_other_k_and_margin():
    images, texts = case(seed=3)
    expected = released_loss(images, texts, temperature=1 / 14.0, topk=3, threshold_value=0.0)
    got = unime(
        images, texts, temperature=None, top_k=3, false_negative_margin=0.0, symmetric=False
    )["loss"].item()
    assert got == pytest.approx(expected.item(), rel=1e-5)


def test_the_old_hardneg_form_fails_the_reference_check():
    """clipforge before issue 18 offered UniME as hardneg(top_k=8, false_negative_margin=0.1):
    re-weighted by exp(β l) (β = 0.5) over the learned-scale logits and, when no negatives
    were dropped, every logit kept its weight ≠ 1 — not UniME's plain InfoNCE at τ = 0.02."""
    images, texts = case()
    expected = (released_loss(images, texts) + released_loss(texts, images)).item() / 2
    scale, beta = 14.0, 0.5

    def old_rows(cosines):
        logits = scale * cosines
        total = 0.0
        for r in range(len(logits)):
            kept = [
                j
                for j in range(len(logits))
                if j != r and logits[r, j] <= logits[r, r] + 0.1 * scale
            ]
            kept = sorted(kept, key=lambda j: -float(logits[r, j]))[:8]
            weights = torch.stack([torch.exp(beta * logits[r, j]) for j in kept])
            weights = weights / weights.mean()
            denominator = torch.exp(logits[r, r]) + sum(
                w * torch.exp(logits[r, j]) for w, j in zip(weights, kept)
            )
            total += float(torch.log(denominator) - logits[r, r])
        return total / len(logits)

    old = (old_rows(images @ texts.T) + old_rows(texts @ images.T)) / 2
    assert abs(old - expected) > 0.1 * expected


def test_unime_gradients_and_bad_options():
    images, texts = (x.float().requires_grad_(True) for x in case())
    unime(images, texts)["loss"].backward()
    assert images.grad.abs().sum() > 0 and texts.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="top_k"):
        OBJECTIVES.get("unime")(top_k=0)
    with pytest.raises(ValueError, match="temperature"):
        OBJECTIVES.get("unime")(temperature=0.0)


def test_a_row_with_fewer_negatives_than_k_uses_those_it_has():
    """B − 1 < k: each row's InfoNCE runs over its positive and its surviving negatives only
    (the released topk would re-admit the filtered text 1 for image 0, or the positive)."""
    images, texts = case(size=4)

    def rows(x, y):
        cosines = x @ y.T
        total = 0.0
        for i in range(len(x)):
            kept = [i] + [
                j for j in range(len(x)) if j != i and cosines[i, j] <= cosines[i, i] + 0.1
            ]
            total += float(-F.log_softmax(cosines[i, kept] / 0.02, dim=0)[0])
        return total / len(x)

    cosines = images @ texts.T
    assert cosines[0, 1] > cosines[0, 0] + 0.1  # image 0 loses text 1
    expected = (rows(images, texts) + rows(texts, images)) / 2
    assert unime(images, texts, top_k=8)["loss"].item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", ["unime", "hcl"])
def test_hard_negative_configs_train_two_steps(name, tmp_path):
    import json
    from pathlib import Path

    from clipforge.training import TrainConfig, train

    from synthetic import ShapesSource, micro_model_overrides

    config = TrainConfig.from_yaml(
        Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml",
        [
            f"run.out={tmp_path}",
            "run.steps=2",
            "run.time_budget=null",
            "run.progress=false",
            "run.log_every=1",
            "data.val=null",
            "data.workers=0",
            "data.batch_size=8",
            "model.tokenizer_vocab_size=300",
        ],
    )
    config.model.overrides = micro_model_overrides()
    train(config, ShapesSource(16))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2]
    assert all(row[f"{name}/loss"] > 0 for row in rows)
