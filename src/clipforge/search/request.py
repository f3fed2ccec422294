"""What ``POST /search`` accepts, and how a body becomes a checked request — never a 500.

JSON bodies are parsed strictly (RFC 8259): ``NaN``, ``Infinity``, numbers that overflow to
infinity, lone UTF-16 surrogates (``"\\ud800"``, which no response could encode) and nesting
deeper than :data:`MAX_DEPTH` are a 400 before validation. Validation errors are a 422 listing
``type``, ``loc`` and ``msg`` only: the offending value (``input``), its context and pydantic's
documentation URL are dropped, so an error never echoes what was sent or a Python object repr.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

MAX_TEXT_CHARS, MAX_K = 1000, 100
MAX_DEPTH = 32  # the request is flat; real clients nest 1–2 levels
MAX_LOC_CHARS = 64  # a field name echoed in ``loc`` is cut to this


class BadRequest(ValueError):
    """A body the server cannot read at all (answered with 400 and this message)."""


def _models():
    from pydantic import BaseModel, ConfigDict, Field

    class SearchRequest(BaseModel):
        """A search: ``text``, ``id`` (more like this) or both (composed); forms add ``image``."""

        model_config = ConfigDict(extra="forbid")
        text: str | None = Field(None, max_length=MAX_TEXT_CHARS)
        id: int | None = Field(None, ge=0, description="search by an indexed item's vector")
        k: int = Field(10, ge=1, le=MAX_K)
        mode: Literal["dense", "sparse", "hybrid"] = "dense"
        hybrid_weight: float = Field(0.5, ge=0.0, le=1.0, description="dense share in hybrid")
        text_weight: float = Field(1.0, ge=0.0, le=10.0, description="λ of composed queries")
        text_delta: bool = False

    class SearchResult(BaseModel):
        id: int
        score: float
        caption: str
        image_url: str | None
        key: str

    class SearchResponse(BaseModel):
        results: list[SearchResult]
        mode: str
        took_ms: float

    return SearchRequest, SearchResponse


SearchRequest, SearchResponse = _models()


def _reject_constant(name: str):
    raise BadRequest(f"JSON body holds {name}, which is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest("JSON body holds a number too large for a float")
    return value


def check_strings(value, depth: int = 0) -> None:
    """Lone surrogates anywhere (keys too), and nesting past MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise BadRequest(f"JSON body is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(
                "JSON body holds a lone surrogate (\\ud800–\\udfff), "
                "which is not valid Unicode text"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_strings(key, depth + 1)
            check_strings(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_strings(item, depth + 1)


def parse_json_body(body: bytes) -> dict:
    """The request object of a JSON body; BadRequest (400) or TypeError (422, not an object)."""
    try:
        raw = json.loads(body or b"{}", parse_constant=_reject_constant, parse_float=_finite_float)
    except BadRequest:
        raise
    except RecursionError:
        raise BadRequest(f"JSON body is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, int too long
        raise BadRequest("body is neither JSON nor a multipart form") from None
    check_strings(raw)
    if not isinstance(raw, dict):
        raise TypeError("the JSON body must be an object")
    return raw


def clean_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict]:
    """``type``, ``loc`` (names cut to MAX_LOC_CHARS) and ``msg`` of each validation error."""
    return [
        {
            "type": error.get("type", "invalid"),
            "loc": [
                part if isinstance(part, int) else str(part)[:MAX_LOC_CHARS]
                for part in error.get("loc", ())
            ],
            "msg": str(error.get("msg", "invalid value")),
        }
        for error in errors
    ]


def validate(raw: dict, model=None):
    """``model`` (default :class:`SearchRequest`) validated from ``raw``, or
    ``RequestValidationError`` with cleaned errors (422)."""
    from fastapi.exceptions import RequestValidationError
    from pydantic import ValidationError

    try:
        return (model or SearchRequest).model_validate(raw)
    except ValidationError as error:
        raise RequestValidationError(
            clean_errors(
                error.errors(include_url=False, include_context=False, include_input=False)
            )
        ) from None
