"""``clipforge eval geometry``: hand-computed metric cases on constructed embeddings, the
projection plot and the command end to end on a micro model."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from test_evaluation import micro_model_dir, one_thread  # noqa: F401  (fixtures)

import clipforge
from clipforge.cli.main import main
from clipforge.evaluation import EncodeConfig, GeometryConfig, RetrievalConfig, geometry, retrieval
from clipforge.evaluation.geometry import alignment, effective_rank, geometry_metrics, uniformity
from clipforge.evaluation.projection import pca_2d, plot_projection

from synthetic import ShapesSource

QUIET = EncodeConfig(batch_size=8, workers=0, progress=False)


def unit_rows(count, dim, seed=0):
    return F.normalize(
        torch.randn(count, dim, generator=torch.Generator().manual_seed(seed)), dim=1
    )


def test_identical_embeddings_have_no_gap_and_perfect_alignment():
    embeds = unit_rows(6, 5)
    metrics = geometry_metrics(embeds, embeds.clone(), torch.arange(6))
    assert metrics["modality_gap"] == pytest.approx(0, abs=1e-7)
    assert metrics["alignment"] == pytest.approx(0, abs=1e-12)
    assert metrics["uniformity_image"] == pytest.approx(metrics["uniformity_text"])
    assert metrics["effective_rank"] == pytest.approx(metrics["effective_rank_image"])


def test_alignment_hand_computed():
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # captions: two of image 0 (one on it, one antipodal), one of image 1 at 90°
    texts = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    # squared distances 0, 4, 2 → mean 2
    assert alignment(images, texts, torch.tensor([0, 0, 1])) == pytest.approx(2.0)


def test_uniformity_hand_computed():
    antipodal = torch.tensor([[0.0, 1.0], [0.0, -1.0]])
    assert uniformity(antipodal) == pytest.approx(-8.0)  # log exp(-2 · 4)
    assert uniformity(antipodal, t=0.5) == pytest.approx(-2.0)
    # three points at 120° on a circle: every squared distance is 3 → log exp(-6)
    angles = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3])
    triangle = torch.stack([angles.cos(), angles.sin()], dim=1)
    assert uniformity(triangle) == pytest.approx(-6.0, abs=1e-6)  # fp32 input
    # (0,0), (1,0), (0,0): distances 1, 0, 1 → log((2e^-2 + 1) / 3)
    mixed = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    assert uniformity(mixed) == pytest.approx(math.log((2 * math.exp(-2) + 1) / 3))
    collapsed = unit_rows(1, 4).repeat(5, 1)
    assert uniformity(collapsed) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="at least two"):
        uniformity(unit_rows(1, 4))


def test_uniformity_in_blocks_equals_all_pairs():
    embeds = unit_rows(37, 6, seed=3)
    distances = torch.cdist(embeds.double(), embeds.double()).square()
    upper = torch.triu(torch.ones(37, 37, dtype=torch.bool), diagonal=1)
    direct = torch.exp(-2 * distances[upper]).mean().log().item()
    assert uniformity(embeds, block_size=5) == pytest.approx(direct, rel=1e-9)
    assert uniformity(embeds, block_size=1000) == pytest.approx(direct, rel=1e-9)


def test_effective_rank_hand_computed():
    basis = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(1)))[0]
    assert effective_rank(basis[:3]) == pytest.approx(3.0)  # 3 orthonormal rows: σ = 1, 1, 1
    assert effective_rank(basis) == pytest.approx(8.0)
    assert effective_rank(unit_rows(1, 8).repeat(10, 1)) == pytest.approx(1.0)
    # σ = (2, 1, 1) → p = (1/2, 1/4, 1/4) → exp(H) = exp(1.5 ln 2) = 2^1.5
    assert effective_rank(torch.diag(torch.tensor([2.0, 1.0, 1.0]))) == pytest.approx(2**1.5)


def test_pca_2d_finds_the_spread_directions():
    # spread 10 along axis 3 and 3 along axis 1, uncorrelated; axis 0 constant
    signs = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    points = torch.zeros(4, 5)
    points[:, 3], points[:, 1], points[:, 0] = 10 * signs[:, 0], 3 * signs[:, 1], 7.0
    # principal directions +e3 then +e1 (largest entry made positive), offsets centred away
    assert pca_2d(points + 2) == pytest.approx(torch.stack([points[:, 3], points[:, 1]], dim=1))


def test_plot_file_written(tmp_path):
    images, texts = unit_rows(30, 8, seed=1), unit_rows(60, 8, seed=2)
    path = plot_projection(images, texts, torch.arange(60) // 2, tmp_path / "sub" / "gap.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert [p.name for p in path.parent.iterdir()] == ["gap.png"]  # no temporary left


def test_library_geometry_matches_retrieval_gap(micro_model_dir, tmp_path):  # noqa: F811
    model, preprocess, tokenizer = clipforge.load(micro_model_dir)
    source = ShapesSource(12, seed=4, bad_keys={3})
    result = geometry(
        model, preprocess, tokenizer, source, GeometryConfig(encode=QUIET, max_points=5)
    )
    ranked = retrieval(model, preprocess, tokenizer, source, RetrievalConfig(encode=QUIET))
    metrics = result["metrics"]
    assert metrics["modality_gap"] == pytest.approx(ranked["metrics"]["modality_gap"], abs=1e-6)
    assert result["num_samples"] == 11 and result["num_texts"] == 22
    assert [s["key"] for s in result["skipped"]] == ["shape-3"]
    assert 0 < metrics["alignment"] <= 4 and metrics["uniformity"] <= 0
    assert 1 <= metrics["effective_rank_image"] <= 11 and 1 <= metrics["effective_rank_text"] <= 22
    assert result["plot"] is None


def test_cli_geometry_end_to_end(micro_model_dir, tmp_path, capsys, monkeypatch):  # noqa: F811
    import clipforge.evaluation.runner as runner

    monkeypatch.setattr(runner, "open_source", lambda spec: ShapesSource(10, seed=5))
    out_json, plot = tmp_path / "geometry.json", tmp_path / "gap.png"
    code = main(
        ["eval", "geometry", "--model", str(micro_model_dir), "--data", "builtin:shapes"]
        + ["--json", str(out_json), "--plot", str(plot), "--workers", "0", "--no-progress"]
    )
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out_json.read_text())
    assert result["task"] == "geometry" and result["plot"] == str(plot)
    assert set(result["metrics"]) == {
        "modality_gap",
        "alignment",
        "uniformity",
        "uniformity_image",
        "uniformity_text",
        "effective_rank",
        "effective_rank_image",
        "effective_rank_text",
    }
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert f"{result['metrics']['alignment']:.4f}" in out


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--data", "builtin:nope"], "builtin:nope"),
        (["--data", "/no/such/folder"], "/no/such/folder"),
        (["--data", "builtin:emoji", "--plot", "gap.svg"], "gap.svg"),
    ],
)
def test_cli_geometry_bad_input(argv, named, micro_model_dir, capsys):  # noqa: F811
    code = main(["eval", "geometry", "--model", str(micro_model_dir), *argv, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("clipforge eval: error:") and named in err
    assert err.count("\n") == 1
