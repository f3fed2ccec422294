"""LexLIP against the released phase-2 loss (github.com/ChiYeungLaw/LexLIP-ICCV23).

The reference below is written from ``Phase2/src/modules/itr_module.py`` (``encode_image`` /
``encode_text``: relu → max over tokens → log(1 + ·), padding pushed to −1e6 first) and
``Phase2/src/modules/objectives.py`` (``compute_contrastive``: ``F.normalize`` the bottleneck
vectors, ``CL4MoCo`` at ``T = 0.05``, ``0.002 · (FLOAP(text) + FLOAP(image))`` on the normalised
vectors). clipforge replaces the MoCo queue with in-batch negatives, so the reference is run with
momentum keys equal to the online ones and each row's queue holding the other samples' keys.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clipforge.models.clip import ModelOutput
from clipforge.models.lexicon import LexiconHeads
from clipforge.objectives import OBJECTIVES
from clipforge.objectives.lexlip import LexLipLoss
from clipforge.search.sparse import SparseIndex

from tiny_clip import tiny_model

B, N, T, D, V = 3, 4, 5, 6, 8


def case():
    generator = torch.Generator().manual_seed(3)
    heads = LexiconHeads(D, V)
    with torch.no_grad():
        for proj in (heads.image_proj, heads.text_proj):
            proj.weight.copy_(torch.randn(V, D, generator=generator))
            proj.bias.copy_(0.3 * torch.randn(V, generator=generator))
    patches = torch.randn(B, N, D, generator=generator)
    words = torch.randn(B, T, D, generator=generator)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    return heads, patches, words, mask


def reference_bottleneck(tokens, norm, proj, masks=None):
    """itr_module.encode_*: MLM logits, padding −1e6, relu, max over tokens, log(1 + ·)."""
    x = F.layer_norm(tokens.double(), (D,), norm.weight.double(), norm.bias.double(), norm.eps)
    mlm_logits = x @ proj.weight.double().T + proj.bias.double()  # [B, L, V]
    if masks is not None:
        mlm_logits = mlm_logits + (1 - masks.double().unsqueeze(-1)) * (-1e6)
    mlm_logits = torch.max(mlm_logits, torch.zeros_like(mlm_logits))
    pooled = torch.max(mlm_logits, dim=1)[0]
    return torch.log(1 + pooled)


def cl4moco_in_batch(text_reps, image_reps, temperature):
    """CL4MoCo with moco keys = online reps and row i's queue = the other rows' keys."""
    losses_t2i, losses_i2t = [], []
    for i in range(len(text_reps)):
        others = [j for j in range(len(text_reps)) if j != i]
        t2i = (
            torch.cat([(text_reps[i] @ image_reps[i]).view(1), text_reps[i] @ image_reps[others].T])
            / temperature
        )
        i2t = (
            torch.cat([(image_reps[i] @ text_reps[i]).view(1), image_reps[i] @ text_reps[others].T])
            / temperature
        )
        losses_t2i.append(-torch.log_softmax(t2i, 0)[0])
        losses_i2t.append(-torch.log_softmax(i2t, 0)[0])
    return (torch.stack(losses_t2i).mean() + torch.stack(losses_i2t).mean()) / 2


def floap(batch_rep):
    return torch.sum(torch.mean(torch.abs(batch_rep), dim=0) ** 2)


def reference_loss(heads, patches, words, mask, temperature=0.05):
    text_reps = F.normalize(reference_bottleneck(words, heads.text_norm, heads.text_proj, mask))
    image_reps = F.normalize(reference_bottleneck(patches, heads.image_norm, heads.image_proj))
    floap_loss = 0.002 * (floap(text_reps) + floap(image_reps))
    return cl4moco_in_batch(text_reps, image_reps, temperature) + floap_loss


def old_loss(heads, patches, words, mask):
    """clipforge before issue 18: raw sparse dot products at τ = 1, FLOPS on raw vectors."""
    text = reference_bottleneck(words, heads.text_norm, heads.text_proj, mask)
    image = reference_bottleneck(patches, heads.image_norm, heads.image_proj)
    return cl4moco_in_batch(text, image, 1.0) + 0.002 * (floap(text) + floap(image))


def objective_loss(heads, patches, words, mask):
    objective = OBJECTIVES.get("lexlip")()  # the defaults: τ = 0.05, FLOPS 0.002
    objective.heads = heads
    outputs = ModelOutput(
        torch.zeros(B, D),
        torch.zeros(B, D),
        torch.tensor(1.0),
        image_tokens=patches,
        text_tokens=words,
        text_token_mask=mask,
    )
    return objective(outputs, None)


def test_lexlip_matches_the_released_loss_number_for_number():
    heads, patches, words, mask = case()
    expected = reference_loss(heads, patches, words, mask)
    terms = objective_loss(heads, patches, words, mask)
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms["loss"].item() > 1.0  # a non-trivial case, not a saturated one


def test_the_old_raw_dot_product_form_fails_the_reference_check():
    heads, patches, words, mask = case()
    expected = reference_loss(heads, patches, words, mask).item()
    assert abs(old_loss(heads, patches, words, mask).item() - expected) > 0.1
    assert (
        abs(
            old_loss(heads, patches, words, mask).item()
            - objective_loss(heads, patches, words, mask)["loss"].item()
        )
        > 0.1
    )


def test_lexicon_vectors_are_unit_norm_non_negative_and_keep_their_zeros():
    heads, _, words, mask = case()
    weights = heads.encode_text_sparse(words, mask)
    raw = reference_bottleneck(words, heads.text_norm, heads.text_proj, mask)
    assert torch.allclose(weights.norm(dim=-1), torch.ones(B), atol=1e-6)
    assert (weights >= 0).all()
    assert torch.equal(weights == 0, raw == 0)  # the index stays as sparse
    assert raw.norm(dim=-1).max() > 1.5  # so normalising does change them
    assert not torch.allclose(heads.encode_text_sparse(words)[0], weights[0])  # pads excluded


def test_the_sparse_index_scores_what_the_objective_trains():
    """Index image vectors, query with a text vector: score / τ is the objective's logit."""
    heads, patches, words, mask = case()
    images = heads.encode_image_sparse(patches).detach()
    texts = heads.encode_text_sparse(words, mask).detach()
    index = SparseIndex(images.numpy())
    trained_logits = (texts @ images.T / LexLipLoss().temperature).numpy()
    for row in range(B):
        scores = index.scores(texts[row].numpy())
        np.testing.assert_allclose(scores / 0.05, trained_logits[row], rtol=1e-5, atol=1e-5)
        assert np.all(scores <= 1 + 1e-6)  # cosines of unit vectors


