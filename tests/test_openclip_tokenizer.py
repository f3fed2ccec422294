"""OpenCLIP's tokenizer, shipped with clipforge: the same ids as ``open_clip``'s own code
(``open_clip/tokenizer.py`` of the installed package, see :mod:`openclip_oracle`)."""

from __future__ import annotations

import pytest
import torch

from clipforge.data.openclip_tokenizer import openclip_tokenizer
from clipforge.data.tokenizer import Tokenizer

from openclip_oracle import openclip_tokenizer_module

TEXTS = [
    "a photo of a cat",
    "It’s a  DOG!!",  # curly apostrophe: ftfy straightens it, so "'s" splits as in ASCII
    "&amp;lt;b&amp;gt; bold",  # HTML entities, escaped twice
    "Ã©tÃ© café naïve",  # mojibake repaired by ftfy
    "123 4567 numbers, 3.14",
    "emoji 🐶🐱 and 日本語のテキスト",
    "can't won't they're I'll we've",
    "",
    "   ",
    "ﬁne ligature",
    "x" * 300,
    " ".join(["word"] * 100),  # longer than the context: cut, EOT kept
    "<end_of_text> inside",
    "Hello\tworld\nnew line",
    "Ελληνικά ΣΊΣΥΦΟΣ",
    "don''t -'s",
    "ﾊﾝｶｸ full-width ＡＢＣ",
]


@pytest.fixture(scope="module")
def theirs():
    return openclip_tokenizer_module().SimpleTokenizer()


def test_ids_equal_openclip(theirs):
    ours = openclip_tokenizer()
    assert (ours.vocab_size, ours.sot_id, ours.eot_id, ours.pad_id) == (49408, 49406, 49407, 0)
    expected = theirs(TEXTS)
    got = ours(TEXTS)
    assert got.shape == expected.shape == (len(TEXTS), 77)
    for text, row, want in zip(TEXTS, got, expected):
        assert torch.equal(row, want), text


def test_context_length_and_cut_keep_eot(theirs):
    ours = openclip_tokenizer(context_length=16)
    text = "one two three four five six seven eight nine ten eleven twelve thirteen fifteen"
    ids = ours([text])
    assert torch.equal(ids, theirs([text], context_length=16))
    assert ids[0, -1].item() == 49407


def test_saved_and_reloaded_keeps_the_clean_up(tmp_path, theirs):
    openclip_tokenizer().save(tmp_path)
    reloaded = Tokenizer.load(tmp_path)
    assert reloaded.clean == "lower" and reloaded.context_length == 77
    assert torch.equal(reloaded(TEXTS), theirs(TEXTS))


def test_decode_stops_at_eot_and_keeps_exclamation_marks():
    ours = openclip_tokenizer()
    ids = ours(["Hi!! it’s me"])[0].tolist()
    assert ids[-1] == 0  # padding is id 0 = "!", which decode must not print
    assert ours.decode(ids) == "hi !! it 's me"
