"""``clipforge eval linear-probe``: the logistic fit and CLIP_benchmark's λ search on constructed
features, few-shot sampling, the feature cache, and the command end to end on a micro model."""

from __future__ import annotations

import json

import pytest
import torch
from test_evaluation import make_class_folder, micro_model_dir, one_thread  # noqa: F401

import clipforge.evaluation.feature_cache as feature_cache
import clipforge.evaluation.logistic as logistic
from clipforge.cli.main import main
from clipforge.data.sources.base import MapSource
from clipforge.evaluation.linear_probe import train_spec_for
from clipforge.evaluation.logistic import (
    L2_GRID,
    fit_logistic,
    k_shot_indices,
    stratified_split,
    sweep_l2,
    top1_accuracy,
)


def separable(count, seed, classes=4, dim=12):
    """Class c sits at 3·e_c plus noise of std 0.3: linearly separable with a wide margin."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % classes
    features = 3 * torch.eye(dim)[labels] + 0.3 * torch.randn(count, dim, generator=generator)
    return features, labels


def test_separable_features_probe_is_perfect():
    train, val, test = separable(80, 0), separable(40, 1), separable(200, 2)
    sweep = sweep_l2(train, val, 4, max_iter=100)
    classifier = fit_logistic(*train, 4, sweep.l2, max_iter=100)
    assert top1_accuracy(classifier, *test) == 1.0
    assert classifier.weight.shape == (12, 4) and classifier.bias.shape == (4,)


def shortcut_data(count, seed, shortcut_in_labels):
    """Feature 0: the real signal (class means ±1, std 1: ~84 % separable). Feature 1: ±0.05, in
    training equal to the label's sign (it separates the training set perfectly), elsewhere a coin
    flip. A weakly regularised probe leans on the tiny shortcut with a huge weight; a strongly
    regularised one cannot afford that weight and uses feature 0."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 2
    sign = 2.0 * labels - 1
    coin = torch.where(torch.rand(count, generator=generator) < 0.5, 1.0, -1.0)
    features = torch.stack(
        [
            sign + torch.randn(count, generator=generator),
            0.05 * (sign if shortcut_in_labels else coin),
        ],
        dim=1,
    )
    return features, labels


def test_sweep_must_pick_a_strong_regulariser():
    train = shortcut_data(200, 1, shortcut_in_labels=True)
    val, test = shortcut_data(200, 2, False), shortcut_data(2000, 3, False)
    sweep = sweep_l2(train, val, 2, max_iter=100)
    weak = fit_logistic(*train, 2, L2_GRID[0], max_iter=100)
    chosen = fit_logistic(*train, 2, sweep.l2, max_iter=100)
    assert sweep.l2 >= 1e-3  # three orders of magnitude above the grid's weakest
    assert top1_accuracy(weak, *test) < 0.65 < 0.8 < top1_accuracy(chosen, *test)
    assert len({l2 for l2, _ in sweep.tried}) == len(sweep.tried)  # no grid point fitted twice


def clip_benchmark_find_peak(accuracy_of):
    """CLIP_benchmark's search (linear_probe.py: find_peak and its caller), transcribed as the
    oracle: accuracy_of(index) → validation accuracy; returns (best index, indices visited)."""
    visited = []

    def find_peak(idxs):
        best_wd_idx, max_acc = 0, 0
        for idx in idxs:
            visited.append(idx)
            acc1 = accuracy_of(idx)
            if max_acc < acc1:
                best_wd_idx, max_acc = idx, acc1
        return best_wd_idx

    wd_list = list(range(97))
    wd_init_idx = [i for i in wd_list if i % 16 == 0]
    peak_idx = find_peak(wd_init_idx)
    step_span = 8
    while step_span > 0:
        left, right = max(peak_idx - step_span, 0), min(peak_idx + step_span, len(wd_list) - 1)
        peak_idx = find_peak([left, peak_idx, right])
        step_span //= 2
    return peak_idx, visited


