"""clip-retrieval compatibility: its inference folders indexed with ids aligned to the metadata,
its routes (/knn-service, /indices-list, /metadata) beside clipforge's own, several named
indexes, file:// image_url behind an allow-list, deduplication, and SearchClient."""

from __future__ import annotations

import base64
import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from clipforge.cli.main import main
from clipforge.client import SearchClient, SearchClientError
from clipforge.search.build import BuildConfig, build_index_dir
from clipforge.search.dedup import kept_positions
from clipforge.search.server import ServerConfig, create_app

from search_helpers import known_answer_index, running_server, swatch

DIM = 32
# partition number → (vector file name, metadata file name, rows). The names are deliberately
# mixed in padding: in lexical order the vectors run 0, 02, 1, 10 and the metadata 0, 1, 10, 2,
# so pairing files by their sorted position would misalign parts 1, 2 and 10 (same row counts:
# silently). Pairing by the partition's number keeps every row with its vector.
PARTS = {
    10: ("img_emb_10.npy", "metadata_10.parquet", 4),
    2: ("img_emb_02.npy", "metadata_2.parquet", 4),
    0: ("img_emb_0.npy", "metadata_0.parquet", 3),
    1: ("img_emb_1.npy", "metadata_1.parquet", 4),
}


def write_inference_folder(directory, parts=PARTS, seed=0, metadata=True):
    """A clip-retrieval ``inference`` output as its writer lays it out (float16 .npy, Parquet with
    image_path, caption and the source's fields), partitions written in the order given."""
    rng = np.random.default_rng(seed)
    (directory / "img_emb").mkdir(parents=True)
    if metadata:
        (directory / "metadata").mkdir()
    vectors = {}
    for number, (vector_name, metadata_name, rows) in parts.items():
        part = rng.normal(size=(rows, DIM)).astype(np.float16)
        np.save(directory / "img_emb" / vector_name, part)
        vectors[number] = part
        if metadata:
            table = pa.table(
                {
                    "image_path": [f"images/{number}_{r}.jpg" for r in range(rows)],
                    "caption": [f"part {number} row {r}" for r in range(rows)],
                    "url": [f"https://example.com/{number}/{r}.jpg" for r in range(rows)],
                    "width": [100 + r for r in range(rows)],
                }
            )
            pq.write_table(table, directory / "metadata" / metadata_name)
    return vectors


@pytest.fixture(scope="module")
def inference_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("cr")
    vectors = write_inference_folder(root / "inference")
    assert main(["index", "--embeddings", str(root / "inference"), "--out", str(root / "idx")]) == 0
    return root / "idx", vectors


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    return known_answer_index(tmp_path_factory.mktemp("known"))  # (model dir, index dir)


@pytest.fixture(scope="module")
def queries(tmp_path_factory):
    folder = tmp_path_factory.mktemp("queries")
    swatch("green").save(folder / "green.png")
    return folder


@pytest.fixture(scope="module")
def client(known, inference_index, queries):
    config = ServerConfig(image_url_folders=(str(queries),))
    app = create_app({"known": known[1], "parts": inference_index[0]}, config)
    with TestClient(app) as test_client:
        yield test_client


def png_bytes(colour):
    buffer = io.BytesIO()
    swatch(colour).save(buffer, format="PNG")
    return buffer.getvalue()


# -- indexing clip-retrieval inference output -----------------------------------------------------


def test_inference_ids_follow_partition_numbers_not_file_order(client, inference_index):
    _, vectors = inference_index
    start = 0
    for number in sorted(PARTS):  # ids run through the partitions by number: 0, 1, 2, 10
        for row, vector in enumerate(vectors[number]):
            body = {"embedding_input": vector.astype(float).tolist(), "indice_name": "parts"}
            top = client.post("/knn-service", json={**body, "num_images": 1}).json()[0]
            assert top["id"] == start + row
            assert top["caption"] == f"part {number} row {row}"
            assert top["url"] == f"https://example.com/{number}/{row}.jpg"
            assert top["similarity"] == pytest.approx(1.0, abs=1e-3)  # float16 vectors
        start += len(vectors[number])
    item = client.post("/metadata", json={"ids": [12], "indice_name": "parts"}).json()
    assert item == [
        {
            "id": 12,
            "metadata": {
                "image_path": "images/10_1.jpg",
                "caption": "part 10 row 1",
                "url": "https://example.com/10/1.jpg",
                "width": 101,
                "key": "12",
            },
        }
    ]


