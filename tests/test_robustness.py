"""``clipforge eval robustness``: attacks that must hurt a trained micro model inside ε, a
universal perturbation that transfers across splits, SGA transfer from a surrogate, view
consistency on hand cases, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from robust_models import COLOURS, QUIET, ColourShapes, train_micro

import clipforge
from clipforge.cli.main import main
from clipforge.evaluation import EVALUATORS
from clipforge.evaluation.embedding import frozen
from clipforge.evaluation.robustness import RobustnessConfig, parse_eps, pgd, robustness
from clipforge.evaluation.robustness.pgd import zeroshot_loss
from clipforge.evaluation.robustness.pixels import PixelEncoder, PixelReader
from clipforge.evaluation.robustness.uap import save_perturbation
from clipforge.evaluation.robustness.views import ViewScores
from clipforge.evaluation.zeroshot import build_classifier
from clipforge.models.io import save_model_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model, tokenizer = train_micro(0)
    directory = save_model_dir(tmp_path_factory.mktemp("target"), model, tokenizer)
    templates = tmp_path_factory.mktemp("templates") / "templates.txt"
    templates.write_text("a {c} circle\na {c} square\na {c} triangle\n")
    yield directory, templates
    torch.set_num_threads(threads)


def run(directory, templates, source, **options):
    model, preprocess, tokenizer = clipforge.load(directory)
    config = RobustnessConfig(templates_file=templates, encode=QUIET, **options)
    return robustness(model, preprocess, tokenizer, source, config)


def test_parse_eps_and_config_checks():
    assert parse_eps("4/255") == pytest.approx(4 / 255)
    assert parse_eps("0.03") == pytest.approx(0.03)
    for bad in ("0", "-1/255", "300/255", "4/0", "four/255", "1/2/3", ""):
        with pytest.raises(ValueError, match="eps"):
            parse_eps(bad)
    assert RobustnessConfig().eps == pytest.approx((4 / 255,))
    assert RobustnessConfig(eps=("1/255", 0.5)).eps == pytest.approx((1 / 255, 0.5))
    with pytest.raises(ValueError, match="unknown attack 'fgsm'; known: pgd, uap, sga, views"):
        RobustnessConfig(attack="fgsm")
    with pytest.raises(ValueError, match="eps 1.5"):
        RobustnessConfig(eps=(1.5,))
    with pytest.raises(ValueError, match="unknown views"):
        RobustnessConfig(attack="views", views=("zoom",))


def test_pgd_stays_in_the_ball_and_lowers_accuracy(trained):
    directory, templates = trained
    model, preprocess, tokenizer = clipforge.load(directory)
    source = ColourShapes(48, seed=7)
    classifier = build_classifier(
        model, tokenizer, list(COLOURS), templates.read_text().split("\n")[:3], QUIET
    )
    batch = next(PixelReader.for_model(preprocess, QUIET).batches(source, "cpu"))
    labels = torch.tensor(batch.labels)
    encoder = PixelEncoder(model, preprocess)
    eps = 16 / 255  # colours 190+ grey levels apart: the micro model needs more than 8/255
    noise = torch.randint(0, 2, batch.pixels.shape, generator=torch.Generator().manual_seed(0))
    noisy = (batch.pixels + (2 * noise - 1) * eps).clamp(0, 1)
    with frozen(model):
        adversarial = pgd(
            zeroshot_loss(encoder, classifier, labels), batch.pixels, eps, eps / 4, 10
        )
        clean = (encoder(batch.pixels) @ classifier.T).argmax(-1)
        attacked = (encoder(adversarial) @ classifier.T).argmax(-1)
        by_noise = (encoder(noisy) @ classifier.T).argmax(-1)
    assert (adversarial - batch.pixels).abs().max() <= eps + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert all(p.requires_grad for p in model.parameters())  # frozen() restored them
    clean_acc = (clean == labels).float().mean().item()
    adv_acc = (attacked == labels).float().mean().item()
    assert clean_acc >= 0.9, clean_acc  # the model learnt colours
    assert (by_noise == labels).float().mean() >= 0.9  # random noise of the same ε: harmless
    assert adv_acc <= clean_acc - 0.25, (clean_acc, adv_acc)


def test_robustness_pgd_result_keys_and_sweep(trained, tmp_path):
    directory, templates = trained
    result = run(
        directory,
        templates,
        ColourShapes(24, seed=8),
        eps=("1/255", "16/255"),
        steps=5,
        plot=tmp_path / "sweep.png",
    )
    metrics = result["metrics"]
    for key in (
        "clean_acc1",
        "adv_acc1",
        "clean_image_retrieval_recall@1",
        "adv_image_retrieval_recall@1",
        "clean_text_retrieval_recall@1",
        "adv_text_retrieval_recall@1",
        "adv_acc1@eps=1/255",
        "adv_acc1@eps=16/255",
    ):
        assert key in metrics, key
    assert metrics["adv_acc1"] == metrics["adv_acc1@eps=16/255"]  # headline: the largest ε
    assert metrics["adv_acc1"] < metrics["clean_acc1"]
    assert metrics["adv_text_retrieval_recall@1"] < metrics["clean_text_retrieval_recall@1"]
    assert metrics["adv_acc1@eps=16/255"] <= metrics["adv_acc1@eps=1/255"]
    assert 0 < result["max_linf"] <= 16 / 255 + 1e-6
    assert result["attacked_tasks"] == ["zeroshot", "retrieval"]
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_universal_perturbation_transfers_across_splits(trained, tmp_path):
    """δ trained on split A lowers accuracy on split B more than random ±ε noise does."""
    directory, templates = trained
    train, test = ColourShapes(48, seed=11), ColourShapes(48, seed=12)
    eps = 32 / 255
    import clipforge.evaluation.robustness.perturbers as perturbers

    opened = {}
    original = perturbers.UAPPerturber._train

    def train_on_a(self, preprocess, size):
        opened["train"] = True
        import clipforge.evaluation.robustness.task as task

        real_open = task.open_robustness_data
        task.open_robustness_data = lambda spec: train
        try:
            return original(self, preprocess, size)
        finally:
            task.open_robustness_data = real_open

    perturbers.UAPPerturber._train = train_on_a
    try:
        universal = run(
            directory,
            templates,
            test,
            attack="uap",
            eps=(eps,),
            uap_data="split-a",
            uap_epochs=4,
            on="zeroshot",
            save_perturbation=tmp_path / "uap.pt",
        )
    finally:
        perturbers.UAPPerturber._train = original
    assert opened["train"] and (tmp_path / "uap.pt").is_file()
    saved = torch.load(tmp_path / "uap.pt", weights_only=True)
    assert saved["delta"].abs().max() <= eps + 1e-6 and saved["delta"].shape == (1, 3, 32, 32)
    noise = torch.randint(0, 2, (3, 32, 32), generator=torch.Generator().manual_seed(0)) * 2 - 1
    save_perturbation(tmp_path / "noise.pt", {eps: noise.float() * eps}, {})
    random_noise = run(
        directory,
        templates,
        test,
        attack="uap",
        eps=(eps,),
        on="zeroshot",
        perturbation=tmp_path / "noise.pt",
    )
    # the saved δ, tested again from its file, gives the same number
    reloaded = run(
        directory,
        templates,
        test,
        attack="uap",
        eps=(eps,),
        on="zeroshot",
        perturbation=tmp_path / "uap.pt",
    )
    clean = universal["metrics"]["clean_acc1"]
    assert reloaded["metrics"]["adv_acc1"] == universal["metrics"]["adv_acc1"]
    assert universal["metrics"]["adv_acc1"] < random_noise["metrics"]["adv_acc1"] - 0.2, (
        clean,
        universal["metrics"]["adv_acc1"],
        random_noise["metrics"]["adv_acc1"],
    )
    assert universal["max_linf"] <= eps + 1e-6


def test_sga_transfers_from_a_surrogate(trained, tmp_path):
    """The surrogate is the trained model; the target, that model fine-tuned on with another
    data order (different weights, shared ancestry: the transfer setting SGA studies)."""
    directory, templates = trained
    target_model, tokenizer = train_micro(5, 150, start=clipforge.load(directory)[0])
    target = save_model_dir(tmp_path / "target", target_model, tokenizer)
    result = run(
        target,
        templates,
        ColourShapes(32, seed=13),
        attack="sga",
        surrogate=str(directory),
        eps=(32 / 255,),
        on="zeroshot",
    )
    metrics = result["metrics"]
    assert metrics["clean_acc1"] >= 0.9
    assert metrics["adv_acc1"] <= metrics["clean_acc1"] - 0.2, metrics
    assert result["max_linf"] <= 32 / 255 + 1e-6
    assert result["surrogate"] == str(directory)


def test_views_identity_is_fully_consistent(trained):
    directory, _ = trained
    model, preprocess, _ = clipforge.load(directory)
    encoder = PixelEncoder(model, preprocess)
    batch = next(PixelReader.for_model(preprocess, QUIET).batches(ColourShapes(8, seed=3), "cpu"))
    classifier = F.normalize(torch.randn(3, 32), dim=-1)
    scores = ViewScores({"identity": lambda pixels: pixels, "same": lambda pixels: pixels.clone()})
    scores.add(encoder, batch.pixels, classifier, torch.tensor(batch.labels))
    metrics = scores.metrics()
    assert metrics["views_consistency"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["views_prediction_agreement"] == 1.0
    # a view that maps every image to white agrees with nothing but its own colour
    blank = ViewScores({"white": torch.ones_like})
    blank.add(encoder, batch.pixels, classifier, torch.tensor(batch.labels))
    assert blank.metrics()["views_consistency"] < 0.999


def test_views_on_the_trained_model(trained):
    directory, templates = trained
    result = run(directory, templates, ColourShapes(16, seed=4), attack="views")
    metrics = result["metrics"]
    assert metrics["clean_acc1"] >= 0.9
    assert 0 < metrics["views_consistency"] <= 1 + 1e-6
    assert metrics["views_consistency_flip"] > 0.9  # colour survives a flip
    for view in ("rotation", "perspective", "crop", "flip", "colour"):
        assert 0 <= metrics[f"views_prediction_agreement_{view}"] <= 1


def test_cli_robustness_json_and_registry(trained, tmp_path, capsys, monkeypatch):
    directory, templates = trained
    import clipforge.evaluation.runner as runner

    assert "robustness" in EVALUATORS
    monkeypatch.setattr(runner, "open_source", lambda spec: ColourShapes(12, seed=5))
    out = tmp_path / "rob.json"
    code = main(
        [
            "eval",
            "robustness",
            "--model",
            str(directory),
            "--data",
            "folder:x",
            "--templates",
            str(templates),
            "--eps",
            "8/255",
            "--steps",
            "3",
            "--workers",
            "0",
            "--no-progress",
            "--json",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    result = json.loads(out.read_text())
    assert result["task"] == "robustness" and result["attack"] == "pgd"
    assert {"clean_acc1", "adv_acc1", "adv_image_retrieval_recall@1"} <= set(result["metrics"])
    assert "adv_acc1" in printed


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--attack", "fgsm"], "argument --attack: invalid choice: 'fgsm'"),
        (["--eps", "0"], "eps '0': must lie in (0, 1]"),
        (["--eps", "2"], "eps '2': must lie in (0, 1]"),
        (["--eps", "4/zero"], "eps '4/zero': expected a number or a fraction"),
        (["--attack", "sga"], "--attack sga needs --surrogate"),
        (["--attack", "uap", "--uap-data", "", "--data", "x"], "--attack uap needs --uap-data"),
    ],
)
def test_cli_bad_input_is_one_line(flags, message, trained, capsys):
    directory, _ = trained
    argv = ["eval", "robustness", "--model", str(directory), "--data", "builtin:emoji?split=val"]
    try:
        code = main(argv + flags)
    except SystemExit as exit_:  # argparse's own errors (an unknown --attack choice)
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_benchmark_runner_runs_robustness(trained, tmp_path, monkeypatch):
    """A suite entry ``task: robustness`` with options: one CLIP_benchmark-layout JSON + CSV row."""
    import clipforge.evaluation.runner as runner
    from clipforge.evaluation.benchmark import BenchmarkConfig, run_benchmark
    from clipforge.evaluation.suite_file import SuiteEntry

    directory, templates = trained
    monkeypatch.setattr(runner, "open_source", lambda spec: ColourShapes(8, seed=6))
    entry = SuiteEntry(
        "robustness",
        "folder:x",
        name="shapes",
        options={"eps": ["16/255"], "steps": 2, "on": "zeroshot", "templates_file": str(templates)},
    )
    summary = run_benchmark(
        BenchmarkConfig(models=(str(directory),), suite=(entry,), out=tmp_path, encode=QUIET),
        log=lambda line: None,
    )
    (written,) = summary.written
    result = json.loads(written.read_text())
    assert result["task"] == "robustness" and result["dataset"] == "shapes"
    assert {"clean_acc1", "adv_acc1"} <= set(result["metrics"])
    assert result["eps"] == [pytest.approx(16 / 255)]
    assert "adv_acc1" in summary.csv.read_text().splitlines()[0]


def test_uap_trains_on_the_train_split_by_default():
    from clipforge.evaluation.robustness.flags import default_uap_data

    assert default_uap_data("builtin:emoji?split=val") == "builtin:emoji?split=train"
    assert (
        default_uap_data("clip_benchmark:/d?split=test&x=1") == "clip_benchmark:/d?split=train&x=1"
    )
    assert default_uap_data("builtin:emoji?split=train") is None  # never test on the train split
    assert default_uap_data("/data/folder") is None


def test_limit_spreads_over_a_sorted_data_set():
    from clipforge.evaluation.robustness.pixels import spread

    assert spread(10, 5) == [0, 2, 4, 6, 8]
    assert spread(3, 5) == [0, 1, 2] and spread(4, None) == [0, 1, 2, 3]
    assert len(set(spread(564, 128))) == 128
