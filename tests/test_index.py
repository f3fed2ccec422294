"""clipforge index/search: index choice, recall bookkeeping, sparse, hybrid and composed queries."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import sparse

from clipforge.cli.main import main
from clipforge.search.build import BuildConfig, build_index_dir
from clipforge.search.hybrid import fuse, min_max
from clipforge.search.index import IndexConfig, choose_index_key, parse_bytes, recall_at_k
from clipforge.search.query import Query, compose
from clipforge.search.searcher import Searcher
from clipforge.search.sparse import SparseIndex

from search_helpers import known_answer_index, swatch, write_embedding_dir

GB, MB = 1024**3, 1024**2


def test_parse_bytes():
    assert parse_bytes("2GB") == 2 * GB
    assert parse_bytes("512MB") == 512 * MB and parse_bytes("1.5G") == int(1.5 * GB)
    assert parse_bytes("100KB") == 102_400 and parse_bytes("4096") == 4096
    with pytest.raises(ValueError, match="memory size"):
        parse_bytes("lots")


def test_index_choice_by_size_and_budget():
    assert choose_index_key(1_000, 32, IndexConfig()) == "Flat"
    # 1M × 256: 4·√N = 4000 lists; raw vectors (1 GB + ids) fit 2 GB
    assert choose_index_key(1_000_000, 256, IndexConfig(memory_budget=2 * GB)) == "IVF4000,Flat"
    # 512 MB: (512 MB − centroids − PQ tables)/N − 8 B of id ≈ 524 B per vector → m = D/2 = 128
    assert (
        choose_index_key(1_000_000, 256, IndexConfig(memory_budget=512 * MB)) == "IVF4000,PQ128np"
    )
    # 100 MB: ≈ 92 B per vector → the largest divisor of 256 below it is 64
    assert choose_index_key(1_000_000, 256, IndexConfig(memory_budget=100 * MB)) == "IVF4000,PQ64np"
    # small N but Flat over budget: IVF with nlist capped at N/39
    assert choose_index_key(2_000, 16, IndexConfig(memory_budget=100_000)) == "IVF51,PQ8np"
    assert choose_index_key(10, 8, IndexConfig(index_key="HNSW32,Flat")) == "HNSW32,Flat"
    with pytest.raises(ValueError, match="too small"):
        choose_index_key(1_000_000, 256, IndexConfig(memory_budget=MB))


def test_recall_at_k_by_hand():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, 1], [5, -1, -1, -1]])
    assert recall_at_k(found, truth) == pytest.approx((3 / 4 + 1 / 4) / 2)


def clustered(count: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim))
    points = centres[rng.integers(0, 20, count)] + 0.4 * rng.normal(size=(count, dim))
    queries = centres[rng.integers(0, 20, 100)] + 0.4 * rng.normal(size=(100, dim))
    return points.astype(np.float32), queries.astype(np.float32)


def test_small_data_gets_exact_flat_index(tmp_path):
    vectors, _ = clustered(300, 16)
    write_embedding_dir(tmp_path / "emb", vectors, [f"c{i}" for i in range(300)], None)
    info = build_index_dir(BuildConfig(tmp_path / "emb", tmp_path / "idx"))
    assert info["index_type"] == "Flat" and info["recall_at_10"] == 1.0
    assert (info["count"], info["dim"]) == (300, 16)
    saved = json.loads((tmp_path / "idx/index_info.json").read_text())
    assert saved["index_type"] == "Flat" and saved["index_bytes"] > 300 * 16 * 4
    assert "sampled indexed vectors" in saved["recall_queries"]


def test_ivf_is_tuned_to_the_target_recall(tmp_path):
    vectors, queries = clustered(3_000, 16)
    write_embedding_dir(
        tmp_path / "emb", vectors, [f"c{i}" for i in range(3000)], None, shard_size=1000
    )
    config = IndexConfig(flat_max_count=1_000, target_recall=0.9)
    info = build_index_dir(BuildConfig(tmp_path / "emb", tmp_path / "idx", index=config))
    assert info["index_type"] == "IVF76,Flat"  # min(4·√3000, 3000 // 39)
    nprobe = info["search_params"]["nprobe"]
    assert info["recall_at_10"] >= 0.9
    assert info["recall_by_param"][str(nprobe)] == pytest.approx(info["recall_at_10"], abs=1e-4)
    smaller = [r for p, r in info["recall_by_param"].items() if int(p) < nprobe]
    assert all(r < 0.9 for r in smaller)  # the smallest nprobe that reaches it
    searcher = Searcher.open(tmp_path / "idx", load_model=False)
    hits = searcher.search_vector(vectors[1234], k=1)
    assert hits[0].id == 1234 and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_small_memory_budget_gives_pq(tmp_path, capsys):
    vectors, _ = clustered(1_200, 16)
    write_embedding_dir(tmp_path / "emb", vectors, [f"c{i}" for i in range(1200)], None)
    assert (
        main(
            [
                "index",
                "--embeddings",
                str(tmp_path / "emb"),
                "--out",
                str(tmp_path / "idx"),
                "--memory-budget",
                "40KB",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["index_type"].startswith("IVF30,PQ")
    info = json.loads((tmp_path / "idx/index_info.json").read_text())
    assert 0 < info["recall_at_10"] <= 1 and info["recall_by_param"]
    assert info["index_bytes"] < 1_200 * 16 * 4  # smaller than the raw vectors


def test_sparse_inverted_index_by_hand():
    documents = sparse.csr_matrix(
        np.array(
            [[1, 0, 2, 0, 0], [0, 3, 0, 0, 1], [2, 0, 0, 1, 0], [0, 0, 0, 0, 4]], dtype=np.float32
        )
    )
    index = SparseIndex(documents)
    # q = t0 + t2: doc0 = 1·1 + 1·2 = 3, doc2 = 1·2 = 2; docs 1 and 3 share no term
    scores, ids = index.search(np.array([1, 0, 1, 0, 0], np.float32), k=4)
    assert ids.tolist() == [0, 2] and scores.tolist() == [3.0, 2.0]
    scores, ids = index.search(sparse.csr_matrix([[0, 1, 0, 0, 0.5]]), k=1)
    assert ids.tolist() == [1] and scores.tolist() == [3.5]  # 3·1 + 1·0.5 (doc3: 2)
    np.testing.assert_allclose(index.scores(np.array([0, 0, 0, 0, 1.0])), [0, 1, 0, 4])
    with pytest.raises(ValueError, match="terms"):
        index.scores(np.ones(3))


def test_hybrid_fusion_by_hand():
    np.testing.assert_allclose(min_max(np.array([0.9, 0.8, 0.2, 0.1])), [1, 0.875, 0.125, 0])
    np.testing.assert_allclose(min_max(np.array([2.0, 2.0])), [0, 0])
    ids, dense, lexical = np.arange(4), np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 1, 3, 0.0])
    # w = 0.5: 0.5·[1, .875, .125, 0] + 0.5·[0, 1/3, 1, 0] = [.5, .604167, .5625, 0]
    scores, order = fuse(ids, dense, lexical, 0.5, k=4)
    assert order.tolist() == [1, 2, 0, 3]
    np.testing.assert_allclose(scores, [0.604167, 0.5625, 0.5, 0.0], atol=1e-6)
    # w = 0.9 trusts the dense side: [.9, .820833, .2125, 0]
    assert fuse(ids, dense, lexical, 0.9, k=2)[1].tolist() == [0, 1]
    with pytest.raises(ValueError):
        fuse(ids, dense, lexical, 1.5, k=2)


def test_hybrid_search_through_an_index_dir(tmp_path):
    documents = sparse.csr_matrix(
        np.array([[1, 0, 2, 0, 0], [0, 3, 0, 0, 1], [2, 0, 0, 1, 0], [0, 0, 0, 0, 4]], np.float32)
    )
    write_embedding_dir(
        tmp_path / "emb", np.eye(4, dtype=np.float32), list("abcd"), None, sparse_image=documents
    )
    build_index_dir(BuildConfig(tmp_path / "emb", tmp_path / "idx"))
    searcher = Searcher.open(tmp_path / "idx", load_model=False)
    assert searcher.modes() == ["dense", "sparse", "hybrid"]
    dense_query = np.array([0.9, 0.8, 0.2, 0.1], np.float32)  # cosines ∝ these
    lexical_query = np.array([0, 1 / 3, 0, 3, 0], np.float32)  # doc scores [0, 1, 3, 0]
    hits = searcher.search_hybrid(dense_query, lexical_query, k=4, weight=0.5)
    assert [h.id for h in hits] == [1, 2, 0, 3]
    np.testing.assert_allclose([h.score for h in hits], [0.604167, 0.5625, 0.5, 0], atol=1e-5)
    assert [h.caption for h in hits] == ["b", "c", "a", "d"]
    assert [h.id for h in searcher.search_sparse_vector(lexical_query, k=4)] == [2, 1]


def test_composed_query_by_hand():
    image, text = np.array([3.0, 4.0, 0.0]), np.array([0.0, 0.0, 2.0])
    # normalise([.6, .8, 0] + [0, 0, 1]) = [.6, .8, 1] / √2
    np.testing.assert_allclose(
        compose(image, text), np.array([0.6, 0.8, 1.0]) / math.sqrt(2), atol=1e-6
    )
    np.testing.assert_allclose(
        compose(image, text, 0.5), np.array([0.6, 0.8, 0.5]) / math.sqrt(1.25), atol=1e-6
    )
    # text-delta: [.6, .8, 0] + ([0, 0, 1] − [0, 1, 0]) = [.6, −.2, 1], norm √1.4
    np.testing.assert_allclose(
        compose(image, text, 1.0, np.array([0.0, 5.0, 0.0])),
        np.array([0.6, -0.2, 1.0]) / math.sqrt(1.4),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="needs text"):
        Query(text="  ")


def test_cli_search_text_image_and_more_like_this(tmp_path, capsys):
    model_dir, index_dir = known_answer_index(tmp_path)
    info = json.loads((index_dir / "index_info.json").read_text())
    assert info["model"] == str(model_dir)
    assert main(["search", "--index", str(index_dir), "a red apple", "--json", "--k", "3"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert results[0]["id"] == 3 and results[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert results[0]["caption"] == "a red apple" and len(results) == 3
    assert main(["search", "--index", str(index_dir), "--id", "5", "--k", "1"]) == 0
    assert "item-5" in capsys.readouterr().out
    swatch("blue").save(tmp_path / "q.png")
    assert (
        main(
            [
                "search",
                "--index",
                str(index_dir),
                "--image",
                str(tmp_path / "q.png"),
                "--text",
                "but red",
                "--json",
            ]
        )
        == 0
    )
    composed = json.loads(capsys.readouterr().out)["results"]
    searcher = Searcher.open(index_dir)
    from PIL import Image

    expected = compose(
        searcher.encoder.image(Image.open(tmp_path / "q.png")), searcher.encoder.text("but red")
    )
    assert [r["id"] for r in composed] == [h.id for h in searcher.search_vector(expected)]
    assert main(["search", "--index", str(index_dir), "--image", str(tmp_path / "no.png")]) == 2
    assert main(["search", "--index", str(index_dir), "x", "--mode", "sparse"]) == 2
    assert "no sparse" in capsys.readouterr().err


def test_lexlip_heads_saved_with_a_model_give_sparse_and_hybrid_search(tmp_path):
    """embed finds ``lexlip.heads.*`` in objectives.safetensors; index and search use them."""
    import torch
    from safetensors.torch import save_file

    from clipforge.models.lexicon import LexiconHeads
    from clipforge.search.embed import EmbedConfig, embed

    from search_helpers import micro_model_dir
    from synthetic import ShapesSource

    source = ShapesSource(12)
    model_dir = micro_model_dir(tmp_path / "model", list(source.captions()))
    torch.manual_seed(1)
    heads = LexiconHeads(32, 300)
    save_file(
        {f"lexlip.heads.{k}": v.contiguous() for k, v in heads.state_dict().items()},
        str(model_dir / "objectives.safetensors"),
    )
    embed(
        EmbedConfig(str(model_dir), "shapes", tmp_path / "emb", workers=0),
        source=source,
        progress=False,
    )
    info = build_index_dir(BuildConfig(tmp_path / "emb", tmp_path / "idx"))
    assert info["sparse"]["count"] == 12 and info["sparse"]["vocab_size"] == 300
    searcher = Searcher.open(tmp_path / "idx")
    assert searcher.modes() == ["dense", "sparse", "hybrid"]
    query = searcher.encoder.text_sparse("a red circle")
    documents = searcher.sparse_index.postings.toarray()
    expected = documents @ query
    hits = searcher.search(Query("a red circle"), k=3, mode="sparse")
    assert [h.id for h in hits] == np.argsort(-expected, kind="stable")[:3].tolist()
    np.testing.assert_allclose([h.score for h in hits], np.sort(expected)[::-1][:3], rtol=1e-5)
    # w = 1: the hybrid score is the min-max normalised dense score (all 12 are candidates)
    hybrid = searcher.search(Query("a red circle"), k=12, mode="hybrid", hybrid_weight=1.0)
    dense = {h.id: h.score for h in searcher.search(Query("a red circle"), k=12)}
    low, high = min(dense.values()), max(dense.values())
    np.testing.assert_allclose(
        [h.score for h in hybrid], [(dense[h.id] - low) / (high - low) for h in hybrid], atol=1e-4
    )
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)