def test_search_imports_the_heads_from_models_not_from_the_objective():
    import ast
    from pathlib import Path

    from clipforge.search import lexicon

    tree = ast.parse(Path(lexicon.__file__).read_text())
    modules = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert "models.lexicon" in modules and not any("objectives" in m for m in modules)
    assert LexLipLoss().temperature == 0.05 and math.isclose(LexLipLoss().flops_weight, 0.002)


# -- the heads saved with a run --------------------------------------------------------------


def test_lexicon_heads_round_trip_through_the_run_directory(tmp_path):
    from clipforge.search.lexicon import load_lexicon_heads
    from clipforge.training.checkpoint import save_objectives

    model = tiny_model()
    objective = LexLipLoss()
    objective.setup(model)
    assert objective.heads.image_proj.weight.shape == (50, 32)  # vocab × embed_dim
    assert all(key.startswith("heads.") for key in objective.state_dict())
    save_objectives(tmp_path, {"lexlip": objective})
    heads = load_lexicon_heads(tmp_path, model)
    tokens = torch.randn(3, 4, 32)
    assert torch.equal(
        heads.encode_image_sparse(tokens), objective.heads.encode_image_sparse(tokens)
    )
    rebuilt = LexiconHeads.from_state_dict(objective.heads.state_dict())
    assert (rebuilt.embed_dim, rebuilt.vocab_size) == (32, 50)
