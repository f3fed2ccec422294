"""clipforge serve under hostile or careless input: which files it serves, big uploads, bad JSON,
slow clients, the API key and Host allow-list, and the serve/index flags checked when parsed."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from clipforge.cli.main import main
from clipforge.search.server import ServerConfig, create_app
from clipforge.search.serving import uvicorn_config
from clipforge.search.uploads import UploadRejected, UploadSlots

from search_helpers import (
    free_port,
    known_answer_index,
    micro_model_dir,
    running_server,
    swatch,
)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return known_answer_index(tmp_path_factory.mktemp("hardening"))[1]


def png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


# -- which files are served ----------------------------------------------------------------------


def other_top_level_dir() -> Path:
    """A temporary folder in another top-level tree than the test's tmp_path (/tmp)."""
    here = Path(tempfile.gettempdir()).parts[1]
    for parent in ("/dev/shm", "/var/tmp"):
        if os.access(parent, os.W_OK) and Path(parent).parts[1] != here:
            return Path(tempfile.mkdtemp(dir=parent, prefix="clipforge-test-"))
    pytest.skip("no writable folder outside the temp tree")


def embed_csv(tmp_path: Path, images: list[Path]) -> Path:
    """embed + index a CSV that names ``images`` by absolute path; returns the index dir."""
    captions = [f"a {colour} square" for colour in ("red", "green", "blue", "yellow")]
    model = micro_model_dir(tmp_path / "model", captions)
    table = tmp_path / "pairs.csv"
    table.write_text(
        "image,caption\n" + "".join(f"{path},{captions[i % 4]}\n" for i, path in enumerate(images))
    )
    assert (
        main(
            [
                "embed",
                "--model",
                str(model),
                "--data",
                f"csv:{table}",
                "--out",
                str(tmp_path / "emb"),
                "--workers",
                "0",
                "--batch-size",
                "4",
            ]
        )
        == 0
    )
    assert (
        main(["index", "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "idx")]) == 0
    )
    return tmp_path / "idx"


def test_images_in_two_trees_are_served_by_row_and_nothing_else(tmp_path):
    elsewhere = other_top_level_dir()
    try:
        listed = []
        for folder, colours in (
            (tmp_path / "photos", ("red", "green")),
            (elsewhere / "more", ("blue", "yellow")),
        ):
            folder.mkdir()
            for colour in colours:
                swatch(colour).save(folder / f"{colour}.png")
                listed.append(folder / f"{colour}.png")
            swatch("black").save(folder / "unlisted.png")  # beside them, not in the CSV
        client = TestClient(create_app(embed_csv(tmp_path, listed)))
        info = client.app.state.searcher.info
        assert info["image_root"] is None and info["image_files"] == "by-row"
        for item_id, path in enumerate(listed):
            url = client.get(f"/items/{item_id}").json()["image_url"]
            response = client.get(url)
            assert response.status_code == 200 and response.content == path.read_bytes()
        unlisted = [tmp_path / "photos/unlisted.png", elsewhere / "more/unlisted.png"]
        for path in unlisted + [Path(sys.executable)]:
            for guess in (str(path).lstrip("/"), f"0/{path.name}", f"2/{path.name}"):
                assert client.get(f"/images/{guess}").status_code == 404, guess
        assert client.get("/images/etc/passwd").status_code == 404
    finally:
        import shutil

        shutil.rmtree(elsewhere, ignore_errors=True)


def test_one_tree_serves_only_the_listed_files_under_its_root(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    listed = [folder / "red.png", folder / "sub/green.png"]
    for path, colour in zip(listed, ("red", "green")):
        swatch(colour).save(path)
    swatch("black").save(folder / "unlisted.png")
    swatch("blue").save(tmp_path / "beside.png")
    client = TestClient(create_app(embed_csv(tmp_path, listed)))
    assert client.app.state.searcher.info["image_root"] == str(folder)
    assert client.get("/images/sub/green.png").content == listed[1].read_bytes()
    assert client.get("/images/red.png").status_code == 200
    for path in ("unlisted.png", "../beside.png", "..%2Fbeside.png", "sub/../unlisted.png"):
        assert client.get(f"/images/{path}").status_code == 404, path


def test_a_root_that_exposes_the_file_system_is_refused(tmp_path, index_dir, capsys):
    code = main(
        [
            "index",
            "--embeddings",
            str(index_dir.parent / "emb"),
            "--out",
            str(tmp_path / "idx"),
            "--image-root",
            "/",
        ]
    )
    assert code == 2 and not (tmp_path / "idx").exists()
    assert "image root / would expose the file system" in capsys.readouterr().err
    # an index written before roots were checked, edited, or copied from elsewhere
    import shutil

    shutil.copytree(index_dir, tmp_path / "old")
    info = json.loads((tmp_path / "old/index_info.json").read_text())
    info["image_root"] = os.path.expanduser("~")
    (tmp_path / "old/index_info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="home folder"):
        create_app(tmp_path / "old")


# -- uploads -----------------------------------------------------------------------------------


def test_healthz_stays_fast_while_big_uploads_decode(index_dir):
    """4 × 9-megapixel PNGs (~0.25 s of decoding each here): decoded on the event loop they
    stalled /healthz for each decode; in worker processes it keeps answering in milliseconds."""
    big = png_bytes(
        Image.linear_gradient("L").resize((3000, 3000)).convert("RGB"), compress_level=1
    )
    app = create_app(index_dir, ServerConfig(uploads_in_flight=2))
    latencies, stop = [], threading.Event()
    with running_server(app) as url:

        def poll():
            with httpx.Client(base_url=url, timeout=10) as http:
                while not stop.is_set():
                    started = time.perf_counter()
                    assert http.get("/healthz").status_code == 200
                    latencies.append(time.perf_counter() - started)
                    time.sleep(0.005)

        def upload(_):
            with httpx.Client(base_url=url, timeout=60) as http:
                return http.post("/search", files={"image": ("big.png", big, "image/png")})

        poller = threading.Thread(target=poll)
        poller.start()
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(upload, range(4)))
        stop.set()
        poller.join()
    assert [a.status_code for a in answers] == [200] * 4
    # old code: 4 polls in ~2 s, each waiting out a decode (max 1.5 s). The 90th percentile, not
    # the max, so a shared, overloaded CI core (load 15+ on 2 cores) cannot fail it; the full
    # 16 × 49 MP figure with its max is benchmarks/upload_pressure.py's (benchmarks/README.md)
    latencies.sort()
    assert len(latencies) >= 10 and latencies[len(latencies) // 2] < 0.02, latencies
    assert latencies[int(len(latencies) * 0.9)] < 0.1, latencies[-10:]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height, with a few bytes of image data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_pixel_cap_is_read_from_the_header_before_decoding(index_dir):
    client = TestClient(create_app(index_dir, ServerConfig(max_image_pixels=1_000_000)))
    started = time.perf_counter()
    response = client.post(
        "/search", files={"image": ("q.png", png_header_only(8000, 8000), "image/png")}
    )
    assert response.status_code == 400 and "8000×8000" in response.json()["detail"]
    assert time.perf_counter() - started < 1.0  # nothing decoded
    garbage = client.post("/search", files={"image": ("q.png", b"\x89PNG nope", "image/png")})
    assert garbage.status_code == 400 and "0x" not in garbage.text  # no object repr
    ok = client.post("/search", files={"image": ("q.png", png_bytes(swatch("red")), "image/png")})
    assert ok.status_code == 200


def test_big_uploads_are_shrunk_on_the_decode_thread_aspect_kept():
    from clipforge.search.uploads import WORKING_SIDE, decode_capped

    big = decode_capped(png_bytes(Image.new("RGB", (3 * WORKING_SIDE, WORKING_SIDE))), 10**8)
    assert big.size == (WORKING_SIDE, WORKING_SIDE // 3)
    small = decode_capped(png_bytes(Image.new("RGB", (300, 200))), 10**8)
    assert small.size == (300, 200)  # already small: left as it is


def test_uploads_decode_in_other_processes_started_with_the_app(index_dir):
    app = create_app(index_dir, ServerConfig(uploads_in_flight=2))
    service = app.state.service
    with TestClient(app) as client:  # the lifespan starts the decode processes up front
        pool = service._decoders
        assert pool is not None
        pids = set(pool.map(_decoder_pid, range(8)))
        assert os.getpid() not in pids and 1 <= len(pids) <= 2
        ok = client.post(
            "/search", files={"image": ("q.png", png_bytes(swatch("red")), "image/png")}
        )
        assert ok.status_code == 200
        bad = client.post("/search", files={"image": ("q.png", b"\x89PNG nope", "image/png")})
        assert bad.status_code == 400  # UploadRejected came back across the process boundary
    assert service._decoders is None  # and the shutdown stopped them


def _decoder_pid(_: int) -> int:
    return os.getpid()


def test_upload_slots_queue_then_refuse():
    async def scenario():
        slots = UploadSlots(max_in_flight=1, max_waiting=1)
        release, order = asyncio.Event(), []

        async def use(name):
            async with slots.slot():
                order.append(name)
                await release.wait()

        first = asyncio.create_task(use("first"))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(use("second"))  # waits for the slot
        await asyncio.sleep(0.01)
        with pytest.raises(UploadRejected) as refused:
            async with slots.slot():
                pass
        assert refused.value.status == 429 and (slots.in_flight, slots.waiting) == (1, 1)
        release.set()
        await asyncio.gather(first, second)
        return order

    assert asyncio.run(scenario()) == ["first", "second"]


def test_uploads_beyond_the_slots_get_429_and_are_counted(index_dir, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    app = create_app(index_dir, ServerConfig(uploads_in_flight=1, uploads_waiting=0))
    decode = app.state.service.decode_upload

    async def slow_decode(data):  # holds its slot until released
        entered.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 30)
        return await decode(data)

    monkeypatch.setattr(app.state.service, "decode_upload", slow_decode)
    client = TestClient(app)
    files = {"image": ("q.png", png_bytes(swatch("red")), "image/png")}
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.post, "/search", files=files)
        assert entered.wait(30)
        refused = client.post("/search", files=files)
        release.set()
        assert first.result(30).status_code == 200
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert "busy" in refused.json()["detail"]
    assert "clipforge_uploads_rejected_total 1.0" in client.get("/metrics").text
    assert client.post("/search", files=files).status_code == 200  # the slot is free again


# -- bad JSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"text": NaN}',
        b'{"text": "apple", "hybrid_weight": NaN}',
        b'{"k": Infinity}',
        b'{"text": "apple", "text_weight": -Infinity}',
        b'{"text": "apple", "k": 1e999}',
        b'{"text": "\\ud800 SECRET-MARKER"}',
        b'{"\\udc00SECRET-MARKER": 1}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"text": ' + b"[" * 50 + b"1" + b"]" * 50 + b"}",
        b'{"text": ["SECRET-MARKER"]}',
        b'{"text": {"SECRET-MARKER": 1}}',
        b'{"k": "SECRET-MARKER"}',
        b'{"text": "apple", "k": 1' + b"0" * 5000 + b"}",
        b"\xff\xfe{}",
    ],
)
def test_bad_json_is_a_4xx_that_echoes_nothing(index_dir, body):
    client = TestClient(create_app(index_dir))
    response = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text[:200]
    detail = response.json()["detail"]
    assert detail and "SECRET-MARKER" not in response.text and " at 0x" not in response.text


def test_form_and_path_errors_echo_nothing(index_dir):
    client = TestClient(create_app(index_dir))
    response = client.get("/items/SECRET-MARKER")
    assert response.status_code == 422 and "SECRET-MARKER" not in response.text
    response = client.post("/search", files={"text": ("t.txt", b"SECRET-MARKER", "text/plain")})
    assert response.status_code == 422
    assert "SECRET-MARKER" not in response.text and " at 0x" not in response.text


# -- slow clients, key, hosts ------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [
        b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-",  # half the headers
        b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b'content-length: 100\r\n\r\n{"text": ',  # half the body
        b"",  # nothing at all
    ],
)
def test_half_sent_requests_time_out(index_dir, sent):
    import logging

    import uvicorn

    app = create_app(index_dir)
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", free_port(), request_timeout=1.0))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    errors: list[logging.LogRecord] = []
    catcher = logging.Handler(logging.ERROR)
    catcher.emit = errors.append  # after uvicorn configured its loggers
    logging.getLogger("uvicorn.error").addHandler(catcher)
    try:
        with socket.create_connection(("127.0.0.1", server.config.port), timeout=8) as raw:
            raw.sendall(sent)
            started, received = time.perf_counter(), b""
            while chunk := raw.recv(4096):  # returns b"" when the server closes
                received += chunk
            waited = time.perf_counter() - started
        assert 0.8 < waited < 4 and received.startswith(b"HTTP/1.1 408"), (waited, received)
        with httpx.Client(base_url=f"http://127.0.0.1:{server.config.port}") as http:
            assert http.post("/search", json={"text": "a red apple"}).status_code == 200
        assert not errors, errors[0].getMessage()  # no traceback in the server log
    finally:
        logging.getLogger("uvicorn.error").removeHandler(catcher)
        server.should_exit = True
        thread.join(10)


