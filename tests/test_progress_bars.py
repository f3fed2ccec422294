"""Every long command draws a tqdm bar on stderr (stdout keeps the result) and
``--no-progress`` turns it off: index, embed and data prepare here; train, eval and refine
in their own tests."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipforge.cli.main import main

from search_helpers import micro_model_dir, swatch, write_embedding_dir


def bar_lines(err: str, label: str) -> list[str]:
    return [part for part in err.replace("\r", "\n").splitlines() if label in part]


@pytest.mark.parametrize("quiet", [False, True])
def test_index_build_shows_the_vectors_added(tmp_path, capsys, quiet):
    vectors = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    write_embedding_dir(tmp_path / "emb", vectors, [f"c{i}" for i in range(300)], None)
    argv = ["index", "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "idx")]
    assert main(argv + (["--no-progress"] if quiet else [])) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["count"] == 300  # the result alone on stdout
    bars = bar_lines(captured.err, "index Flat")
    assert bars == [] if quiet else any("300/300" in line for line in bars)


@pytest.mark.parametrize("quiet", [False, True])
def test_embed_shows_the_records_embedded(tmp_path, capsys, quiet):
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for colour in ("red", "green", "blue"):
        swatch(colour).save(pairs / f"{colour}.png")
        (pairs / f"{colour}.txt").write_text(f"a {colour} square")
    model = micro_model_dir(tmp_path / "model", ["a red square", "a green square"])
    argv = ["embed", "--model", str(model), "--data", f"folder:{pairs}"]
    argv += ["--out", str(tmp_path / "emb"), "--workers", "0"]
    assert main(argv + (["--no-progress"] if quiet else [])) == 0
    captured = capsys.readouterr()
    assert "3 vectors" in captured.out
    bars = bar_lines(captured.err, "embed")
    assert bars == [] if quiet else any("3/3" in line for line in bars)


@pytest.mark.parametrize("quiet", [False, True])
def test_data_prepare_shows_the_headers_read(tmp_path, monkeypatch, capsys, quiet):
    from test_builtin_data import fake_openclipart_tree, pretend_root_with_apt  # its fakes

    monkeypatch.setenv("CLIPFORGE_CACHE", str(tmp_path / "cache"))
    pretend_root_with_apt(monkeypatch, tmp_path / "png", installs=fake_openclipart_tree)
    argv = ["data", "prepare", "openclipart", "--root", str(tmp_path / "png")]
    assert main(argv + (["--no-progress"] if quiet else [])) == 0
    captured = capsys.readouterr()
    assert "ready: 14 drawings" in captured.out
    bars = bar_lines(captured.err, "openclipart index")
    assert bars == [] if quiet else any("14/14" in line for line in bars)