def test_inference_folder_without_metadata_is_one_line_naming_it(tmp_path, capsys):
    write_inference_folder(tmp_path / "inference", metadata=False)
    code = main(
        ["index", "--embeddings", str(tmp_path / "inference"), "--out", str(tmp_path / "i")]
    )
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error
    assert str(tmp_path / "inference" / "metadata") in error and "missing" in error
    assert not (tmp_path / "i").exists()


def test_relative_image_paths_are_served_and_the_model_is_recorded(known, tmp_path, monkeypatch):
    """clip-retrieval records image paths as given to --input_dataset (relative to where it ran):
    indexed from that folder, the images are found and served by clipforge's own routes."""
    write_inference_folder(tmp_path / "inference", {0: ("img_emb_0.npy", "metadata_0.parquet", 3)})
    (tmp_path / "images").mkdir()
    for row in range(3):
        swatch(["red", "green", "blue"][row]).save(tmp_path / "images" / f"0_{row}.jpg")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the images' relative paths lead nowhere here
    model = os.path.relpath(known[0], tmp_path / "elsewhere")
    absolute = ["--embeddings", str(tmp_path / "inference"), "--out", str(tmp_path / "idx")]
    assert main(["index", *absolute, "--model", "no/such/model"]) == 2
    assert main(["index", *absolute, "--model", model]) == 0
    info = json.loads((tmp_path / "idx" / "index_info.json").read_text())
    assert info["model"] == str(known[0].resolve()) and info["image_root"] is None
    monkeypatch.chdir(tmp_path)
    assert main(["index", "--embeddings", "inference", "--out", "idx", "--model", model]) == 2
    assert main(["index", "--embeddings", "inference", "--out", "idx"]) == 0
    info = json.loads((tmp_path / "idx" / "index_info.json").read_text())
    assert info["image_root"] == str((tmp_path / "images").resolve())
    client = TestClient(create_app(tmp_path / "idx"))
    item = client.get("/items/1").json()
    assert item["image_path"] == str((tmp_path / "images" / "0_1.jpg").resolve())
    image = client.get(item["image_url"])
    assert image.status_code == 200 and image.content == (tmp_path / "images/0_1.jpg").read_bytes()


