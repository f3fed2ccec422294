"""A small HTTP client for ``clipforge serve``, shaped like clip-retrieval's ``ClipClient``.

::

    from clipforge.client import SearchClient, Modality

    client = SearchClient("http://127.0.0.1:8000/knn-service", indice_name="coco", num_images=10)
    client.query(text="a red apple")            # → [{"id", "similarity", "caption", …}, …]
    client.query(image="query.jpg")             # a local file, sent base64
    client.query(image="file:///data/queries/q.jpg")   # read by the server (allow-listed folders)
    client.query(embedding_input=vector)        # a list or array of the index's dimension
    client.search(text="a red apple", k=5)      # clipforge's own POST /search → its "results"

The constructor takes ``ClipClient``'s arguments with its defaults, so code written for
clip-retrieval moves by changing the import; it also talks to a clip-retrieval back. Against
clipforge, ``use_safety_model``, ``use_violence_detector``, ``aesthetic_score`` and
``aesthetic_weight`` have no effect (no such models ship); ``indice_name=None`` means the
server's default index. Standard library only (``urllib``): nothing to install.

Errors: a 4xx/5xx answer raises :class:`SearchClientError` carrying the status and the server's
``detail`` message; ``query`` with none or two of text/image raises ValueError, as ClipClient does.
"""

from __future__ import annotations

import base64
import enum
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

URL_SCHEMES = ("http://", "https://", "file://")  # an image given as a URL, not a local path


class Modality(enum.Enum):
    IMAGE = "image"
    TEXT = "text"


class SearchClientError(RuntimeError):
    """The server refused a request: ``status`` and its ``detail``."""

    def __init__(self, status: int, detail: Any):
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail = status, detail


class SearchClient:
    """Query ``/knn-service`` (clip-retrieval's API) and ``/search`` (clipforge's) of a server.

    ``url``: the server (``http://host:8000``) or its ``/knn-service`` URL, as ClipClient takes.
    """

    def __init__(
        self,
        url: str,
        indice_name: str | None = None,
        use_mclip: bool = False,
        aesthetic_score: int = 9,
        aesthetic_weight: float = 0.5,
        modality: Modality | str = Modality.IMAGE,
        num_images: int = 40,
        deduplicate: bool = True,
        use_safety_model: bool = True,
        use_violence_detector: bool = True,
        api_key: str | None = None,
        timeout: float = 60.0,
    ):
        self.base_url = url.rstrip("/").removesuffix("/knn-service")
        self.indice_name, self.use_mclip = indice_name, use_mclip
        self.aesthetic_score, self.aesthetic_weight = aesthetic_score, aesthetic_weight
        self.modality = Modality(modality).value
        self.num_images, self.deduplicate = num_images, deduplicate
        self.use_safety_model, self.use_violence_detector = use_safety_model, use_violence_detector
        self.api_key, self.timeout = api_key, timeout

    # -- clip-retrieval's API ---------------------------------------------------------------

    def query(
        self,
        text: str | None = None,
        image: str | Path | bytes | None = None,
        embedding_input: Sequence[float] | None = None,
    ) -> list[dict]:
        """Results most like ``text``, ``image`` (a file path or its bytes, sent base64; an
        ``http(s)://`` or ``file://`` URL, sent as ``image_url``) or ``embedding_input``."""
        if text and image is not None:
            raise ValueError("Only one of text or image can be provided.")
        if text:
            return self._knn(text=text)
        if isinstance(image, str) and image.startswith(URL_SCHEMES):
            return self._knn(image_url=image)
        if image is not None:
            data = image if isinstance(image, bytes) else _read_image(Path(image))
            return self._knn(image=base64.b64encode(data).decode("ascii"))
        if embedding_input is not None:
            values = (
                embedding_input.tolist() if hasattr(embedding_input, "tolist") else embedding_input
            )
            return self._knn(embedding_input=[float(v) for v in values])
        raise ValueError("Either text, image or embedding_input must be provided.")

    def indices(self) -> list[str]:
        """The index names the server has (``GET /indices-list``), its default first."""
        return self._call("GET", "/indices-list")

    def metadata(self, ids: Sequence[int]) -> list[dict]:
        """``[{"id", "metadata"}]`` for result ids (``POST /metadata``)."""
        body = {"ids": [int(i) for i in ids], "indice_name": self.indice_name}
        return self._call("POST", "/metadata", body)

    def _knn(self, **query) -> list[dict]:
        body = {
            "text": None,
            "image": None,
            "image_url": None,
            "embedding_input": None,
            **query,
            "deduplicate": self.deduplicate,
            "use_safety_model": self.use_safety_model,
            "use_violence_detector": self.use_violence_detector,
            "indice_name": self.indice_name,
            "use_mclip": self.use_mclip,
            "aesthetic_score": self.aesthetic_score,
            "aesthetic_weight": self.aesthetic_weight,
            "modality": self.modality,
            "num_images": self.num_images,
            "num_result_ids": self.num_images,
        }
        return self._call("POST", "/knn-service", body)

    # -- clipforge's own API -----------------------------------------------------------------

    def search(
        self,
        text: str | None = None,
        image: str | Path | bytes | None = None,
        id: int | None = None,  # noqa: A002 - the route's own key
        k: int = 10,
        mode: str = "dense",
    ) -> list[dict]:
        """``POST /search`` (text, an item's ``id``, an image file or bytes, or an image/item
        with text: a composed query) → its ``results``: ``[{"id", "score", "caption",
        "image_url", "key"}]``. Always the server's default index."""
        fields: dict[str, Any] = {"k": k, "mode": mode}
        if text is not None:
            fields["text"] = text
        if image is None:
            if id is not None:
                fields["id"] = int(id)
            return self._call("POST", "/search", fields)["results"]
        if id is not None:
            raise ValueError("give an image or an id, not both")
        data = image if isinstance(image, bytes) else _read_image(Path(image))
        body, content_type = _multipart(fields, data)
        return self._send("POST", "/search", body, content_type)["results"]

    # -- transport ---------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        return self._send(method, path, data, "application/json")

    def _send(self, method: str, path: str, data: bytes | None, content_type: str) -> Any:
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        request = Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - user's URL
                return json.loads(response.read())
        except HTTPError as error:
            payload = error.read()
            try:
                detail = json.loads(payload).get("detail", payload.decode(errors="replace"))
            except (ValueError, AttributeError):
                detail = payload.decode(errors="replace")
            raise SearchClientError(error.code, detail) from None


def _read_image(path: Path) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    return path.read_bytes()


def _multipart(fields: dict[str, Any], image: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with ``fields`` and the image as the ``image`` file."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="query"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + image
        + b"\r\n"
    )
    return b"".join(
        parts
    ) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
