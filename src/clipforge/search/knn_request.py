"""What clip-retrieval's routes accept (``POST /knn-service``, ``POST /metadata``), checked.

The keys are clip-retrieval's own (``clip_back.py`` / ``clip_client.py``), so its ``ClipClient``
and its web front talk to ``clipforge serve`` unchanged. Keys it sends that need models clipforge
does not ship are accepted and have no effect, as in a clip-retrieval back started without them:
``use_safety_model``, ``use_violence_detector``, ``aesthetic_score``, ``aesthetic_weight``.
``use_mclip: true`` (a multilingual text tower) is refused. Any other key is a 422.
"""

from __future__ import annotations

from typing import Literal

from .request import MAX_TEXT_CHARS

MAX_IMAGES, MAX_RESULT_IDS, MAX_METADATA_IDS = 1000, 10_000, 1000


def _models():
    from pydantic import BaseModel, ConfigDict, Field, model_validator

    class KnnRequest(BaseModel):
        """One query (text, base64 ``image``, ``image_url`` or ``embedding_input``) on one index."""

        model_config = ConfigDict(extra="forbid")
        text: str | None = Field(None, max_length=MAX_TEXT_CHARS)
        image: str | None = Field(None, description="the image file's bytes, base64")
        image_url: str | None = Field(None, description="file:// URL under an allowed folder")
        embedding_input: list[float] | None = Field(None, max_length=8192)
        modality: Literal["image", "text"] | None = Field(
            None, description="the index's vectors to search (default: what the index holds)"
        )
        num_images: int = Field(40, ge=1, le=MAX_IMAGES, description="results with metadata")
        num_result_ids: int | None = Field(
            None, ge=1, le=MAX_RESULT_IDS, description="ids returned (default num_images)"
        )
        indice_name: str | None = Field(None, max_length=200, description="default: the first")
        use_mclip: bool = False
        deduplicate: bool = False
        use_safety_model: bool = False
        use_violence_detector: bool = False
        aesthetic_score: int | str | None = None
        aesthetic_weight: float | str | None = None

        @model_validator(mode="after")
        def one_input(self):
            given = [k for k in ("text", "image", "image_url", "embedding_input") if self.given(k)]
            if len(given) != 1:
                raise ValueError(
                    "give exactly one of text, image, image_url, embedding_input "
                    f"(got {', '.join(given) or 'none'})"
                )
            if self.use_mclip:
                raise ValueError("use_mclip is not supported: clipforge has no multilingual CLIP")
            return self

        def given(self, name: str) -> bool:
            value = getattr(self, name)
            return value is not None and value != "" and value != []

        @property
        def result_ids(self) -> int:
            return self.num_result_ids or self.num_images

    class MetadataRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        ids: list[int] = Field(..., max_length=MAX_METADATA_IDS)
        indice_name: str | None = Field(None, max_length=200)

    return KnnRequest, MetadataRequest


KnnRequest, MetadataRequest = _models()
