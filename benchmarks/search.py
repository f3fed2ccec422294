"""Search benchmark: clipforge's chosen index vs plain exact FAISS, and the HTTP API under load.

Data: N synthetic unit vectors of dimension D in C Gaussian clusters (default 1,000,000 × 256 in
1,000 clusters; points are normalise(centre + noise), noise per coordinate 0.8/√D, so a point sits
~40° from its centre), plus 1,000 held-out queries from the same clusters (not in the index).

Measured in one run:
- build: the index clipforge chooses under ``--memory-budget`` (library call
  ``build_dense_index``), wall time, RSS growth, size of the written index file;
- library: ``Searcher.search_vector`` (one query at a time, hits with metadata) p50/p99/QPS, and
  ``Searcher.search_vectors`` batched QPS; the same for ``faiss.IndexFlatIP`` (exact);
- recall@10 of the chosen index against exact search on the held-out queries;
- HTTP: ``clipforge serve`` in its own process over the same index, ``--clients`` concurrent
  clients (asyncio keep-alive connections, loopback only) posting text queries for
  ``--http-seconds`` seconds;
  text is embedded by ``runs/demo``'s model if present (and of dimension D), else a random tiny one.

    python benchmarks/search.py                 # the full 1M run (~5 minutes, ~4 GB RAM)
    python benchmarks/search.py --n 100000 --http-seconds 10

Targets: recall@10 ≥ 0.95, library p99 < 20 ms, HTTP p99 < 50 ms with 8 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORDS = (
    "red green blue yellow black white small large round square happy sad cat dog house "
    "tree car flag heart star face hand apple moon sun flower fish bird"
).split()


def clustered_vectors(count: int, dim: int, clusters: int, seed: int, centres=None):
    rng = np.random.default_rng(seed)
    if centres is None:
        centres = rng.normal(size=(clusters, dim)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((count, dim), np.float32)
    for start in range(0, count, 100_000):
        stop = min(count, start + 100_000)
        block = centres[rng.integers(0, clusters, stop - start)]
        block = block + rng.normal(scale=0.8 / np.sqrt(dim), size=block.shape).astype(np.float32)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out, centres


def rss() -> int:
    from clipforge.search.build import rss_bytes

    return rss_bytes()


def latency_stats(seconds: list[float]) -> dict:
    array = np.asarray(seconds) * 1e3
    return {
        "p50_ms": float(np.percentile(array, 50)),
        "p99_ms": float(np.percentile(array, 99)),
        "qps": float(len(array) / (array.sum() / 1e3)),
    }


def time_single(search, queries: np.ndarray) -> dict:
    for query in queries[:20]:
        search(query)  # warm caches
    times = []
    for query in queries:
        started = time.perf_counter()
        search(query)
        times.append(time.perf_counter() - started)
    return latency_stats(times)


def time_batch(search, queries: np.ndarray) -> float:
    started = time.perf_counter()
    search(queries)
    return len(queries) / (time.perf_counter() - started)


def demo_or_random_model(dim: int, workdir: Path) -> str:
    from clipforge.models import model_config

    demo = ROOT / "runs" / "demo"
    if demo.exists():
        from clipforge.loading import resolve_model_dir

        config = json.loads((resolve_model_dir(demo) / "config.json").read_text())["model"]
        if config["embed_dim"] == dim:
            return str(demo)
    from clipforge import create_model
    from clipforge.data.tokenizer import Tokenizer
    from clipforge.models.io import save_model_dir

    rng = random.Random(0)
    captions = [" ".join(rng.choices(WORDS, k=5)) for _ in range(2000)]
    tokenizer = Tokenizer.train(captions, vocab_size=1000, context_length=32)
    config = model_config("tiny")
    config.embed_dim, config.text.vocab_size = dim, tokenizer.vocab_size
    return str(save_model_dir(workdir / "model", create_model(config), tokenizer))


async def post_json(reader, writer, host: str, path: str, payload: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 keep-alive POST on an open connection. A few lines of asyncio instead of an
    HTTP client library, so that the load generator, which shares the CPU with the server, costs
    as little as possible and the latency measured is the server's."""
    writer.write(
        b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (path.encode(), host.encode(), len(payload), payload)
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, await reader.readexactly(length)


async def http_load(port: int, seconds: float, clients: int) -> dict:
    latencies, errors = [], 0
    deadline = time.perf_counter() + seconds

    async def client(seed: int):
        nonlocal errors
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                text = " ".join(rng.choices(WORDS, k=rng.randint(2, 6)))
                payload = json.dumps({"text": text, "k": 10}).encode()
                started = time.perf_counter()
                status, _ = await post_json(reader, writer, f"127.0.0.1:{port}", "/search", payload)
                latencies.append(time.perf_counter() - started)
                errors += status != 200
        finally:
            writer.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    stats = latency_stats(latencies)
    stats["qps"] = len(latencies) / seconds  # throughput of all clients together
    return {**stats, "requests": len(latencies), "errors": errors}


def serve_and_load(index_dir: Path, seconds: float, clients: int, threads: int) -> dict:
    import httpx
    from _server import serving  # beside this script

    with serving(index_dir, ["--threads", str(threads)], ROOT) as (server, port):
        url = f"http://127.0.0.1:{port}"
        asyncio.run(http_load(port, 3, clients))  # warm-up
        result = asyncio.run(http_load(port, seconds, clients))
        from prometheus_client.parser import text_string_to_metric_families

        metrics = httpx.get(url + "/metrics").text
        result["server_p99_ms"] = next(
            (
                sample.value * 1e3
                for family in text_string_to_metric_families(metrics)
                for sample in family.samples
                if sample.name == "clipforge_request_latency_seconds"
                and sample.labels == {"route": "/search", "quantile": "0.99"}
            ),
            None,
        )
        return result


def time_in_process(
    report: dict, index, metadata, info_json: dict, vectors, queries, flat_queries: int
) -> None:
    """Recall and latency of the library's ``Searcher``, then of exact FAISS search, into
    ``report``; both searchers are freed on return, before the server is measured."""
    import faiss

    from clipforge.search.index import exact_neighbours, recall_at_k
    from clipforge.search.searcher import Searcher

    searcher = Searcher(index, metadata, info_json)
    truth = exact_neighbours(vectors, queries, 10)
    _, found = searcher.search_vectors(queries, 10)
    report["recall_at_10"] = recall_at_k(found, truth)
    report["library"] = time_single(lambda q: searcher.search_vector(q, 10), queries)
    report["library"]["batch_qps"] = time_batch(lambda q: searcher.search_vectors(q, 10), queries)
    print(f"clipforge: recall@10 {report['recall_at_10']:.4f} {report['library']}", flush=True)

    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    report["faiss_flat"] = time_single(lambda q: flat.search(q[None], 10), queries[:flat_queries])
    report["faiss_flat"]["batch_qps"] = time_batch(lambda q: flat.search(q, 10), queries)
    print(f"faiss flat: {report['faiss_flat']}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--memory-budget", default="2GB")
    parser.add_argument("--http-seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--server-threads",
        type=int,
        default=1,
        help="torch threads of the server (the load generator needs a core too)",
    )
    parser.add_argument(
        "--flat-queries",
        type=int,
        default=200,
        help="single queries timed on exact search (slow at 1M)",
    )
    args = parser.parse_args()

    import faiss
    import pyarrow as pa
    import pyarrow.parquet as pq

    from clipforge.machine import machine_info
    from clipforge.search.build import INDEX_INFO, METADATA
    from clipforge.search.index import IndexConfig, build_dense_index, parse_bytes

    # fp32: FAISS searches fp32 vectors and the server encodes queries without autocast
    report: dict = {
        "machine": machine_info("fp32"),
        "n": args.n,
        "dim": args.dim,
        "clusters": args.clusters,
        "load_average_start": os.getloadavg(),
    }
    started = time.perf_counter()
    vectors, centres = clustered_vectors(args.n, args.dim, args.clusters, seed=0)
    queries, _ = clustered_vectors(args.queries, args.dim, args.clusters, seed=1, centres=centres)
    print(f"data: {args.n} × {args.dim} in {time.perf_counter() - started:.1f} s", flush=True)

    before = rss()
    started = time.perf_counter()
    config = IndexConfig(memory_budget=parse_bytes(args.memory_budget))
    index, info = build_dense_index(vectors, config, queries)
    build_seconds = time.perf_counter() - started
    workdir = Path(tempfile.mkdtemp(prefix="clipforge-bench-"))
    index_dir = workdir / "idx"
    index_dir.mkdir()
    faiss.write_index(index, str(index_dir / "image.index"))
    report["build"] = {
        "index_type": info.index_key,
        "seconds": build_seconds,
        "train_s": info.train_seconds,
        "add_s": info.add_seconds,
        "tune_s": info.tune_seconds,
        "search_params": info.search_params,
        "rss_delta_mb": (rss() - before) / 2**20,
        "index_file_mb": (index_dir / "image.index").stat().st_size / 2**20,
        "recall_during_build": info.recall_at_10,
    }
    print(f"build: {report['build']}", flush=True)

    ids = np.arange(args.n)
    metadata = pa.table(
        {
            "id": ids,
            "key": [f"item-{i}" for i in ids],
            "caption": [f"synthetic item {i}" for i in ids],
            "image_rel": [""] * args.n,
        }
    )
    info_json = {
        "index_file": "image.index",
        "index_type": info.index_key,
        "count": args.n,
        "dim": args.dim,
        "search_params": info.search_params,
        "image_root": None,
    }
    time_in_process(report, index, metadata, info_json, vectors, queries, args.flat_queries)
    del vectors

    model = demo_or_random_model(args.dim, workdir)
    pq.write_table(metadata, index_dir / METADATA)
    (index_dir / INDEX_INFO).write_text(json.dumps({**info_json, "model": model}))
    del metadata, index
    report["http"] = serve_and_load(index_dir, args.http_seconds, args.clients, args.server_threads)
    report["http"]["model"] = "runs/demo" if model.endswith("demo") else "random tiny"
    report["load_average_end"] = os.getloadavg()
    import resource

    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print_table(report, args)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"search-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"saved {path.relative_to(ROOT)}")
    return 0


def print_table(report: dict, args) -> None:
    lib, flat, http = report["library"], report["faiss_flat"], report["http"]
    rows = [
        ("index", report["build"]["index_type"], "Flat (exact)", ""),
        ("build time", f"{report['build']['seconds']:.1f} s", "—", ""),
        (
            "memory",
            f"{report['build']['index_file_mb']:.0f} MB index, "
            f"+{report['build']['rss_delta_mb']:.0f} MB RSS",
            f"{args.n * args.dim * 4 / 2**20:.0f} MB",
            "",
        ),
        ("recall@10", f"{report['recall_at_10']:.4f}", "1.0", "≥ 0.95"),
        ("1 query p50", f"{lib['p50_ms']:.2f} ms", f"{flat['p50_ms']:.2f} ms", ""),
        ("1 query p99", f"{lib['p99_ms']:.2f} ms", f"{flat['p99_ms']:.2f} ms", "< 20 ms"),
        ("1 query QPS", f"{lib['qps']:.0f}", f"{flat['qps']:.0f}", ""),
        ("batched QPS", f"{lib['batch_qps']:.0f}", f"{flat['batch_qps']:.0f}", ""),
        (f"HTTP {args.clients} clients p50", f"{http['p50_ms']:.1f} ms", "", ""),
        (f"HTTP {args.clients} clients p99", f"{http['p99_ms']:.1f} ms", "", "< 50 ms"),
        ("HTTP QPS / errors", f"{http['qps']:.0f} / {http['errors']}", "", ""),
    ]
    print(
        f"\n{args.n:,} × {args.dim}, {args.clusters} clusters; load average "
        f"{report['load_average_start'][0]:.1f} → {report['load_average_end'][0]:.1f}; "
        f"peak RSS {report['peak_rss_mb']:.0f} MB (+ the server's)"
    )
    print(f"{'':26} {'clipforge':>30} {'faiss.IndexFlatIP':>18} {'target':>8}")
    for name, ours, theirs, target in rows:
        print(f"{name:26} {ours:>30} {theirs:>18} {target:>8}")


if __name__ == "__main__":
    sys.exit(main())
