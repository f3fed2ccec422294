"""EDA-style caption augmentation: each operation by hand, determinism, edge cases."""

from __future__ import annotations

import random
from collections import Counter

from clipforge.data.text_augment import eda_augment, random_deletion, random_insertion, random_swap

CAPTION = "a small red apple on a wooden table"


def test_swap_exchanges_the_positions_rng_draws():
    words = CAPTION.split()
    first, second = random.Random(3).sample(range(len(words)), 2)
    expected = list(words)
    expected[first], expected[second] = expected[second], expected[first]
    assert random_swap(words, 1, random.Random(3)) == expected
    assert words == CAPTION.split()  # the input is not modified


def test_deletion_drops_words_whose_draw_is_below_p():
    words = CAPTION.split()
    draws = random.Random(5)
    expected = [w for w in words if draws.random() >= 0.5]
    assert random_deletion(words, 0.5, random.Random(5)) == expected
    assert random_deletion(words, 1.0, random.Random(0)) in [[w] for w in words]  # keeps one


def test_insertion_adds_words_of_the_caption_itself():
    words = CAPTION.split()
    out = random_insertion(words, 3, random.Random(1))
    assert len(out) == len(words) + 3
    assert set(out) == set(words)
    assert not Counter(words) - Counter(out)  # every original word is still there


def test_eda_is_deterministic_given_the_rng_and_varies_with_it():
    outputs = {eda_augment(CAPTION, random.Random(seed)) for seed in range(30)}
    assert eda_augment(CAPTION, random.Random(7)) == eda_augment(CAPTION, random.Random(7))
    assert len(outputs) > 5
    for text in outputs:
        assert set(text.split()) <= set(CAPTION.split())
        assert abs(len(text.split()) - len(CAPTION.split())) <= 8


def test_eda_edge_cases():
    assert eda_augment("", random.Random(0)) == ""
    assert eda_augment("   ", random.Random(0)) == "   "
    for seed in range(10):  # one word: swap/deletion keep it, insertion repeats it
        assert eda_augment("apple", random.Random(seed)) in ("apple", "apple apple")


def test_loader_uses_it_for_text_view2():
    from clipforge.data.loader import LoaderConfig, SampleMaker, sample_rng
    from clipforge.data.transforms import ImageTransform
    from clipforge.models import model_config

    from synthetic import ShapesSource

    preprocess = model_config("tiny").preprocess
    maker = SampleMaker(
        ImageTransform(preprocess, train=True), LoaderConfig(extra_inputs=("text_view2",))
    )
    first = maker(ShapesSource(4)[0], sample_rng(0, 0, 0))
    again = maker(ShapesSource(4)[0], sample_rng(0, 0, 0))
    assert first.extras["text_view2"] == again.extras["text_view2"]
    assert set(first.extras["text_view2"].split()) <= set(first.caption.split())
