"""Evaluation: metrics on hand-computed cases, blocked == full scoring, the eval CLI end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import clipforge
from clipforge.cli.main import main
from clipforge.data.sources.classfolder import ClassFolderSource
from clipforge.data.tokenizer import Tokenizer
from clipforge.evaluation import (
    EVALUATORS,
    EncodeConfig,
    RetrievalConfig,
    ZeroShotConfig,
    evaluate,
    retrieval,
    zeroshot_classification,
)
from clipforge.evaluation.metrics import (
    classification_metrics,
    mean_per_class_recall,
    modality_gap,
    retrieval_recalls,
)
from clipforge.evaluation.report import format_result
from clipforge.evaluation.templates import load_templates
from clipforge.models import CLIP
from clipforge.models.io import save_model_dir

from synthetic import SHAPES, ShapesSource, draw
from tiny_clip import micro_config

QUIET = EncodeConfig(batch_size=4, workers=0, progress=False)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matmuls gain nothing from threads, and lose much when the machine is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- metrics ---------------------------------------------------------------------------------

# 6 texts × 4 images; texts 0,1 belong to image 0, text 2 to image 1, text 3 to image 2, and
# texts 4,5 to image 3. Ranks of the true image per text: 1, 4, 3, 1, 2, 2.
SCORES = torch.tensor(
    [
        [0.9, 0.1, 0.2, 0.3],
        [0.1, 0.8, 0.3, 0.2],
        [0.5, 0.4, 0.6, 0.0],
        [0.0, 0.1, 0.7, 0.2],
        [0.6, 0.0, 0.1, 0.5],
        [0.2, 0.3, 0.4, 0.35],
    ]
)
TEXT_IMAGE = torch.tensor([0, 0, 1, 2, 3, 3])


def test_retrieval_recalls_hand_computed():
    # identity image embeddings make text @ image.T equal SCORES
    metrics = retrieval_recalls(torch.eye(4), SCORES, TEXT_IMAGE, ks=(1, 2, 3))
    assert metrics["image_retrieval_recall@1"] == pytest.approx(2 / 6)
    assert metrics["image_retrieval_recall@2"] == pytest.approx(4 / 6)
    assert metrics["image_retrieval_recall@3"] == pytest.approx(5 / 6)
    # per image, best rank of any of its texts: image 0 → 1 (text 0), image 1 → 2, 2 → 1, 3 → 1
    assert metrics["text_retrieval_recall@1"] == pytest.approx(3 / 4)
    assert metrics["text_retrieval_recall@2"] == pytest.approx(1.0)
    # k beyond the number of images is clamped: every text then finds its image
    assert (
        retrieval_recalls(torch.eye(4), SCORES, TEXT_IMAGE, ks=(10,))["image_retrieval_recall@10"]
        == 1.0
    )


def clip_benchmark_recall(scores, positive_pairs, k):
    """CLIP_benchmark's recall_at_k on the full matrix, as the reference."""
    top = torch.topk(scores, k, dim=1).indices
    onehot = F.one_hot(top, num_classes=scores.shape[1])
    true_positive = (onehot * positive_pairs[:, None, :]).sum(dim=(1, 2))
    return ((true_positive / positive_pairs.sum(dim=1)) > 0).double().mean().item()


def test_blocked_equals_full_and_clip_benchmark():
    generator = torch.Generator().manual_seed(0)
    images = F.normalize(torch.randn(37, 16, generator=generator), dim=-1)
    owners = torch.arange(37).repeat_interleave(torch.randint(1, 4, (37,), generator=generator))
    texts = F.normalize(
        images[owners] + 0.8 * torch.randn(len(owners), 16, generator=generator), dim=-1
    )
    full = retrieval_recalls(images, texts, owners, ks=(1, 5, 10), block_size=10_000)
    for block in (1, 7, 32):
        assert retrieval_recalls(images, texts, owners, ks=(1, 5, 10), block_size=block) == full
    positive = torch.zeros(len(owners), 37, dtype=torch.long)
    positive[torch.arange(len(owners)), owners] = 1
    scores = texts @ images.T
    for k in (1, 5, 10):
        assert full[f"image_retrieval_recall@{k}"] == pytest.approx(
            clip_benchmark_recall(scores, positive, k)
        )
        assert full[f"text_retrieval_recall@{k}"] == pytest.approx(
            clip_benchmark_recall(scores.T, positive.T, k)
        )
    assert 0 < full["image_retrieval_recall@1"] < full["image_retrieval_recall@10"] < 1


