"""Upload pressure: does ``/healthz`` stay fast while big images are uploaded to ``/search``?

``clipforge serve`` runs in its own process over a small index (1,000 random vectors, the
``runs/demo`` model if present, else a random tiny one). ``--uploads`` clients (default 16) post
one ``--side`` × ``--side`` PNG each (default 7000² = 49 megapixels, a gradient: ~0.7 MB on the
wire, 147 MB decoded) at the same moment, while one keep-alive connection asks ``GET /healthz``
every 10 ms. Reported: /healthz latency p50/p99/max during the uploads, the uploads' status codes
(200 or 429) and times, the server's peak RSS, and the CPU it ran on.

    python benchmarks/upload_pressure.py                     # 16 × 49 MP (~30 s on 2 cores)
    python benchmarks/upload_pressure.py --uploads 4 --side 3000

Target (issue 10): /healthz under 100 ms throughout.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def small_index(workdir: Path, dim: int) -> Path:
    import faiss
    import pyarrow as pa
    import pyarrow.parquet as pq
    from search import demo_or_random_model

    from clipforge.search.build import INDEX_INFO, METADATA

    model = demo_or_random_model(dim, workdir)
    vectors = np.random.default_rng(0).normal(size=(1000, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    index_dir = workdir / "idx"
    index_dir.mkdir()
    faiss.write_index(index, str(index_dir / "image.index"))
    ids = np.arange(1000)
    pq.write_table(
        pa.table(
            {
                "id": ids,
                "key": [f"item-{i}" for i in ids],
                "caption": [f"item {i}" for i in ids],
                "image_rel": [""] * 1000,
            }
        ),
        index_dir / METADATA,
    )
    (index_dir / INDEX_INFO).write_text(
        json.dumps(
            {
                "index_file": "image.index",
                "index_type": "Flat",
                "count": 1000,
                "dim": dim,
                "search_params": {},
                "image_root": None,
                "model": model,
            }
        )
    )
    return index_dir


def gradient_png(side: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((side, side)).convert("RGB").save(
        buffer, format="PNG", compress_level=1
    )
    return buffer.getvalue()


def healthz_once(connection: socket.socket, host: bytes) -> float:
    started = time.perf_counter()
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"/healthz answered {head[:40]!r}")
    return time.perf_counter() - started


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def send_uploads(url: str, image: bytes, count: int) -> list[tuple[int, float]]:
    """``count`` concurrent uploads of ``image`` → (status, seconds) each (in a child process)."""
    import httpx

    def upload(_):
        started = time.perf_counter()
        with httpx.Client(base_url=url, timeout=600) as http:
            status = http.post(
                "/search", files={"image": ("big.png", image, "image/png")}
            ).status_code
        return status, time.perf_counter() - started

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(upload, range(count)))


def main() -> int:
    from _server import serving

    from clipforge.machine import machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=16)
    parser.add_argument("--side", type=int, default=7000, help="image side in pixels")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--serve-args", default="", help="extra `clipforge serve` flags")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="clipforge-uploads-"))
    index_dir = small_index(workdir, args.dim)
    image = gradient_png(args.side)
    with serving(index_dir, args.serve_args.split(), ROOT) as (server, port):
        url, host = f"http://127.0.0.1:{port}", f"127.0.0.1:{port}".encode()
        idle = []
        with socket.create_connection(("127.0.0.1", port)) as connection:
            for _ in range(50):
                idle.append(healthz_once(connection, host))
                time.sleep(0.01)

            # the uploads come from another process, so their client work never delays the poller
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                sent = pool.submit(send_uploads, url, image, args.uploads)
                started = time.perf_counter()
                busy, when = [], []
                while not sent.done():
                    when.append(time.perf_counter() - started)
                    busy.append(healthz_once(connection, host))
                    time.sleep(0.01)
                uploads = sent.result()
            total = time.perf_counter() - started
        busy_ms = np.asarray(busy) * 1e3
        report = {
            **machine_info(),  # cpu, cpu_flags, kernels, cores, torch, gpu (clipforge.machine)
            "cores": os.cpu_count(),
            "load_average": os.getloadavg(),
            "uploads": args.uploads,
            "megapixels": args.side * args.side / 1e6,
            "png_bytes": len(image),
            "serve_args": args.serve_args,
            "healthz_idle_p50_ms": float(np.percentile(np.asarray(idle) * 1e3, 50)),
            "healthz_p50_ms": float(np.percentile(busy_ms, 50)),
            "healthz_p99_ms": float(np.percentile(busy_ms, 99)),
            "healthz_max_ms": float(busy_ms.max()),
            "healthz_polls": len(busy),
            "slowest_polls_at_s_ms": sorted(
                ((round(t, 2), round(ms, 1)) for t, ms in zip(when, busy_ms)), key=lambda x: -x[1]
            )[:5],
            "upload_status": dict(Counter(status for status, _ in uploads)),
            "upload_seconds_max": max(seconds for _, seconds in uploads),
            "all_uploads_seconds": total,
            "server_peak_rss_mb": peak_rss_mb(server.pid),
        }
    print(json.dumps(report, indent=2))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"uploads-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"saved {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
