"""FILIP and LightCLIP's token term: token-wise max-similarity over the caption's *words*.

FILIP (Yao et al., ICLR 2022) released no code; the reference below is the paper's Sec. 3.1.1
written out: S^I_ij = 1/N Σ_k max_r x_kᵀy_r, S^T_ij = 1/T_j Σ_r max_k x_kᵀy_r over the words r of
caption j, L = ½[CE(s·S^I) + CE(s·S^Tᵀ)]. The start-of-text and end-of-text tokens (and padding)
are not words. LightCLIP's token term (Nie et al. 2023) is ½[CE(s·S^T) + CE(s·S^Tᵀ)].
"""

from __future__ import annotations

import math

import pytest
import torch

from clipforge.models.clip import ModelOutput
from clipforge.objectives import OBJECTIVES
from clipforge.objectives.common import word_mask
from clipforge.objectives.filip import FilipLoss, filip_scores, filip_similarity

from reference_math import ce, t

SCALE = 3.0
# two images of 2 patches, two captions laid out as the towers make them:
# [SOT, word, word, EOT, pad] and [SOT, word, EOT, pad, pad]
PATCHES = [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0], [0.6, 0.8, 0.0]]]
TOKENS = [
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.6, 0.8], [0.6, 0.8, 0.0], [9.0, 9.0, 9.0]],
    [[1.0, 0.0, 0.0], [0.0, 0.8, 0.6], [0.0, 0.0, 1.0], [9.0, 9.0, 9.0], [9.0, 9.0, 9.0]],
]
REAL = [[True, True, True, True, False], [True, True, True, False, False]]
WORDS = [[1, 2], [1]]  # the word positions of each caption


def unit(v):
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def cos(a, b):
    return sum(x * y for x, y in zip(unit(a), unit(b)))


def scores(words):
    """S^I and S^T [2, 2] from the paper's formula, over the given token positions."""
    image_side = [
        [sum(max(cos(p, TOKENS[j][r]) for r in words[j]) for p in PATCHES[i]) / 2 for j in range(2)]
        for i in range(2)
    ]
    text_side = [
        [
            sum(max(cos(p, TOKENS[j][r]) for p in PATCHES[i]) for r in words[j]) / len(words[j])
            for j in range(2)
        ]
        for i in range(2)
    ]
    return image_side, text_side


def filip_reference(words):
    image_side, text_side = scores(words)
    image_to_text = sum(ce([SCALE * v for v in image_side[i]], i) for i in range(2)) / 2
    text_to_image = sum(ce([SCALE * text_side[i][j] for i in range(2)], j) for j in range(2)) / 2
    return (image_to_text + text_to_image) / 2


def outputs():
    return ModelOutput(
        torch.eye(2, 3),
        torch.eye(2, 3),
        torch.tensor(SCALE),
        image_tokens=torch.tensor(PATCHES),
        text_tokens=torch.tensor(TOKENS),
        text_token_mask=torch.tensor(REAL),
    )


def test_word_mask_drops_start_end_and_padding():
    assert word_mask(torch.tensor(REAL)).tolist() == [
        [False, True, True, False, False],
        [False, True, False, False, False],
    ]
    # a caption with no word between its start and end tokens keeps them (it needs a score)
    assert word_mask(torch.tensor([[True, True, False]])).tolist() == [[True, True, False]]


def test_filip_matches_the_papers_formula_over_words():
    expected = filip_reference(WORDS)
    assert OBJECTIVES.get("filip")()(outputs(), None)["loss"].item() == pytest.approx(
        expected, rel=1e-6
    )


def test_the_old_start_and_end_as_words_form_fails_the_check():
    """Before issue 18 every real token (start and end included) took part in the max."""
    old = filip_reference([[0, 1, 2, 3], [0, 1, 2]])
    assert abs(old - filip_reference(WORDS)) > 0.05
    image_side, _ = filip_similarity(
        torch.tensor(PATCHES), torch.tensor(TOKENS), torch.tensor(REAL)
    )  # the old mask, by hand
    assert torch.allclose(image_side, torch.tensor(scores([[0, 1, 2, 3], [0, 1, 2]])[0]))


def test_filip_scores_for_reranking_use_the_same_words():
    _, text_side = scores(WORDS)
    got = filip_scores(torch.tensor(PATCHES), torch.tensor(TOKENS), torch.tensor(REAL), "text")
    assert torch.allclose(got, torch.tensor(text_side))


def test_filip_scores_directions_and_chunking():
    images, texts = torch.randn(5, 4, 8), torch.randn(3, 6, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1] * 6, [1, 1, 1, 1, 0, 0]]).bool()
    s_i, s_t = filip_similarity(images, texts, word_mask(mask))
    assert torch.allclose(filip_scores(images, texts, mask, "image", chunk_size=2), s_i)
    assert torch.allclose(filip_scores(images, texts, mask, "text", chunk_size=1), s_t)
    assert torch.allclose(filip_scores(images, texts, mask), (s_i + s_t) / 2)
    with pytest.raises(ValueError, match="direction"):
        filip_scores(images, texts, mask, "sideways")