def test_classification_metrics_hand_computed():
    logits = torch.tensor(
        [
            [5.0, 1, 0, 0, 0, 0],  # target 0: rank 1
            [3.0, 2, 1, 0, -1, -2],  # target 1: rank 2
            [6.0, 5, 4, 3, 2, 1],  # target 5: rank 6
            [0.0, 0, 9, 0, 0, 0],  # target 2: rank 1
            [1.0, 7, 0, 0, 0, 0],
        ]
    )  # target 0: rank 2
    targets = torch.tensor([0, 1, 5, 2, 0])
    metrics = classification_metrics(logits, targets)
    assert metrics["acc1"] == pytest.approx(2 / 5)
    assert metrics["acc5"] == pytest.approx(4 / 5)
    # recall per present class: 0 → 1/2, 1 → 0, 5 → 0, 2 → 1; classes 3, 4 are absent
    assert metrics["mean_per_class_recall"] == pytest.approx((0.5 + 0 + 0 + 1) / 4)
    # fewer than 5 classes: acc5 is NaN, as in CLIP_benchmark
    # (predictions on the first 3 columns: 0, 0, 0, 2, 1; only sample 1 is wrong)
    three = classification_metrics(logits[:, :3], torch.tensor([0, 1, 0, 2, 1]))
    assert math.isnan(three["acc5"]) and three["acc1"] == pytest.approx(4 / 5)
    assert mean_per_class_recall(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1])) == 0.75


def test_modality_gap():
    images = torch.tensor([[1.0, 0], [1.0, 0]])
    texts = torch.tensor([[0.0, 1], [0.0, 1]])
    assert modality_gap(images, texts) == pytest.approx(math.sqrt(2))


# --- templates and class folders -------------------------------------------------------------


def test_templates(tmp_path):
    defaults = load_templates()
    assert "a photo of a {c}." in defaults and "an emoji of a {c}." in defaults
    assert all("{c}" in t for t in defaults)
    bad = tmp_path / "bad.txt"
    bad.write_text("a photo of a {c}.\na photo of something\n")
    with pytest.raises(ValueError, match="bad.txt"):
        load_templates(bad)


def make_class_folder(root, per_class=3):
    """3 classes of drawn shapes: red_circle, blue_square, green_triangle."""
    for color, shape in (("red", "circle"), ("blue", "square"), ("green", "triangle")):
        folder = root / f"{color}_{shape}"
        folder.mkdir(parents=True)
        for index in range(per_class):
            draw(color, shape, jitter=index).save(folder / f"{index}.png")
    (root / "red_circle" / "notes.txt").write_text("not an image")
    return root


def test_class_folder_source(tmp_path):
    source = ClassFolderSource(make_class_folder(tmp_path / "shapes"))
    assert source.class_names() == ["blue square", "green triangle", "red circle"]
    assert len(source) == 9
    record = source[0]
    assert record.key == "blue_square/0.png" and record.metadata["label"] == 0
    assert record.captions == ("blue square",)
    from clipforge.evaluation.runner import open_classification_data, open_data

    for opener in (open_data, open_classification_data):
        assert len(opener(f"classfolder:{tmp_path / 'shapes'}")) == 9
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "x.png")
    with pytest.raises(ValueError, match="no class sub-folders"):
        ClassFolderSource(tmp_path / "flat")


# --- a micro model, end to end ---------------------------------------------------------------


@pytest.fixture(scope="module")
def micro_model_dir(tmp_path_factory):
    torch.manual_seed(0)
    captions = [
        f"a {adjective} {color} {shape}"
        for adjective in ("photo", "drawing", "emoji")
        for color in ("red", "blue", "green", "yellow")
        for shape in SHAPES
    ]
    tokenizer = Tokenizer.train(captions, vocab_size=300, context_length=16, min_frequency=1)
    config = micro_config(tokenizer, context_length=16)
    model = CLIP(config)
    model.init_weights()
    return save_model_dir(tmp_path_factory.mktemp("model"), model, tokenizer)