def test_a_folder_of_neither_layout_names_both(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    assert (
        main(["index", "--embeddings", str(tmp_path / "photos"), "--out", str(tmp_path / "i")]) == 2
    )
    error = capsys.readouterr().err
    assert "no info.json from `clipforge embed`, no img_emb/ or text_emb/" in error


def test_inference_partition_without_its_pair_or_with_other_rows(tmp_path):
    parts = {0: ("img_emb_0.npy", "metadata_0.parquet", 3)}
    write_inference_folder(tmp_path / "a", parts)
    np.save(tmp_path / "a" / "img_emb" / "img_emb_7.npy", np.zeros((2, DIM), np.float16))
    with pytest.raises(FileNotFoundError, match=r"no metadata_7\.parquet to pair with"):
        build_index_dir(BuildConfig(tmp_path / "a", tmp_path / "ia"))
    write_inference_folder(tmp_path / "b", parts)
    np.save(tmp_path / "b" / "img_emb" / "img_emb_0.npy", np.zeros((5, DIM), np.float16))
    with pytest.raises(ValueError, match=r"holds 5 vectors but metadata_0\.parquet 3 rows"):
        build_index_dir(BuildConfig(tmp_path / "b", tmp_path / "ib"))


# -- /knn-service, /indices-list, /metadata -------------------------------------------------------


def test_knn_by_text_has_clip_retrieval_keys_and_ids_beyond_num_images(client):
    body = {"text": "a red apple", "modality": "image", "num_images": 2, "num_result_ids": 5}
    results = client.post("/knn-service", json={**body, "indice_name": "known"}).json()
    assert len(results) == 5
    assert results[0]["id"] == 3 and results[0]["caption"] == "a red apple"
    assert results[0]["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert set(results[0]) == {
        "id",
        "similarity",
        "caption",
        "key",
        "image_path",
        "record_id",
        "image",
    }
    served = client.get(
        client.post("/search", json={"id": 3, "k": 1}).json()["results"][0]["image_url"]
    )
    assert base64.b64decode(results[0]["image"]) == served.content  # the apple's own file
    assert all(set(r) == {"id", "similarity"} for r in results[2:])  # ids only, as clip-retrieval
    assert [r["similarity"] for r in results] == sorted(
        (r["similarity"] for r in results), reverse=True
    )
    later = client.post("/metadata", json={"ids": [results[4]["id"]], "indice_name": "known"})
    assert later.json()[0]["metadata"]["caption"].startswith("a ")
    default = client.post("/knn-service", json={"text": "a red apple", "num_images": 1})
    assert default.json()[0]["id"] == 3  # no indice_name: the first index


def test_knn_by_base64_image_and_by_allowed_file_url_agree(client, queries):
    searcher = client.app.state.indexes.get("known").searcher
    expected = [h.id for h in searcher.search_vector(searcher.encoder.image(swatch("green")), 4)]
    data = (queries / "green.png").read_bytes()
    by_image = client.post(
        "/knn-service", json={"image": base64.b64encode(data).decode(), "num_images": 4}
    )
    assert [r["id"] for r in by_image.json()] == expected
    url = (queries / "green.png").as_uri()
    by_url = client.post("/knn-service", json={"image_url": url, "num_images": 4})
    assert by_url.status_code == 200 and [r["id"] for r in by_url.json()] == expected


def test_image_url_outside_the_allow_list_is_refused(client, queries, tmp_path):
    outside = tmp_path / "secret.png"
    outside.write_bytes(png_bytes("red"))
    (queries / "escape.png").symlink_to(outside)
    cases = {
        outside.as_uri(): (403, "not under a folder"),
        (queries / "escape.png").as_uri(): (403, "not under a folder"),  # symlink out
        f"file://{queries}/../{outside.parent.name}/secret.png": (400, "'..'"),
        f"file://{queries}/%2e%2e/x.png": (400, "'..'"),
        "http://127.0.0.1:9/x.png": (400, "only file://"),
        "https://example.com/cat.jpg": (400, "only file://"),
        "file://otherhost/etc/passwd": (400, "not a host"),
        (queries / "absent.png").as_uri(): (404, "no such file"),
    }
    for url, (status, message) in cases.items():
        response = client.post("/knn-service", json={"image_url": url})
        assert response.status_code == status, url
        assert message in response.json()["detail"], url
    (queries / "escape.png").unlink()


def test_image_url_needs_a_folder_given_to_serve(known):
    client = TestClient(create_app(known[1], ServerConfig(max_upload_bytes=2_000)))
    response = client.post("/knn-service", json={"image_url": "file:///tmp/x/a.png"})
    assert response.status_code == 403 and "--image-url-folder" in response.json()["detail"]
    big = base64.b64encode(os.urandom(3_000)).decode()
    response = client.post("/knn-service", json={"image": big})
    assert response.status_code == 413 and "limit of 2000 bytes" in response.json()["detail"]
    with pytest.raises(ValueError, match="would expose the file system"):
        create_app(known[1], ServerConfig(image_url_folders=("/",)))


def test_several_named_indexes_and_unknown_names(client, known):
    assert client.get("/indices-list").json() == ["known", "parts"]
    parts = client.post("/knn-service", json={"text": "x", "indice_name": "parts"})
    assert parts.status_code == 400 and "no model loaded" in parts.json()["detail"]
    unknown = client.post("/knn-service", json={"text": "x", "indice_name": "laion5B"})
    assert unknown.status_code == 404
    assert (
        unknown.json()["detail"] == "unknown indice_name 'laion5B'; this server has: known, parts"
    )
    metadata = client.post("/metadata", json={"ids": [0], "indice_name": "nope"})
    assert metadata.status_code == 404 and "known, parts" in metadata.json()["detail"]
    # clipforge's own routes still answer the first index, with their own JSON
    own = client.post("/search", json={"text": "a red apple", "k": 2}).json()
    assert set(own) == {"results", "mode", "took_ms"}
    assert own["results"][0]["id"] == 3 and set(own["results"][0]) == {
        "id",
        "score",
        "caption",
        "image_url",
        "key",
    }
    assert client.get("/healthz").json()["items"] == 12


def test_one_name_holds_an_image_and_a_text_index_chosen_by_modality(tmp_path):
    """clip-retrieval's indice = an image and a text index over the same rows; here two clipforge
    indexes built from one inference folder, served under one name."""
    parts = {
        0: ("img_emb_0.npy", "metadata_0.parquet", 5),
        1: ("img_emb_1.npy", "metadata_1.parquet", 4),
    }
    images = write_inference_folder(tmp_path / "inference", parts)
    (tmp_path / "inference" / "text_emb").mkdir()
    rng = np.random.default_rng(7)
    texts = {
        n: rng.normal(size=(rows, DIM)).astype(np.float16) for n, (_, _, rows) in parts.items()
    }
    for number, vectors in texts.items():
        np.save(tmp_path / "inference" / "text_emb" / f"text_emb_{number}.npy", vectors)
    build_index_dir(BuildConfig(tmp_path / "inference", tmp_path / "img"))
    build_index_dir(BuildConfig(tmp_path / "inference", tmp_path / "txt", modality="text"))
    client = TestClient(create_app([("both", tmp_path / "txt"), ("both", tmp_path / "img")]))
    assert client.get("/indices-list").json() == ["both"]
    query = {"embedding_input": texts[1][2].astype(float).tolist(), "num_images": 1}
    for modality in ("text", None):  # the first given for the name: text
        top = client.post("/knn-service", json={**query, "modality": modality}).json()[0]
        assert (top["id"], top["caption"]) == (5 + 2, "part 1 row 2")
    in_images = client.post("/knn-service", json={**query, "modality": "image"}).json()[0]
    assert in_images["similarity"] < 0.9  # the text vector is nowhere in the image index
    query["embedding_input"] = images[1][2].astype(float).tolist()
    top = client.post("/knn-service", json={**query, "modality": "image"}).json()[0]
    assert top["id"] == 7 and top["similarity"] == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="'both' already has a text index"):
        create_app([("both", tmp_path / "txt"), ("both", tmp_path / "txt")])


