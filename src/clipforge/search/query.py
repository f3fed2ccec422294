"""Queries → vectors: text, image, and composed image + text ("like this, but blue").

Composed image retrieval, zero-shot. The baseline the CIR papers start from (e.g. Pic2Word,
Saito et al. 2023; SEARLE, Baldrati et al. 2023, "image + text" rows) sums the two normalised
embeddings:

    q = normalise( normalise(e_img) + λ · normalise(e_txt) )            (λ = 1 by default)

The "text-delta" variant moves the image along the direction the text adds over a neutral prompt
(like word-vector analogies):

    q = normalise( normalise(e_img) + λ · (normalise(e_txt) − normalise(e_txt("a photo"))) )

The model runs under ``torch.no_grad`` and a lock: one forward at a time, so concurrent requests
never share activations and the thread count stays what ``torch.set_num_threads`` allows. How a
query becomes one vector (text, image, item or composed) is :meth:`.searcher.Searcher._dense_query`,
which also batches a server's concurrent texts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..common.vectors import l2_normalize as normalise  # the name of the formulas above
from ..data.record import to_rgb


def compose(
    image_embed: np.ndarray,
    text_embed: np.ndarray,
    weight: float = 1.0,
    neutral_text_embed: np.ndarray | None = None,
) -> np.ndarray:
    """The composed query (sum, or text-delta when ``neutral_text_embed`` is given) [D]."""
    direction = normalise(text_embed)
    if neutral_text_embed is not None:
        direction = direction - normalise(neutral_text_embed)
    return normalise(normalise(image_embed) + weight * direction)


@dataclass
class Query:
    """What a search asks for; at least one of ``text``, ``image``, ``item_id``."""

    text: str | None = None
    image: Image.Image | None = None
    item_id: int | None = None  # "more like this": the indexed item's own vector
    text_weight: float = 1.0  # λ of the composed query
    text_delta: bool = False  # use the text-delta variant
    neutral_text: str = "a photo"

    def __post_init__(self):
        if self.text is not None and not self.text.strip():
            self.text = None
        if self.text is None and self.image is None and self.item_id is None:
            raise ValueError("a query needs text, an image or an item id")


class QueryEncoder:
    """Text / images → normalised embeddings [D] (and lexical vectors [V] when heads exist)."""

    def __init__(self, model, preprocess, tokenizer, sparse_encoder=None):
        if tokenizer is None:
            raise ValueError("the model has no tokenizer; text queries need one")
        self.model, self.preprocess, self.tokenizer = model.eval(), preprocess, tokenizer
        self.sparse_encoder = sparse_encoder
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self.model.config.embed_dim

    def _token_ids(self, texts: list[str]) -> torch.Tensor:
        """[B, T'] ids cut after the longest row's end-of-text token: the causal text tower pools
        at each row's own end-of-text token, so the padding after it changes nothing, and short
        queries cost T'/T of the work."""
        ids = self.tokenizer(texts)  # [B, T]
        is_end = ids == self.model.config.text.eos_token_id
        ends = torch.where(is_end.any(1), is_end.int().argmax(1), ids.shape[1] - 1)
        return ids[:, : int(ends.max()) + 1]

    @torch.no_grad()
    def texts(self, texts: list[str]) -> np.ndarray:
        """Embeddings [B, D] of ``texts`` in one forward."""
        ids = self._token_ids(texts)
        with self._lock:
            return self.model.encode_text(ids, normalize=True).float().numpy()

    @torch.no_grad()
    def text(self, text: str) -> np.ndarray:
        return self.texts([text])[0]

    @torch.no_grad()
    def image(self, image: Image.Image) -> np.ndarray:
        pixels = self.preprocess(to_rgb(image, self.preprocess.preprocess.background))[None]
        with self._lock:
            return self.model.encode_image(pixels, normalize=True)[0].float().numpy()

    @torch.no_grad()
    def text_sparse(self, text: str) -> np.ndarray | None:
        if self.sparse_encoder is None:
            return None
        ids = self._token_ids([text])
        with self._lock:
            _, tokens, mask = self.model.encode_text(ids, normalize=True, return_tokens=True)
            return self.sparse_encoder.encode_text_sparse(tokens, mask)[0].float().numpy()

    @torch.no_grad()
    def image_sparse(self, image: Image.Image) -> np.ndarray | None:
        if self.sparse_encoder is None:
            return None
        pixels = self.preprocess(to_rgb(image, self.preprocess.preprocess.background))[None]
        with self._lock:
            _, tokens = self.model.encode_image(pixels, normalize=True, return_tokens=True)
            return self.sparse_encoder.encode_image_sparse(tokens)[0].float().numpy()