def expected_zeroshot_acc1(model_dir, folder, templates):
    """The same number computed directly: embed each image and each class's prompts."""
    model, preprocess, tokenizer = clipforge.load(model_dir)
    source = ClassFolderSource(folder)
    with torch.no_grad():
        weights = []
        for name in source.class_names():
            prompts = tokenizer([t.replace("{c}", name) for t in templates])
            weights.append(
                F.normalize(model.encode_text(prompts, normalize=True).mean(dim=0), dim=0)
            )
        images = torch.stack(
            [preprocess(Image.open(path).convert("RGB")) for path, _ in source.items]
        )
        predictions = (model.encode_image(images, normalize=True) @ torch.stack(weights).T).argmax(
            dim=1
        )
    labels = torch.tensor([label for _, label in source.items])
    return (predictions == labels).double().mean().item()


def run_cli(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_zeroshot_end_to_end(micro_model_dir, tmp_path, capsys):
    folder = make_class_folder(tmp_path / "shapes")
    out_json = tmp_path / "zs.json"
    code, out, _ = run_cli(
        [
            "eval",
            "zeroshot",
            "--model",
            str(micro_model_dir),
            "--data",
            str(folder),
            "--json",
            str(out_json),
            "--workers",
            "0",
            "--no-progress",
            "--batch-size",
            "4",
        ],
        capsys,
    )
    assert code == 0
    result = json.loads(out_json.read_text())
    assert {"task", "model", "dataset", "metrics", "num_samples", "skipped"} <= set(result)
    assert result["task"] == "zeroshot_classification" and result["dataset"] == str(folder)
    assert result["num_samples"] == 9 and result["num_classes"] == 3 and result["skipped"] == []
    assert result["num_templates"] == len(load_templates())
    assert set(result["metrics"]) == {"acc1", "acc5", "mean_per_class_recall"}
    assert result["metrics"]["acc5"] is None  # 3 classes: NaN, written as null
    assert result["metrics"]["acc1"] == pytest.approx(
        expected_zeroshot_acc1(micro_model_dir, folder, load_templates()), abs=1e-9
    )
    assert "acc1" in out and f"{100 * result['metrics']['acc1']:.2f}" in out

    templates = tmp_path / "two.txt"
    templates.write_text("# mine\na photo of a {c}.\n\nan emoji of a {c}.\n")
    code, _, _ = run_cli(
        [
            "eval",
            "zeroshot",
            "--model",
            str(micro_model_dir),
            "--data",
            str(folder),
            "--templates",
            str(templates),
            "--json",
            str(out_json),
            "--workers",
            "0",
            "--no-progress",
        ],
        capsys,
    )
    result = json.loads(out_json.read_text())
    assert code == 0 and result["num_templates"] == 2
    assert result["templates"] == ["a photo of a {c}.", "an emoji of a {c}."]
    assert result["metrics"]["acc1"] == pytest.approx(
        expected_zeroshot_acc1(micro_model_dir, folder, result["templates"]), abs=1e-9
    )


def test_cli_retrieval_end_to_end(micro_model_dir, tmp_path, capsys, monkeypatch):
    # any registered spec works; the shapes source stands in so the test needs no other reader
    import clipforge.evaluation.runner as runner

    monkeypatch.setattr(runner, "open_source", lambda spec: ShapesSource(12, bad_keys={5}))
    out_json = tmp_path / "ret.json"
    code, out, _ = run_cli(
        [
            "eval",
            "retrieval",
            "--model",
            str(micro_model_dir),
            "--data",
            "builtin:shapes",
            "--json",
            str(out_json),
            "--workers",
            "0",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0
    result = json.loads(out_json.read_text())
    assert result["task"] == "zeroshot_retrieval" and result["num_samples"] == 11
    assert result["num_texts"] == 22  # two captions per record
    assert [s["key"] for s in result["skipped"]] == ["shape-5"]
    metrics = result["metrics"]
    for direction in ("image", "text"):
        values = [metrics[f"{direction}_retrieval_recall@{k}"] for k in (1, 5, 10)]
        assert 0 <= values[0] <= values[1] <= values[2] <= 1
    assert metrics["modality_gap"] > 0
    assert "image_retrieval_recall@1" in out and "skipped 1 records" in out


@pytest.mark.parametrize("case", ["missing", "flat", "templates"])
def test_cli_bad_inputs(case, micro_model_dir, tmp_path, capsys):
    data, extra = tmp_path / "nowhere", []
    if case == "flat":
        data.mkdir()
        Image.new("RGB", (8, 8)).save(data / "lonely.png")
    if case == "templates":
        data = make_class_folder(tmp_path / "shapes")
        extra = ["--templates", str(tmp_path / "plain.txt")]
        (tmp_path / "plain.txt").write_text("a photo of a thing\n")
    code, _, err = run_cli(
        [
            "eval",
            "zeroshot",
            "--model",
            str(micro_model_dir),
            "--data",
            str(data),
            "--workers",
            "0",
            "--no-progress",
            *extra,
        ],
        capsys,
    )
    assert code == 2
    named = str(tmp_path / "plain.txt") if case == "templates" else str(data)
    assert named in err and err.startswith("clipforge eval: error:")


def test_library_api_and_evaluate(micro_model_dir):
    model, preprocess, tokenizer = clipforge.load(micro_model_dir)
    source = ShapesSource(16, seed=1, bad_keys={2})
    zeroshot = zeroshot_classification(
        model, preprocess, tokenizer, source, ZeroShotConfig(encode=QUIET)
    )
    ranked = retrieval(model, preprocess, tokenizer, source, RetrievalConfig(encode=QUIET))
    flat = evaluate(model, preprocess, tokenizer, source, QUIET)
    assert flat == pytest.approx({**zeroshot["metrics"], **ranked["metrics"]}, nan_ok=True)
    assert zeroshot["num_samples"] == ranked["num_samples"] == 15
    # blocked classification scoring gives the same numbers
    tiny_blocks = zeroshot_classification(
        model, preprocess, tokenizer, source, ZeroShotConfig(block_size=3, encode=QUIET)
    )
    assert tiny_blocks["metrics"] == pytest.approx(zeroshot["metrics"], nan_ok=True)
    assert not model.training
    assert set(EVALUATORS.names()) == {
        "geometry",
        "grounding",
        "linear-probe",
        "retrieval",
        "robustness",
        "zeroshot",
    }
    assert "mean_per_class_recall" in format_result({**zeroshot, "model": "m", "dataset": "d"})


def test_stream_source_matches_map_source(micro_model_dir):
    from clipforge.data.sources.base import StreamSource

    shapes = ShapesSource(10, seed=2)

    class Stream(StreamSource):
        def __iter__(self):
            return (shapes[index] for index in range(len(shapes)))

    model, preprocess, tokenizer = clipforge.load(micro_model_dir)
    streamed = retrieval(model, preprocess, tokenizer, Stream(), RetrievalConfig(encode=QUIET))
    mapped = retrieval(model, preprocess, tokenizer, shapes, RetrievalConfig(encode=QUIET))
    assert streamed == mapped and streamed["num_texts"] == 20
    with pytest.raises(ValueError, match="no class names"):
        zeroshot_classification(
            model, preprocess, tokenizer, Stream(), ZeroShotConfig(encode=QUIET)
        )


def test_builtin_emoji_if_available(micro_model_dir):
    from clipforge.data.sources import open_source

    try:
        source = open_source("builtin:emoji?split=val")
        names = source.class_names()
    except (NotImplementedError, FileNotFoundError, ValueError) as error:
        pytest.skip(f"builtin:emoji not available: {error}")
    if not names:
        pytest.skip("builtin:emoji has no class names")
    from clipforge.data.sources.base import MapSource

    class Handful(MapSource):
        """Twelve records spread over the split, with the split's class names."""

        def __len__(self):
            return 12

        def __getitem__(self, index):
            return source[index * (len(source) // 12)]

        def class_names(self):
            return names

    model, preprocess, tokenizer = clipforge.load(micro_model_dir)
    result = zeroshot_classification(
        model,
        preprocess,
        tokenizer,
        Handful(),
        ZeroShotConfig(templates=("an emoji of a {c}.",), encode=QUIET),
    )
    assert result["num_samples"] + len(result["skipped"]) == 12
    assert 0 <= result["metrics"]["acc1"] <= 1