def test_bad_knn_requests_are_4xx(client):
    cases = [
        ({"text": "a", "image_url": "file:///x"}, 422, "exactly one of"),
        ({}, 422, "exactly one of"),
        ({"text": "a", "use_mclip": True}, 422, "use_mclip"),
        ({"text": "a", "num_images": 0}, 422, "num_images"),
        ({"text": "a", "colour": "red"}, 422, "colour"),
        ({"text": "a", "modality": "text"}, 400, "holds image vectors"),
        ({"embedding_input": [1.0, 2.0]}, 400, "32-dimensional"),
        ({"embedding_input": [0.0] * DIM}, 400, "all zeros"),
        ({"image": "not base64!"}, 400, "not base64"),
        ({"image": base64.b64encode(b"not an image").decode()}, 400, "cannot decode"),
    ]
    for body, status, message in cases:
        response = client.post("/knn-service", json=body)
        assert response.status_code == status, body
        assert message in str(response.json()["detail"]), body
    assert client.post("/knn-service", content=b"{").status_code == 400
    assert client.post("/metadata", json={"ids": [99]}).status_code == 404
    ignored = {"use_safety_model": True, "aesthetic_score": "", "aesthetic_weight": 0.5}
    assert client.post("/knn-service", json={"text": "a", **ignored}).status_code == 200


# -- deduplication --------------------------------------------------------------------------------


def test_kept_positions_keeps_the_best_ranked_of_each_near_duplicate_group():
    a, b, c = np.eye(3, dtype=np.float32)
    near_a = a + 0.1 * b  # cos(a, near_a) = 0.995
    tilted = np.cos(0.3) * b + np.sin(0.3) * c  # cos(b, tilted) = 0.955
    tilted_more = np.cos(0.6) * b + np.sin(0.6) * c  # 0.825 to b, 0.955 to tilted: joined
    assert kept_positions(np.stack([a, near_a, b, c])) == [0, 2, 3]
    assert kept_positions(np.stack([near_a, a, c])) == [0, 2]
    assert kept_positions(np.stack([b, tilted, tilted_more, c])) == [0, 3]  # a chain is one group
    assert kept_positions(np.stack([a, b, c])) == [0, 1, 2]