@pytest.mark.parametrize("peak", [0, 5, 37, 50, 96])
def test_sweep_searches_the_grid_like_clip_benchmark(peak, monkeypatch):
    def accuracy_of(index):  # a unimodal validation curve with plateaus
        return 1.0 - min(abs(index - peak), 20) / 40

    index_of = {l2: index for index, l2 in enumerate(L2_GRID)}
    monkeypatch.setattr(logistic, "fit_logistic", lambda *args: args[3])  # "classifier" = λ
    monkeypatch.setattr(logistic, "top1_accuracy", lambda l2, *val: accuracy_of(index_of[l2]))
    dummy = (torch.zeros(1, 1), torch.zeros(1, dtype=torch.long))
    result = sweep_l2(dummy, dummy, 2)
    best, visited = clip_benchmark_find_peak(accuracy_of)
    assert result.l2 == L2_GRID[best] == L2_GRID[peak]
    assert [index_of[l2] for l2, _ in result.tried] == list(dict.fromkeys(visited))
    assert len(L2_GRID) == 97 and L2_GRID[0] == pytest.approx(1e-6) and L2_GRID[-1] == 100


def test_k_shot_picks_exactly_k_per_class():
    labels = torch.tensor([0] * 7 + [1] * 4 + [2] * 9 + [3] * 5)[torch.randperm(25)]
    rows = k_shot_indices(labels, 4, 4, seed=0)
    assert len(rows) == len(set(rows.tolist())) == 16
    assert torch.bincount(labels[rows], minlength=4).tolist() == [4, 4, 4, 4]
    assert torch.equal(rows, k_shot_indices(labels, 4, 4, seed=0))  # the seed fixes the draw
    draws = {tuple(k_shot_indices(labels, 4, 4, seed=seed).tolist()) for seed in range(5)}
    assert len(draws) > 1
    with pytest.raises(ValueError, match=r"fewer than 5 .*: b \(4\)"):
        k_shot_indices(labels, 5, 4, seed=0, class_names=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="--k-shot must be ≥ 1"):
        k_shot_indices(labels, 0, 4, seed=0)


def test_stratified_split_holds_out_each_class():
    labels = torch.tensor([0] * 10 + [1] * 20 + [2] * 1)
    train, val = stratified_split(labels, 0.2, seed=3)
    assert sorted(train.tolist() + val.tolist()) == list(range(31))
    assert torch.bincount(labels[val], minlength=3).tolist() == [2, 4, 0]  # lone sample stays
    assert torch.equal(val, stratified_split(labels, 0.2, seed=3)[1])


def test_train_spec_for():
    assert train_spec_for("builtin:emoji?split=val") == "builtin:emoji?split=train"
    with pytest.raises(ValueError, match="--train"):
        train_spec_for("path/to/folder")


def run_probe(model_dir, train, test, tmp_path, *extra):
    out_json = tmp_path / "lp.json"
    code = main(
        ["eval", "linear-probe", "--model", str(model_dir), "--train", str(train)]
        + ["--test", str(test), "--json", str(out_json), "--cache-dir", str(tmp_path / "cache")]
        + ["--workers", "0", "--no-progress", *extra]
    )
    return code, json.loads(out_json.read_text()) if code == 0 else None


def test_cli_end_to_end_with_feature_cache(micro_model_dir, tmp_path, capsys, monkeypatch):  # noqa: F811
    train = make_class_folder(tmp_path / "train", per_class=6)
    test = make_class_folder(tmp_path / "test", per_class=2)
    code, first = run_probe(micro_model_dir, train, test, tmp_path, "--val-proportion", "0.34")
    out = capsys.readouterr().out
    assert code == 0 and first["task"] == "linear_probe" and first["dataset"] == str(test)
    assert set(first["metrics"]) == {"lp_acc1", "lp_acc5", "lp_mean_per_class_recall"}
    assert first["metrics"]["lp_acc5"] is None  # 3 classes
    assert first["num_samples"] == 6 and first["num_classes"] == 3
    assert first["num_val"] == 6 and first["num_train"] == 18  # refit on train + val
    assert first["features_cached"] == {"train": False, "test": False}
    assert first["l2_regularization"] in [entry["l2"] for entry in first["sweep"]]
    assert "lp_acc1" in out and f"{100 * first['metrics']['lp_acc1']:.2f}" in out
    cached = list((tmp_path / "cache").glob("*/*.pt"))
    assert len(cached) == 2

    def no_encoding(*args, **kwargs):
        raise AssertionError("features were encoded again")

    monkeypatch.setattr(feature_cache, "encode_images", no_encoding)
    code, again = run_probe(micro_model_dir, train, test, tmp_path, "--val-proportion", "0.34")
    assert code == 0 and again["features_cached"] == {"train": True, "test": True}
    assert again["metrics"] == first["metrics"] and again["sweep"] == first["sweep"]

    code, few = run_probe(micro_model_dir, train, test, tmp_path, "--k-shot", "2", "--l2", "0.01")
    assert code == 0 and few["num_train"] == 6 and few["k_shot"] == 2 and few["sweep"] == []
    assert few["l2_regularization"] == 0.01 and few["num_val"] == 0

    monkeypatch.undo()  # a new data set must be encoded
    val = make_class_folder(tmp_path / "val", per_class=1)
    code, with_val = run_probe(micro_model_dir, train, test, tmp_path, "--val", str(val))
    assert code == 0 and with_val["val_dataset"] == str(val) and with_val["num_val"] == 3
    assert with_val["num_train"] == 21  # all 18 training images + the 3 validation ones
    assert with_val["features_cached"] == {"train": True, "val": False, "test": True}