def test_api_key_guards_every_route_but_healthz(index_dir):
    client = TestClient(create_app(index_dir, ServerConfig(api_key="s3cret")))
    for method, path in (
        ("POST", "/search"),
        ("GET", "/items/3"),
        ("GET", "/metrics"),
        ("GET", "/images/0000/000000003.png"),
        ("GET", "/"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/static/app.js"),
    ):
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer s3cre"}):
            response = client.request(method, path, headers=headers, json={"text": "apple"})
            assert response.status_code == 401, (path, headers)
            assert "s3cret" not in response.text
    assert client.get("/healthz").status_code == 200
    for headers in ({"X-API-Key": "s3cret"}, {"Authorization": "Bearer s3cret"}):
        answer = client.post("/search", json={"text": "a red apple"}, headers=headers)
        assert answer.status_code == 200 and answer.json()["results"][0]["id"] == 3
        assert client.get("/images/0000/000000003.png", headers=headers).status_code == 200


def test_allowed_hosts_refuse_a_rebound_name(index_dir):
    client = TestClient(
        create_app(index_dir, ServerConfig(allowed_hosts=["localhost", "127.0.0.1"]))
    )
    assert client.get("/healthz", headers={"host": "attacker.example"}).status_code == 400
    assert (
        client.post(
            "/search", json={"text": "apple"}, headers={"host": "attacker.example"}
        ).status_code
        == 400
    )
    assert client.get("/healthz", headers={"host": "localhost:8000"}).status_code == 200


def test_serve_warns_beyond_loopback_and_passes_the_options(index_dir, monkeypatch, capsys):
    from clipforge.search import serving

    served = []
    monkeypatch.setattr(serving, "run_server", lambda app, config: served.append(config))
    monkeypatch.delenv("CLIPFORGE_API_KEY", raising=False)
    assert (
        main(
            [
                "serve",
                "--index",
                str(index_dir),
                "--host",
                "0.0.0.0",
                "--port",
                "8123",
                "--allowed-hosts",
                "search.example.org, localhost",
                "--request-timeout",
                "7",
            ]
        )
        == 0
    )
    assert "with no authentication" in capsys.readouterr().err
    config = served[-1]
    assert (config.host, config.port, config.request_timeout) == ("0.0.0.0", 8123, 7.0)
    assert config.allowed_hosts == ["search.example.org", "localhost"]
    assert main(["serve", "--index", str(index_dir)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert (served[-1].host, served[-1].port, served[-1].api_key) == ("127.0.0.1", 8000, None)
    monkeypatch.setenv("CLIPFORGE_API_KEY", "k")
    assert main(["serve", "--index", str(index_dir), "--host", "::"]) == 0
    assert "without TLS" in capsys.readouterr().err and served[-1].api_key == "k"


# -- flags checked when parsed -------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, named",
    [
        (["serve", "--index", "IDX", "--port", "99999"], "99999"),
        (["serve", "--index", "IDX", "--port", "http"], "http"),
        (["serve", "--index", "IDX", "--max-upload-mb", "-1"], "-1"),
        (["index", "--embeddings", "EMB", "--out", "OUT", "--index-key", "Bogus"], "Bogus"),
        (["index", "--embeddings", "EMB", "--out", "OUT", "--memory-budget", "lots"], "lots"),
        (["index", "--embeddings", "EMB", "--out", "OUT", "--target-recall", "1.5"], "1.5"),
    ],
)
def test_bad_flag_values_fail_at_parse_time(tmp_path, index_dir, argv, named):
    argv = [
        str(index_dir)
        if a == "IDX"
        else str(index_dir.parent / "emb")
        if a == "EMB"
        else str(tmp_path / "out")
        if a == "OUT"
        else a
        for a in argv
    ]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "clipforge", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CLIPFORGE_NO_TCMALLOC": "1"},
    )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"clipforge {argv[0]}: error:") and named in last
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()
    assert time.perf_counter() - started < 30  # failed before any model loads


def test_every_serve_and_index_flag_has_help_a_default_and_an_example():
    import argparse

    from clipforge.cli import index, serve

    for module in (serve, index):
        verb = module.__name__.rsplit(".", 1)[1]
        assert "example" in module.EXAMPLES and f"clipforge {verb} " in module.EXAMPLES
        parser = argparse.ArgumentParser(prog=f"clipforge {verb}")
        module.add_arguments(parser)
        flags = [a for a in parser._actions if a.dest != "help"]
        for action in flags:
            assert action.help, (verb, action.dest)
            if not action.required:  # None: the library's dataclass holds the default
                assert action.default is None and "default" in action.help, (verb, action.dest)
        assert "(default: 8000)" in parser.format_help() or verb == "index"