def test_deduplicate_drops_near_duplicates_among_results(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.normal(size=(6, DIM)).astype(np.float32)
    copies = base[[0, 0, 2]] + 0.01 * rng.normal(size=(3, DIM)).astype(np.float32)
    vectors = np.concatenate([base, copies])  # rows 6, 7 copy row 0; row 8 copies row 2
    parts = {0: ("img_emb_0.npy", "metadata_0.parquet", len(vectors))}
    write_inference_folder(tmp_path / "inference", parts)
    np.save(tmp_path / "inference" / "img_emb" / "img_emb_0.npy", vectors.astype(np.float16))
    build_index_dir(BuildConfig(tmp_path / "inference", tmp_path / "idx"))
    client = TestClient(create_app(tmp_path / "idx"))
    body = {"embedding_input": base[0].tolist(), "num_images": 9}
    plain = [r["id"] for r in client.post("/knn-service", json=body).json()]
    assert sorted(plain[:3]) == [0, 6, 7] and len(plain) == 9
    deduped = client.post("/knn-service", json={**body, "deduplicate": True}).json()
    ids = [r["id"] for r in deduped]
    assert ids[0] == plain[0] and len(ids) == 9 - 3  # two copies of 0, one of 2 (or 2 itself)
    assert len({0, 6, 7} & set(ids)) == 1 and len({2, 8} & set(ids)) == 1
    assert ids == [i for i in plain if i in ids]  # survivors keep their order


# -- SearchClient and serve -----------------------------------------------------------------------


def test_search_client_against_a_running_server(client, queries):
    with running_server(client.app) as url:
        remote = SearchClient(f"{url}/knn-service", indice_name="known", num_images=3)
        results = remote.query(text="a red apple")
        assert len(results) == 3 and results[0]["id"] == 3
        assert results[0]["caption"] == "a red apple" and "similarity" in results[0]
        by_file = remote.query(image=str(queries / "green.png"))
        by_url = remote.query(image=(queries / "green.png").as_uri())
        assert [r["id"] for r in by_file] == [r["id"] for r in by_url]
        searcher = client.app.state.indexes.get("known").searcher
        by_vector = remote.query(embedding_input=searcher.vector(5))
        assert by_vector[0]["id"] == 5
        assert SearchClient(url).indices() == ["known", "parts"]
        assert remote.metadata([3])[0]["metadata"]["caption"] == "a red apple"
        own = SearchClient(url).search(text="a red apple", k=2)
        assert own[0]["id"] == 3 and set(own[0]) == {"id", "score", "caption", "image_url", "key"}
        upload = SearchClient(url).search(image=queries / "green.png", k=4)
        assert [r["id"] for r in upload] == [r["id"] for r in by_file] + [upload[3]["id"]]
        with pytest.raises(SearchClientError, match="this server has: known, parts") as error:
            SearchClient(url, indice_name="laion5B").query(text="a")
        assert error.value.status == 404
        with pytest.raises(ValueError, match="Only one of text or image"):
            remote.query(text="a", image="x.png")


def test_cors_only_for_the_origins_given(known):
    """clip-retrieval's web front runs on its own origin: serve --cors-origin lets it call the
    API from a browser; without it no page elsewhere may, and the preflight needs no API key."""
    preflight = {
        "Origin": "http://localhost:1235",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    closed = TestClient(create_app(known[1]))
    answer = closed.post(
        "/knn-service", json={"text": "a"}, headers={"Origin": preflight["Origin"]}
    )
    assert "access-control-allow-origin" not in answer.headers
    config = ServerConfig(cors_origins=["http://localhost:1235"], api_key="k")
    opened = TestClient(create_app(known[1], config))
    check = opened.options("/knn-service", headers=preflight)
    assert check.status_code == 200
    assert check.headers["access-control-allow-origin"] == "http://localhost:1235"
    other = opened.options("/knn-service", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    answer = opened.post(
        "/knn-service",
        json={"text": "a red apple", "num_images": 1},
        headers={"Origin": preflight["Origin"], "X-API-Key": "k"},
    )
    assert answer.json()[0]["id"] == 3
    assert answer.headers["access-control-allow-origin"] == "http://localhost:1235"


def test_search_client_sends_the_api_key(known):
    app = create_app(known[1], ServerConfig(api_key="s3cret"))
    with running_server(app) as url:
        with pytest.raises(SearchClientError) as error:
            SearchClient(url).query(text="a red apple")
        assert error.value.status == 401
        keyed = SearchClient(url, api_key="s3cret", num_images=1)
        assert keyed.query(text="a red apple")[0]["id"] == 3


def test_serve_takes_several_named_indexes(known, inference_index, monkeypatch, capsys, tmp_path):
    from clipforge.search import serving

    apps = []
    monkeypatch.setattr(serving, "run_server", lambda app, config: apps.append(app))
    index_dir, _ = inference_index
    assert main(["serve", "--index", f"a={known[1]}", "--index", str(index_dir)]) == 0
    assert apps[-1].state.indexes.names == ["a", "idx"]
    assert "serving a=" in capsys.readouterr().out
    assert main(["serve", "--index", str(known[1])]) == 0  # the single form is unchanged
    assert apps[-1].state.indexes.names == ["idx"]
    assert main(["serve", "--index", str(known[1]), "--index", str(index_dir)]) == 2
    assert "'idx' already has an image index" in capsys.readouterr().err
    nowhere = tmp_path / "nowhere"
    assert main(["serve", "--index", f"a={known[1]}", "--image-url-folder", str(nowhere)]) == 2
    assert f"--image-url-folder {nowhere}: no such folder" in capsys.readouterr().err
