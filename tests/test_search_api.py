"""clipforge serve: the HTTP API, every bad-input path, images, health, metrics, concurrency."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from clipforge.search.query import compose
from clipforge.search.server import ServerConfig, create_app

from search_helpers import COLOURS, known_answer_index, running_server, swatch


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return known_answer_index(tmp_path_factory.mktemp("api"))[1]


@pytest.fixture(scope="module")
def app(index_dir):
    return create_app(index_dir)


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app)


def png(colour: str = "blue") -> bytes:
    buffer = io.BytesIO()
    swatch(colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_text_query_finds_the_known_item_and_its_image(client):
    response = client.post("/search", json={"text": "a red apple", "k": 5})
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 5 and set(results[0]) >= {"id", "score", "caption", "image_url"}
    top = results[0]
    assert (top["id"], top["caption"]) == (3, "a red apple")
    assert top["score"] == pytest.approx(1.0, abs=1e-5)
    image = client.get(top["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(image.content)).convert("RGB")  # item 3 is the apple
    assert picture.getpixel((24, 28)) == COLOURS["red"] and picture.getpixel((1, 1)) == (255,) * 3


def test_more_like_this_and_composed_queries(client, app):
    results = client.post("/search", json={"id": 5, "k": 3}).json()["results"]
    assert results[0]["id"] == 5 and results[0]["score"] == pytest.approx(1.0, abs=1e-5)
    searcher = app.state.searcher
    form = client.post(
        "/search",
        files={"image": ("q.png", png("blue"), "image/png")},
        data={"text": "but red", "k": "4"},
    )
    assert form.status_code == 200
    expected = compose(searcher.encoder.image(swatch("blue")), searcher.encoder.text("but red"))
    assert [r["id"] for r in form.json()["results"]] == [
        h.id for h in searcher.search_vector(expected, 4)
    ]
    only_image = client.post("/search", files={"image": ("q.png", png("green"), "image/png")})
    assert [r["id"] for r in only_image.json()["results"]] == [
        h.id for h in searcher.search_vector(searcher.encoder.image(swatch("green")), 10)
    ]
    composed_item = client.post("/search", json={"id": 5, "text": "red", "k": 2}).json()
    expected = compose(searcher.vector(5), searcher.encoder.text("red"))
    assert [r["id"] for r in composed_item["results"]] == [
        h.id for h in searcher.search_vector(expected, 2)
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"text": "apple", "k": 0},
        {"text": "apple", "k": 1000},
        {"text": "apple", "k": "many"},
        {"text": "x" * 1001},
        {},
        {"text": "apple", "colour": "red"},
        {"id": -1},
        {"text": "apple", "mode": "fuzzy"},
        {"text": "apple", "hybrid_weight": 2},
    ],
)
def test_invalid_json_queries_are_422(client, body):
    response = client.post("/search", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


def test_invalid_form_fields_are_422(client):
    for data in ({"k": "0"}, {"k": "101"}, {"text": "y" * 1001}):
        response = client.post("/search", files={"image": ("q.png", png(), "image/png")}, data=data)
        assert response.status_code == 422, (data, response.text)


def test_bad_bodies_and_images(client):
    not_png = b"\x89PNG not really"
    response = client.post("/search", files={"image": ("q.png", not_png, "image/png")})
    assert response.status_code == 400 and "cannot decode" in response.json()["detail"]
    assert (
        client.post(
            "/search", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    assert client.post("/search", json=[1, 2]).status_code == 422
    assert client.post("/search", json={"id": 999}).status_code == 404
    sparse = client.post("/search", json={"text": "apple", "mode": "sparse"})
    assert sparse.status_code == 400 and "sparse" in sparse.json()["detail"]


def test_uploads_over_the_limit_are_413(client, index_dir):
    huge = b"\0" * (10 * 1024 * 1024 + 1)
    response = client.post("/search", files={"image": ("big.png", huge, "image/png")})
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    small = TestClient(create_app(index_dir, ServerConfig(max_upload_bytes=2_000)))
    # over the limit but inside the multipart allowance: caught on the file itself
    response = small.post("/search", files={"image": ("q.png", b"\0" * 3_000, "image/png")})
    assert response.status_code == 413
    assert small.post("/search", files={"image": ("q.png", png(), "image/png")}).status_code == 200


def test_images_are_served_only_from_the_image_root(client, index_dir, tmp_path):
    root = client.app.state.searcher.info["image_root"]
    secret = tmp_path / "secret.png"
    swatch("black").save(secret)
    os.symlink(secret, os.path.join(root, "0000", "escape.png"))
    (tmp_path / "notes.txt").write_text("private")
    os.symlink(tmp_path / "notes.txt", os.path.join(root, "notes.png"))
    with open(os.path.join(root, "0000", "data.npy"), "wb") as handle:
        handle.write(b"not for you")
    for path in (
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "..%2F..%2Fetc/passwd",
        "%2Fetc%2Fpasswd",
        "0000/..%2F..%2Fidx%2Findex_info.json",
        "0000/escape.png",
        "0000/data.npy",
        "0000/missing.png",
        "..%5C..%5Cetc%5Cpasswd",
        "0000/000000001.png%00.txt",
    ):
        response = client.get(f"/images/{path}")
        assert response.status_code in (400, 404), path
        assert b"root:" not in response.content and b"not for you" not in response.content
    assert client.get("/images/0000/000000001.png").status_code == 200


def test_items_health_metrics_and_docs(client):
    item = client.get("/items/3").json()
    assert item["caption"] == "a red apple" and item["key"] == "item-3"
    assert item["image_url"] == "/images/0000/000000003.png"
    assert client.get("/items/12").status_code == 404
    assert client.get("/items/-1").status_code == 404
    assert client.get("/items/abc").status_code == 422
    health = client.get("/healthz").json()
    assert health == {
        "status": "ok",
        "items": 12,
        "dim": 32,
        "index_type": "Flat",
        "modes": ["dense"],
        "model_loaded": True,
        "images": True,
    }
    client.post("/search", json={"text": "apple"})
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.text)
        for sample in family.samples
    }
    assert (
        samples[
            (
                "clipforge_requests_total",
                (("method", "POST"), ("route", "/search"), ("status", "200")),
            )
        ]
        >= 1
    )
    assert (
        samples[
            (
                "clipforge_requests_total",
                (("method", "GET"), ("route", "/items/{item_id}"), ("status", "404")),
            )
        ]
        >= 2
    )
    assert (
        "clipforge_request_latency_seconds",
        (("quantile", "0.99"), ("route", "/search")),
    ) in samples
    assert (
        samples[
            ("clipforge_request_duration_seconds_bucket", (("le", "+Inf"), ("route", "/search")))
        ]
        >= 1
    )
    assert samples[("clipforge_index_items", ())] == 12
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/search"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and 'id="results"' in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no external resources


def test_concurrent_requests_over_real_http(app):
    queries = ["a red apple", "a blue square number 2", "a green square number 1"]
    with running_server(app) as url:
        with httpx.Client(base_url=url, timeout=30) as http:
            expected = {
                q: http.post("/search", json={"text": q, "k": 5}).json()["results"] for q in queries
            }

        def ask(index: int):
            query = queries[index % len(queries)]
            with httpx.Client(base_url=url, timeout=30) as http:
                return query, http.post("/search", json={"text": query, "k": 5})

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(48)))
    for query, response in answers:
        assert response.status_code == 200
        got = response.json()["results"]
        assert [r["id"] for r in got] == [r["id"] for r in expected[query]]
        np.testing.assert_allclose(
            [r["score"] for r in got], [r["score"] for r in expected[query]], atol=1e-5
        )
