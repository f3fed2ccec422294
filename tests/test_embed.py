"""clipforge embed: shards, metadata, skipping, float16, resume, sparse vectors, thumbnails."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from clipforge import load
from clipforge.cli.main import main
from clipforge.data.record import RawRecord, decode_image
from clipforge.data.sources.base import MapSource, StreamSource
from clipforge.search.embed import EmbedConfig, embed
from clipforge.search.shards import EmbeddingDir, shard_path

from search_helpers import micro_model_dir, swatch
from synthetic import ShapesSource


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    captions = list(ShapesSource(48).captions())
    return micro_model_dir(tmp_path_factory.mktemp("model") / "micro", captions)


def config(model_dir, out, **overrides) -> EmbedConfig:
    values = dict(
        model=str(model_dir), data="shapes", out=out, shard_size=8, batch_size=4, workers=0
    )
    values.update(overrides)
    return EmbedConfig(**values)


def test_shards_hold_the_models_embeddings_in_source_order(model_dir, tmp_path):
    source = ShapesSource(20, bad_keys=frozenset({3}))
    result = embed(config(model_dir, tmp_path / "emb"), source=source, progress=False)
    assert (result.count, result.skipped, result.computed_shards) == (19, 1, [0, 1, 2])
    out = EmbeddingDir(tmp_path / "emb")
    assert out.info["count"] == 19 and out.info["dims"] == {"image": 32, "text": 32}
    assert out.info["model"] == str(model_dir.resolve())
    metadata = pq.read_table(shard_path(tmp_path / "emb", "metadata", 0)).to_pydict()
    assert metadata["id"] == [0, 1, 2, 4, 5, 6, 7]  # record 3 is bad: skipped
    assert metadata["key"][3] == "shape-4"
    assert metadata["caption"][3] == source[4].captions[0]  # the first caption
    skipped = [
        json.loads(line) for line in (tmp_path / "emb/skipped.jsonl").read_text().splitlines()
    ]
    assert [s["key"] for s in skipped] == ["shape-3"] and "decode" in skipped[0]["reason"]

    model, preprocess, tokenizer = load(model_dir)
    with torch.no_grad():
        image = model.encode_image(preprocess(decode_image(source[9]))[None], normalize=True)[
            0
        ].numpy()
        text = model.encode_text(tokenizer([source[9].captions[0]]), normalize=True)[0].numpy()
    images, texts = out.dense("image"), out.dense("text")
    row = out.metadata().column("id").to_pylist().index(9)
    np.testing.assert_allclose(images[row], image, atol=1e-5)
    np.testing.assert_allclose(texts[row], text, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)


def test_float16_and_single_modality(model_dir, tmp_path):
    source = ShapesSource(10)
    embed(config(model_dir, tmp_path / "f32", modality="image"), source=source, progress=False)
    embed(
        config(model_dir, tmp_path / "f16", modality="image", float16=True),
        source=source,
        progress=False,
    )
    half = np.load(shard_path(tmp_path / "f16", "image", 0))
    assert half.dtype == np.float16
    assert not shard_path(tmp_path / "f16", "text", 0).exists()
    full = EmbeddingDir(tmp_path / "f32").dense("image")
    np.testing.assert_allclose(EmbeddingDir(tmp_path / "f16").dense("image"), full, atol=2e-3)


def _mtimes(directory, shards, kinds=("image", "text", "metadata")):
    return {(k, i): shard_path(directory, k, i).stat().st_mtime_ns for k in kinds for i in shards}


def test_resume_recomputes_only_the_missing_shard(model_dir, tmp_path):
    source, out = ShapesSource(20), tmp_path / "emb"
    embed(config(model_dir, out), source=source, progress=False)
    before = _mtimes(out, [0, 2])
    old_images = EmbeddingDir(out).dense("image").copy()
    shard_path(out, "image", 1).unlink()
    result = embed(config(model_dir, out), source=source, progress=False)
    assert (result.computed_shards, result.reused_shards) == ([1], [0, 2])
    assert _mtimes(out, [0, 2]) == before  # finished shards untouched
    np.testing.assert_allclose(EmbeddingDir(out).dense("image"), old_images, atol=1e-6)


class FailingSource(MapSource):
    """ShapesSource that dies at one record, like a run killed in the middle of shard 1."""

    def __init__(self, fail_at: int):
        self.inner, self.fail_at = ShapesSource(20), fail_at

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        if index == self.fail_at:
            raise KeyboardInterrupt("killed")
        return self.inner[index]


def test_interrupted_run_leaves_no_partial_shard(model_dir, tmp_path):
    out = tmp_path / "emb"
    with pytest.raises(KeyboardInterrupt):
        embed(config(model_dir, out), source=FailingSource(fail_at=11), progress=False)
    assert shard_path(out, "metadata", 0).exists() and shard_path(out, "image", 0).exists()
    leftovers = [
        p
        for p in out.rglob("*")
        if p.is_file() and ("_0001" in p.name or p.name.startswith(".tmp"))
    ]
    assert leftovers == []
    result = embed(config(model_dir, out), source=ShapesSource(20), progress=False)
    assert (result.computed_shards, result.reused_shards, result.count) == ([1, 2], [0], 20)


def test_resuming_with_other_settings_is_refused(model_dir, tmp_path):
    embed(config(model_dir, tmp_path / "emb"), source=ShapesSource(10), progress=False)
    with pytest.raises(ValueError, match="shard_size"):
        embed(
            config(model_dir, tmp_path / "emb", shard_size=4),
            source=ShapesSource(10),
            progress=False,
        )


class FakeLexicon:
    """Sparse vectors with a known rule: term t of an image = relu(mean patch feature t)."""

    vocab = 40

    def encode_image_sparse(self, image_tokens):
        weights = torch.zeros(image_tokens.shape[0], self.vocab)
        weights[:, :32] = image_tokens.mean(1).relu()
        return weights

    def encode_text_sparse(self, text_tokens, mask):
        weights = torch.zeros(text_tokens.shape[0], self.vocab)
        weights[:, 8:40] = text_tokens[:, 0].relu()
        return weights


def test_sparse_vectors_are_written_as_csr(model_dir, tmp_path):
    source = ShapesSource(10)
    embed(
        config(model_dir, tmp_path / "emb"),
        source=source,
        sparse_encoder=FakeLexicon(),
        progress=False,
    )
    out = EmbeddingDir(tmp_path / "emb")
    assert out.info["dims"]["sparse_image"] == 40
    matrix = out.sparse("sparse_image")
    assert matrix.shape == (10, 40) and matrix.format == "csr"
    model, preprocess, _ = load(model_dir)
    with torch.no_grad():
        _, tokens = model.encode_image(
            preprocess(decode_image(source[2]))[None], return_tokens=True
        )
    np.testing.assert_allclose(
        matrix[2].toarray()[0, :32], tokens.mean(1).relu()[0].numpy(), atol=1e-5
    )
    assert matrix[:, 32:].nnz == 0  # zeros are not stored
    assert out.sparse("sparse_text").shape == (10, 40)


class PathSource(MapSource):
    def __init__(self, folder):
        self.paths = []
        for colour in ["red", "blue", "green"]:
            path = folder / f"{colour}.png"
            swatch(colour).save(path)
            self.paths.append(str(path))

    def __len__(self):
        return 3

    def __getitem__(self, index):
        return RawRecord(f"k{index}", self.paths[index], (f"a {index} swatch",))


def test_thumbnails_only_for_records_without_a_file(model_dir, tmp_path):
    (tmp_path / "pics").mkdir()
    embed(
        config(model_dir, tmp_path / "files"), source=PathSource(tmp_path / "pics"), progress=False
    )
    files = EmbeddingDir(tmp_path / "files").metadata().to_pydict()
    assert files["image_path"][1] == str(tmp_path / "pics/blue.png")
    assert files["thumbnail"] == ["", "", ""] and not (tmp_path / "files/images").exists()
    embed(config(model_dir, tmp_path / "bytes"), source=ShapesSource(4), progress=False)
    rows = EmbeddingDir(tmp_path / "bytes").metadata().to_pydict()
    assert rows["image_path"] == ["shape-0", "shape-1", "shape-2", "shape-3"]
    thumbnail = tmp_path / "bytes" / rows["thumbnail"][2]
    assert thumbnail.is_file() and thumbnail.suffix == ".png"
    assert decode_image(RawRecord("t", str(thumbnail), ("x",))).size == (32, 32)


def test_cli_embed_a_folder_with_workers(model_dir, tmp_path, capsys):
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for colour in ("red", "green", "blue"):
        swatch(colour).save(pairs / f"{colour}.png")
        (pairs / f"{colour}.txt").write_text(f"a {colour} square")
    code = main(
        [
            "embed",
            "--model",
            str(model_dir),
            "--data",
            f"folder:{pairs}",
            "--out",
            str(tmp_path / "emb"),
            "--workers",
            "1",
            "--shard-size",
            "2",
            "--float16",
        ]
    )
    assert code == 0 and "3 vectors in 2 shards" in capsys.readouterr().out
    rows = EmbeddingDir(tmp_path / "emb").metadata().to_pydict()
    assert sorted(rows["caption"]) == ["a blue square", "a green square", "a red square"]
    assert (
        main(
            [
                "embed",
                "--model",
                str(tmp_path / "nope"),
                "--data",
                f"folder:{pairs}",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )


class ShapesStream(StreamSource):
    """ShapesSource read as a stream, in order (like WebDataset shards)."""

    def __init__(self):
        self.inner = ShapesSource(10)

    def __iter__(self):
        for index in range(len(self.inner)):
            yield self.inner[index]


def test_streams_resume_by_counting_records(model_dir, tmp_path):
    out = tmp_path / "emb"
    embed(config(model_dir, out, shard_size=4), source=ShapesStream(), progress=False)
    first = EmbeddingDir(out)
    assert first.info["shards"] == [0, 1, 2] and first.info["count"] == 10
    before = first.dense("text").copy()
    shard_path(out, "text", 1).unlink()
    result = embed(config(model_dir, out, shard_size=4), source=ShapesStream(), progress=False)
    assert (result.computed_shards, result.reused_shards) == ([1], [0, 2])
    assert EmbeddingDir(out).metadata().column("id").to_pylist() == list(range(10))
    np.testing.assert_allclose(EmbeddingDir(out).dense("text"), before, atol=1e-6)