def test_lightclip_token_term_uses_words_only():
    _, text_side = scores(WORDS)
    logits = [[SCALE * v for v in row] for row in text_side]
    token = (
        sum(ce(logits[i], i) for i in range(2))
        + sum(ce([logits[i][j] for i in range(2)], j) for j in range(2))
    ) / 4
    objective = OBJECTIVES.get("lightclip")(token_weight=1.0)
    terms = objective(outputs(), None)
    assert terms["token"].item() == pytest.approx(token, rel=1e-6)
    _, old_side = scores([[0, 1, 2, 3], [0, 1, 2]])
    old_logits = [[SCALE * v for v in row] for row in old_side]
    old = (
        sum(ce(old_logits[i], i) for i in range(2))
        + sum(ce([old_logits[i][j] for i in range(2)], j) for j in range(2))
    ) / 4
    assert abs(old - token) > 0.02


def test_the_towers_mask_and_word_mask_leave_exactly_the_caption_tokens():
    from clipforge.data.tokenizer import Tokenizer
    from clipforge.models import create_model, model_config
    from clipforge.training.setup import set_dotted

    from synthetic import micro_model_overrides

    tokenizer = Tokenizer.train(
        ["a red circle", "a blue square"] * 20, vocab_size=300, context_length=16, min_frequency=1
    )
    config = model_config("tiny")
    for key, value in {
        **micro_model_overrides(),
        "text.vocab_size": tokenizer.vocab_size,
        "text.eos_token_id": tokenizer.eot_id,
        "text.pad_token_id": tokenizer.pad_id,
    }.items():
        set_dotted(config, key, value)
    model = create_model(config)
    ids = tokenizer(["a red circle", "square"])
    _, _, mask = model.encode_text(ids, return_tokens=True)
    words = word_mask(mask)
    specials = {tokenizer.sot_id, tokenizer.eot_id, tokenizer.pad_id}
    assert not any(int(i) in specials for i in ids[words])
    is_caption = ~torch.isin(ids, torch.tensor(sorted(specials)))
    assert words.sum(dim=1).tolist() == is_caption.sum(dim=1).tolist()
    assert words.sum(dim=1).min() >= 1


# -- a 2 × 2 case by hand, one padded word ---------------------------------------------------

FILIP_IMAGES = [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]]  # [B=2, N=2, D=2]
FILIP_TEXTS = [[[1.0, 0.0], [0.6, 0.8]], [[0.0, 1.0], [1.0, 0.0]]]  # [B=2, T=2, D=2]
FILIP_MASK = [[True, True], [True, False]]  # text 1: one pad


def filip_outputs(texts=FILIP_TEXTS, scale=2.0):
    return ModelOutput(
        t([[1.0, 0.0], [0.0, 1.0]]),
        t([[1.0, 0.0], [0.0, 1.0]]),
        t(scale),
        image_tokens=t(FILIP_IMAGES),
        text_tokens=t(texts),
        text_token_mask=torch.tensor(FILIP_MASK),
    )


def test_filip_scores_and_loss_by_hand():
    # image side S^I[i,j] = mean over patches of max over real words; text side the converse
    image_side = [[(1 + 0.8) / 2, (0 + 1) / 2], [(1 + 1) / 2, (0 + 0) / 2]]
    text_side = [[(1 + 0.8) / 2, 1.0], [(1 + 0.6) / 2, 0.0]]
    s_i, s_t = filip_similarity(t(FILIP_IMAGES), t(FILIP_TEXTS), torch.tensor(FILIP_MASK))
    assert torch.allclose(s_i, t(image_side)) and torch.allclose(s_t, t(text_side))
    image_to_text = (
        ce([2 * v for v in image_side[0]], 0) + ce([2 * v for v in image_side[1]], 1)
    ) / 2
    text_to_image = (
        ce([2 * text_side[0][0], 2 * text_side[1][0]], 0)
        + ce([2 * text_side[0][1], 2 * text_side[1][1]], 1)
    ) / 2
    loss = FilipLoss()(filip_outputs(), None)["loss"].item()
    assert loss == pytest.approx((image_to_text + text_to_image) / 2, rel=1e-6)


def test_filip_ignores_padding_tokens():
    changed = [FILIP_TEXTS[0], [[0.0, 1.0], [0.3, -0.7]]]  # only the pad moves
    assert FilipLoss()(filip_outputs(changed), None)["loss"].item() == pytest.approx(
        FilipLoss()(filip_outputs(), None)["loss"].item(), rel=1e-6
    )
    unmasked, _ = filip_similarity(t(FILIP_IMAGES), t(FILIP_TEXTS), None)
    assert unmasked[0, 1].item() == pytest.approx(1.0)  # the pad [1,0] would match patch 0
