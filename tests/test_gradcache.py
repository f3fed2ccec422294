"""Memory and speed levers give the gradients of the plain step: GradCache, gradient
checkpointing, and the text tower skipping the padding after the batch's last EOS."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from clipforge.data.batch import Batch
from clipforge.training import TrainConfig, train
from clipforge.training.gradcache import gradcache_step
from clipforge.training.module import TrainModule

from numerics import LOSS_CURVE_RTOL, assert_same_grads
from synthetic import ShapesSource, micro_model_overrides, micro_train_module


def build_module(objective: str = "clip") -> TrainModule:
    return micro_train_module(objective)


def make_batch(size: int) -> Batch:
    generator = torch.Generator().manual_seed(1)
    text = torch.randint(3, 64, (size, 16), generator=generator)
    text[:, 9] = 2
    return Batch(
        torch.randn(size, 3, 32, 32, generator=generator), text, [str(i) for i in range(size)]
    )


def grads_of(module) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    module.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize(
    "objective,size,chunk", [("clip", 64, 16), ("siglip", 64, 16), ("clip", 24, 10)]
)
def test_gradcache_gradients_equal_the_full_batch_step(objective, size, chunk):
    module = build_module(objective)
    batch = make_batch(size)
    loss, _ = module(batch)
    loss.backward()
    expected = grads_of(module)
    cached_loss, terms = gradcache_step(module, batch, chunk)
    assert cached_loss.item() == pytest.approx(loss.item(), rel=1e-5)
    assert terms[f"{objective}/loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    assert_same_grads(grads_of(module), expected)
    assert "model.logit_scale" in expected  # the temperature gets its gradient too


def test_gradcache_replays_each_chunks_random_state():
    """With a stochastic encoder (multiplicative noise per feature), the re-run must see the first
    pass's noise: the gradient is then the one of embedding chunk by chunk with gradients.
    GradCache caches the projector outputs (``normalize=False``) and L2-normalises them itself."""
    module = build_module("clip")
    model, batch, chunk = module.model, make_batch(32), 8
    clean_image, clean_text = model.encode_image, model.encode_text

    def noisy(encode):
        def encoded(x, **kw):
            out = encode(x, **kw)
            return out * (1 + 0.5 * torch.randn_like(out))

        return encoded

    model.encode_image, model.encode_text = noisy(clean_image), noisy(clean_text)

    torch.manual_seed(5)
    images, texts = [], []
    for start in range(0, 32, chunk):  # the first pass's order of random draws
        images.append(model.encode_image(batch.images[start : start + chunk], normalize=False))
        texts.append(model.encode_text(batch.text[start : start + chunk], normalize=False))
    from clipforge.models.clip import ModelOutput

    images, texts = torch.cat(images), torch.cat(texts)
    loss, _ = module.weighted_loss(
        ModelOutput(
            F.normalize(images, dim=-1),
            F.normalize(texts, dim=-1),
            model.scale(),
            None,
            image_features=images,
            text_features=texts,
        ),
        batch,
    )
    loss.backward()
    expected = grads_of(module)
    after_reference = torch.get_rng_state()

    torch.manual_seed(5)
    gradcache_step(module, batch, chunk)
    assert_same_grads(grads_of(module), expected)
    assert torch.equal(torch.get_rng_state(), after_reference)  # one pass worth of draws


def test_gradcache_refuses_objectives_that_need_tokens(tmp_path):
    config = TrainConfig.from_dict(
        {
            "model": {
                "name": "tiny",
                "overrides": micro_model_overrides(),
                "tokenizer_vocab_size": 300,
            },
            "objectives": ["clip", "filip"],
            "optim": {"gradcache_chunk": 4},
            "data": {"batch_size": 8, "workers": 0, "val": None},
            "run": {"out": str(tmp_path / "run"), "steps": 1, "progress": False},
        }
    )
    with pytest.raises(ValueError, match="gradcache_chunk.*filip"):
        train(config, ShapesSource(16))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_trainer_with_gradcache_follows_the_plain_loss_curve(tmp_path, precision):
    """Pinned precision (``auto`` would pick bf16 on AVX-512 BF16 machines), tolerance of that
    precision: both paths run under the same autocast, so they differ by its rounding only."""

    def run(name, chunk):
        config = TrainConfig.from_dict(
            {
                "model": {
                    "name": "tiny",
                    "overrides": micro_model_overrides(),
                    "tokenizer_vocab_size": 300,
                },
                "optim": {"gradcache_chunk": chunk, "lr": 2e-3},
                "data": {"batch_size": 16, "workers": 0, "val": None},
                "run": {
                    "out": str(tmp_path / name),
                    "steps": 4,
                    "log_every": 1,
                    "progress": False,
                    "precision": precision,
                },
            }
        )
        train(config, ShapesSource(64))
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["loss"] for line in lines]

    assert run("cached", 4) == pytest.approx(run("plain", None), rel=LOSS_CURVE_RTOL[precision])


def test_gradient_checkpointing_gives_the_same_gradients():
    module = build_module("clip")
    batch = make_batch(8)
    module(batch)[0].backward()
    expected = grads_of(module)
    module.model.set_grad_checkpointing(True)
    module(batch)[0].backward()
    assert_same_grads(grads_of(module), expected)


def test_text_tower_skips_padding_exactly():
    """Pooled text embeddings (captions sorted by length, encoded in groups cut after their
    longest caption) equal those of the full padded sequences (``return_tokens`` computes
    every position), and so do their gradients."""
    module = build_module("clip")
    text = module.model.text
    ids = make_batch(32).text
    lengths = [3 + (7 * row) % 13 for row in range(32)]  # 3 … 15 tokens of 16
    for row, length in enumerate(lengths):
        ids[row, ids[row] == 2] = 5
        ids[row, length - 1] = 2
        ids[row, length:] = 0
    ids[7, ids[7] == 2] = 5  # a row without EOS: all 16
    lengths[7] = 16
    trimmed = text(ids)
    (trimmed * torch.linspace(-1, 1, 32)[:, None]).sum().backward()
    expected_grads = grads_of(module)
    full, tokens, mask = text(ids, return_tokens=True)
    (full * torch.linspace(-1, 1, 32)[:, None]).sum().backward()
    torch.testing.assert_close(trimmed, full, rtol=1e-5, atol=1e-6)
    assert tokens.shape[1] == 16 and mask.sum(dim=1).tolist() == lengths
    # the same sums over fewer (no padding) rows, in another order: fp32 rounding only; the
    # ln_final.bias gradient is Σ linspace(-1, 1)·… ≈ 0 from terms of ~1e-2, hence the floor
    assert_same_grads(grads_of(module), expected_grads, atol_floor=3e-5)


def test_a_batch_larger_than_the_data_is_refused_not_looped_forever(tmp_path):
    config = TrainConfig.from_dict(
        {
            "model": {
                "name": "tiny",
                "overrides": micro_model_overrides(),
                "tokenizer_vocab_size": 300,
            },
            "optim": {"gradcache_chunk": 8},
            "data": {"batch_size": 64, "workers": 0, "val": None},
            "run": {"out": str(tmp_path / "run"), "steps": 1, "progress": False},
        }
    )
    with pytest.raises(ValueError, match="no batch of 64"):
        train(config, ShapesSource(48))
