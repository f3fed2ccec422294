"""MLCD against the paper's Eq. 5 on unicom's PartialFC classifier (deepglint/unicom,
unicom/partial_fc.py), labels held between clusterings, and the labels surviving a checkpoint."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from clipforge.data.batch import Batch
from clipforge.models.clip import ModelOutput
from clipforge.objectives.mlcd import (
    MultiLabelClusterLoss,
    key_ids,
    mlcd_loss,
    sample_classes,
    spherical_kmeans,
)
from clipforge.training import TrainConfig, train
from clipforge.training.checkpoint import load_objectives, save_objectives

from synthetic import ShapesSource, micro_model_overrides

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def reference_loss(embeds, weight, labels, sampled, s, m):
    """Eq. 5 per row, on PartialFC logits: cos of normalised rows and sampled centres, clamped to
    [−1, 1]; CosFace margin m (CombinedMarginLoss m3) on the positives; batch mean."""
    total = 0.0
    for row, own in zip(embeds.tolist(), labels.tolist()):
        x = [v / math.sqrt(sum(u * u for u in row)) for v in row]
        negative_sum, positive_sum = 0.0, 0.0
        for cls in sampled.tolist():
            w = weight[cls].tolist()
            norm = math.sqrt(sum(u * u for u in w))
            cos = max(-1.0, min(1.0, sum(a * b / norm for a, b in zip(x, w))))
            if cls in own:
                positive_sum += math.exp(-s * (cos - m))
            else:
                negative_sum += math.exp(s * cos)
        total += math.log(1 + negative_sum) + math.log(1 + positive_sum)
    return total / len(embeds)


def reference_sample(labels, num_classes, num_sample, generator):
    """PartialFC_V2.sample: random priorities, positives forced to the top, the first
    ``num_sample`` kept in class order (only the positives when they are as many)."""
    positive = sorted(set(labels.flatten().tolist()))
    if num_sample - len(positive) < 0:
        return torch.tensor(positive)
    perm = torch.rand(num_classes, generator=generator)
    perm[positive] = 2.0
    return torch.topk(perm, k=num_sample)[1].sort()[0]


def objective_of(dim=4, **kwargs) -> MultiLabelClusterLoss:
    objective = MultiLabelClusterLoss(**kwargs)
    objective.setup(SimpleNamespace(config=SimpleNamespace(embed_dim=dim)))
    return objective.train()


def batch_of(keys) -> Batch:
    return Batch(
        torch.zeros(len(keys), 3, 2, 2), torch.zeros(len(keys), 2, dtype=torch.long), list(keys)
    )


def outputs(images) -> ModelOutput:
    return ModelOutput(images, images.detach(), torch.tensor(1.0))


def test_loss_matches_eq5_on_partial_fc_logits():
    generator = torch.Generator().manual_seed(0)
    embeds, weight = torch.randn(3, 5, generator=generator), torch.randn(10, 5, generator=generator)
    labels = torch.tensor([[0, 3], [3, 7], [1, 2]])
    sampled = torch.tensor([0, 1, 2, 3, 5, 7, 9])
    got = mlcd_loss(embeds, weight, labels, sampled, scale=4.0, margin=0.3).item()
    assert got == pytest.approx(reference_loss(embeds, weight, labels, sampled, 4.0, 0.3), rel=1e-5)


def test_class_sampling_matches_partial_fc():
    labels = torch.tensor([[4, 9], [9, 17]])
    for seed in range(3):
        got = sample_classes(labels, 20, 6, torch.Generator().manual_seed(seed))
        want = reference_sample(labels, 20, 6, torch.Generator().manual_seed(seed))
        assert torch.equal(got, want) and {4, 9, 17} <= set(got.tolist())
    assert sample_classes(labels, 20, 2, torch.Generator()).tolist() == [4, 9, 17]


CLUSTERED = dict(  # 3 clusters over a 12-entry bank, held between refreshes every 50 steps
    dim=3,
    num_clusters=3,
    positives=1,
    negative_ratio=1.0,
    scale=4.0,
    margin=0.2,
    bank_size=12,
    refresh_every=50,
)


def clustered(steps=3):
    """An objective whose bank (12 embeddings near the 3 axes, keys k0…k11) has been clustered."""
    objective = objective_of(**CLUSTERED)
    generator = torch.Generator().manual_seed(0)
    for step in range(1, steps + 1):
        keys = [f"k{4 * (step - 1) + i}" for i in range(4)]
        points = torch.eye(3)[[i % 3 for i in range(4)]] + 0.05 * torch.randn(
            4, 3, generator=generator
        )
        loss = objective(outputs(F.normalize(points, dim=-1)), batch_of(keys))["loss"]
        assert loss.item() == 0.0  # no clusters yet
        objective.after_step(None, step)
    return objective


def test_labels_are_held_until_the_next_clustering():
    objective = clustered()
    assert bool(objective.centres_ready) and len(objective.label_keys) == 12
    assert torch.allclose(objective.prototypes.detach(), objective.centres)  # W starts at C
    held, found = objective.lookup(key_ids(["k0", "k1"]))
    assert found.all()
    # k0 and k1 now embed near another axis: the held labels, not the nearest centre, are used
    moved = torch.eye(3)[[1, 2]].requires_grad_(True)
    with torch.no_grad():
        objective.prototypes.add_(0.1 * torch.randn(3, 3))  # W has trained away from C
    loss = objective(outputs(moved), batch_of(["k0", "k1"]))["loss"]
    sampled = torch.arange(3)
    expected = reference_loss(
        moved.detach(), objective.prototypes.detach(), held, sampled, 4.0, 0.2
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # the old objective recomputed labels from this embedding against the fixed centres
    old_labels = objective.nearest(moved.detach())
    old = reference_loss(moved.detach(), objective.centres, old_labels, sampled, 4.0, 0.2)
    assert not torch.equal(old_labels, held)
    assert abs(old - expected) > 0.1
    loss.backward()
    assert objective.prototypes.grad.abs().sum() > 0 and moved.grad.abs().sum() > 0
    # a new sample is labelled at first sight and keeps that label while its embedding moves
    first = F.normalize(torch.tensor([[0.1, 1.0, 0.0]]), dim=-1)
    objective(outputs(first), batch_of(["new"]))
    label = objective.lookup(key_ids(["new"]))[0]
    objective(outputs(torch.tensor([[1.0, 0.0, 0.0]])), batch_of(["new"]))
    assert torch.equal(objective.lookup(key_ids(["new"]))[0], label)
    # the next clustering relabels what the bank holds: k0, k1, new (twice) replaced k0…k3
    objective.after_step(None, 50)
    assert len(objective.label_keys) == 11
    assert objective.lookup(key_ids(["new", "k2", "k3"]))[1].tolist() == [True, False, False]


def test_held_labels_survive_a_checkpoint(tmp_path):
    objective = clustered()
    objective(outputs(F.normalize(torch.tensor([[0.0, 1.0, 0.1]]), dim=-1)), batch_of(["extra"]))
    save_objectives(tmp_path, {"mlcd": objective})
    resumed = objective_of(**CLUSTERED)
    load_objectives(tmp_path, {"mlcd": resumed})
    assert torch.equal(resumed.label_keys, objective.label_keys)
    assert torch.equal(resumed.label_table, objective.label_table)
    images = torch.eye(3)[[2, 0]]
    batch = batch_of(["extra", "k5"])
    assert resumed(outputs(images), batch)["loss"].item() == pytest.approx(
        objective(outputs(images), batch)["loss"].item(), rel=1e-6
    )


def test_teacher_labels_do_not_follow_the_student():
    objective = objective_of(
        dim=3, num_clusters=3, positives=1, negative_ratio=1.0, bank_size=12, refresh_every=50
    )
    teacher_embeds = torch.eye(3)[[0, 1, 2, 0]]
    teacher = SimpleNamespace(
        to=lambda device: None,
        model=SimpleNamespace(
            config=SimpleNamespace(preprocess=None),
            encode_image=lambda images, normalize=False: teacher_embeds,
        ),
    )
    object.__setattr__(objective, "_teacher", teacher)
    object.__setattr__(objective, "_student_preprocess", None)
    import clipforge.objectives.mlcd as mlcd_module

    original = mlcd_module.adapt_images
    mlcd_module.adapt_images = lambda images, source, target: images
    try:
        for step in range(1, 4):
            student = F.normalize(torch.randn(4, 3), dim=-1)
            objective(outputs(student), batch_of([f"s{4 * (step - 1) + i}" for i in range(4)]))
            objective.after_step(None, step)
        labels = objective.lookup(key_ids(["s0", "s1", "s2", "s3"]))[0]
        assert torch.equal(labels, objective.nearest(teacher_embeds))
    finally:
        mlcd_module.adapt_images = original


def test_spherical_kmeans_recovers_separated_clusters():
    generator = torch.Generator().manual_seed(1)
    axes = torch.eye(4)
    points = torch.cat([axes[i] + 0.1 * torch.randn(25, 4, generator=generator) for i in range(4)])
    centres = spherical_kmeans(points, 4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(centres.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert (centres @ axes.T).max(dim=0).values.min() > 0.95


def test_a_resumed_run_keeps_the_held_labels(tmp_path):
    from safetensors.torch import load_file

    def run(steps: int, resume: bool) -> dict:
        config = TrainConfig.from_yaml(
            CONFIGS / "mlcd.yaml",
            [
                f"run.out={tmp_path}",
                f"run.steps={steps}",
                "run.time_budget=null",
                "run.progress=false",
                "data.val=null",
                "data.workers=0",
                "data.batch_size=8",
                "model.tokenizer_vocab_size=300",
                f"run.resume={str(resume).lower()}",
            ],
        )
        config.objectives[1].params.update(
            num_clusters=4, positives=1, bank_size=16, refresh_every=100
        )
        config.model.overrides = micro_model_overrides()
        train(config, ShapesSource(24))
        return load_file(str(tmp_path / "objectives.safetensors"))

    first = run(3, resume=False)  # clustered after step 2; step 3 labels 8 more on first sight
    assert bool(first["mlcd.centres_ready"]) and len(first["mlcd.label_keys"]) == 16 + 8
    second = run(5, resume=True)
    keys, table = second["mlcd.label_keys"], second["mlcd.label_table"]
    where = torch.searchsorted(keys, first["mlcd.label_keys"])
    assert torch.equal(keys[where], first["mlcd.label_keys"])  # every held key is still held
    assert torch.equal(table[where], first["mlcd.label_table"])  # with the same labels
    assert torch.equal(second["mlcd.centres"], first["mlcd.centres"])