@pytest.mark.parametrize("case", ["unknown", "k-shot-0", "no-classes", "too-few", "empty-val"])
def test_cli_bad_input(case, micro_model_dir, tmp_path, capsys, monkeypatch):  # noqa: F811
    folder = make_class_folder(tmp_path / "shapes", per_class=2)
    train, test, extra, named = folder, folder, [], None
    if case == "unknown":
        test = named = "builtin:nope"
    if case == "k-shot-0":
        extra, named = ["--k-shot", "0"], "--k-shot"
    if case == "no-classes":
        pairs = tmp_path / "pairs.csv"
        pairs.write_text("image,caption\nshapes/red_circle/0.png,a red circle\n")
        train = named = f"csv:{pairs}"
    if case == "too-few":
        extra, named = ["--k-shot", "3", "--l2", "1"], "fewer than 3"
    if case == "empty-val":  # 2 per class: 10 % of 2 rounds to none held out
        named = "--val-proportion 0.1 holds out no image"
    code, _ = run_probe(micro_model_dir, train, test, tmp_path, *extra)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("clipforge eval: error:") and named in err, err
    assert err.count("\n") == 1


class Handful(MapSource):
    """The first ``count`` records of a source, with its class names (built-in data, fast)."""

    def __init__(self, source, count=40):
        self.source, self.count = source, count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return self.source[index]

    def class_names(self):
        return self.source.class_names()


def test_both_commands_on_builtin_emoji(micro_model_dir, tmp_path, capsys, monkeypatch):  # noqa: F811
    import clipforge.evaluation.runner as runner

    real_open = runner.open_source
    monkeypatch.setattr(runner, "open_source", lambda spec: Handful(real_open(spec)))
    train, test = "builtin:emoji?split=train", "builtin:emoji?split=val"
    code, result = run_probe(micro_model_dir, train, test, tmp_path, "--val-proportion", "0.3")
    assert code == 0, capsys.readouterr().err
    assert result["num_classes"] == 99 and result["num_samples"] == 40
    assert result["num_train"] == 40 and 0 < result["num_val"] < 40  # refit on train + val
    assert 0 <= result["metrics"]["lp_acc1"] <= result["metrics"]["lp_acc5"] <= 1
    names = sorted(path.name for path in (tmp_path / "cache").glob("*/*.pt"))
    assert [name.rsplit("-", 1)[0] for name in names] == [
        "builtin_emoji_split=train",
        "builtin_emoji_split=val",
    ]

    plot, out_json = tmp_path / "gap.png", tmp_path / "geometry.json"
    code = main(
        ["eval", "geometry", "--model", str(micro_model_dir), "--data", test, "--plot", str(plot)]
        + ["--json", str(out_json), "--workers", "0", "--no-progress"]
    )
    geometry = json.loads(out_json.read_text())
    assert code == 0 and geometry["num_samples"] == 40 and geometry["num_texts"] >= 40
    assert plot.stat().st_size > 5000 and geometry["metrics"]["modality_gap"] > 0


def test_usable_from_an_evals_entry_and_the_registry(tmp_path):
    from clipforge.evaluation import EVALUATORS, LinearProbeConfig

    evaluator = EVALUATORS.get("linear-probe")
    config = evaluator.config_from_options(
        {"train": "builtin:emoji?split=train", "k_shot": 2, "cache_dir": str(tmp_path)}
    )
    assert isinstance(config, LinearProbeConfig) and config.cache_dir == tmp_path
    assert config.k_shot == 2 and evaluator.data_flag == "--test"
    for bad in ({"k_shot": 0}, {"val_proportion": 1.5}, {"l2": -1.0}):
        with pytest.raises(ValueError):
            evaluator.config_from_options(bad)
    with pytest.raises(ValueError, match="unknown options"):
        evaluator.config_from_options({"shots": 2})
