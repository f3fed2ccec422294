"""CLIP_benchmark compatibility: its wds_* layouts read, its result schema written, grids run.

Fixtures are written here in CLIP_benchmark's exact layout, the way ``clip_benchmark_export_wds``
writes them (``webdataset.ShardWriter`` to ``SPLIT/%d.tar``, keys ``s%07d``, ``nshards.txt``,
``classnames.txt``, ``zeroshot_classification_templates.txt``, ``dataset_type.txt`` and a
retrieval ``.txt`` of captions joined by ``\\n``). A constructed model (image → its mean RGB,
text → counts of the words red / green / blue) makes every metric computable by hand.
"""

from __future__ import annotations

import csv
import io
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from clipforge.cli.main import main
from clipforge.data.clip_benchmark_export import export_clip_benchmark
from clipforge.data.sources import SourceOptions, open_source
from clipforge.data.sources.classfolder import ClassFolderSource
from clipforge.data.sources.clip_benchmark import CLIPBenchmarkSource
from clipforge.data.tokenizer import Tokenizer
from clipforge.evaluation import (
    EncodeConfig,
    RetrievalConfig,
    ZeroShotConfig,
    retrieval,
    zeroshot_classification,
)
from clipforge.evaluation.aggregate import collect_rows
from clipforge.evaluation.runner import open_classification_data, open_data
from clipforge.evaluation.suite_file import DEFAULT_SUITE, load_suite
from clipforge.models import CLIP, model_config
from clipforge.models.io import save_model_dir

from synthetic import ShapesSource

QUIET = EncodeConfig(batch_size=4, workers=0, progress=False)
COLOURS = ("red", "green", "blue")

# (RGB, label): s3 is greener than red but labelled red, s5 greener than blue but labelled
# blue, so colour-argmax gets 4 of 6 right: red 2/3, green 1/1, blue 1/2.
CLASSIFIED = [
    ((255, 0, 0), 0),
    ((200, 100, 0), 0),
    ((0, 255, 0), 1),
    ((150, 200, 0), 0),
    ((0, 0, 255), 2),
    ((0, 120, 100), 2),
]
FORMATS = ("webp", "png", "webp", "jpg", "png", "webp")  # CLIP_benchmark reads all three
TEMPLATES = ["a photo of a {c}.", "a {c} thing."]

# 3 images × 2 captions. Text embeddings (word counts, normalised) and their true image:
#   t0 "red" (1,0,0)→i0   t1 "green green green blue" (0,.949,.316)→i0
#   t2 "green" (0,1,0)→i1   t3 "blue blue red" (.447,0,.894)→i1
#   t4 "red red blue" (.894,0,.447)→i2   t5 "green green blue" (0,.894,.447)→i2
# Images are pure red, green, blue, so a score is the text's component for that colour.
RETRIEVAL = [
    ((255, 0, 0), ["red", "green green green blue"]),
    ((0, 255, 0), ["green", "blue blue red"]),
    ((0, 0, 255), ["red red blue", "green green blue"]),
]
# text → image: the true image's rank for t0…t5 is 1, 3, 1, 3, 2, 2
# image → text: i0 ranks t0 first (hit@1); i1 ranks t2 first (hit@1); i2 ranks t3 (.894,
# image 1's) first, then its own t4 / t5 (.447): a hit only from k = 2
EXPECTED_RECALL = {
    "image_retrieval_recall@1": 2 / 6,
    "image_retrieval_recall@2": 4 / 6,
    "image_retrieval_recall@3": 1.0,
    "text_retrieval_recall@1": 2 / 3,
    "text_retrieval_recall@2": 1.0,
    "text_retrieval_recall@3": 1.0,
}


def encoded(rgb, fmt):
    buffer = io.BytesIO()
    options = {"lossless": True} if fmt == "webp" else {}
    Image.new("RGB", (8, 8), rgb).save(buffer, "JPEG" if fmt == "jpg" else fmt.upper(), **options)
    return buffer.getvalue()


def write_split(root, split, samples, maxcount=4):
    """``webdataset.ShardWriter`` as ``clip_benchmark_export_wds`` uses it, plus nshards.txt."""
    (root / split).mkdir(parents=True)
    sink = wds.ShardWriter(str(root / split / "%d.tar"), maxcount=maxcount, verbose=0)
    for sample in samples:
        sink.write(sample)
    shards = sink.shard
    sink.close()
    (root / split / "nshards.txt").write_text(f"{shards}\n")


def write_classification(root, templates=True):
    samples = [
        {"__key__": f"s{i:07d}", FORMATS[i]: encoded(rgb, FORMATS[i]), "cls": label}
        for i, (rgb, label) in enumerate(CLASSIFIED)
    ]
    write_split(root, "test", samples)
    (root / "classnames.txt").write_text("\n".join(COLOURS) + "\n")
    if templates:
        (root / "zeroshot_classification_templates.txt").write_text("\n".join(TEMPLATES) + "\n")
    return root


def write_retrieval(root):
    samples = [
        {"__key__": f"s{i:07d}", "webp": encoded(rgb, "webp"), "txt": "\n".join(captions)}
        for i, (rgb, captions) in enumerate(RETRIEVAL)
    ]
    write_split(root, "test", samples, maxcount=2)
    (root / "dataset_type.txt").write_text("retrieval\n")
    return root


class ColourModel(torch.nn.Module):
    """Image → its mean RGB (the preprocess does it); text → the counts of colour words."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(embed_dim=3)

    def encode_image(self, images, normalize=True):
        return images

    def encode_text(self, counts, normalize=True):
        return counts.float()


def colour_preprocess(image):
    return torch.tensor(np.asarray(image.convert("RGB")), dtype=torch.float32).mean(dim=(0, 1))


def colour_tokenizer(texts):
    words = [re.findall(r"[a-z]+", text.lower()) for text in texts]
    return torch.tensor([[w.count(colour) for colour in COLOURS] for w in words])


def zeroshot(source, config=None):
    config = config or ZeroShotConfig(encode=QUIET)
    return zeroshot_classification(
        ColourModel(), colour_preprocess, colour_tokenizer, source, config
    )


def test_wds_classification_zero_shot_hand_computed(tmp_path):
    root = write_classification(tmp_path / "wds_colours")
    assert sorted(p.name for p in (root / "test").iterdir()) == ["0.tar", "1.tar", "nshards.txt"]
    source = open_source(str(root))  # a bare folder in this layout is recognised
    assert isinstance(source, CLIPBenchmarkSource) and len(source) == 6
    assert source.class_names() == list(COLOURS) and source.dataset_name() == "wds/colours"
    result = zeroshot(source)
    assert result["templates"] == TEMPLATES  # the data set's own templates file
    assert result["num_samples"] == 6 and result["skipped"] == []
    metrics = result["metrics"]
    assert metrics["acc1"] == pytest.approx(4 / 6)
    assert metrics["mean_per_class_recall"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert np.isnan(metrics["acc5"])  # fewer than 5 classes, as CLIP_benchmark


@pytest.mark.parametrize("keyed_by_dataset", [False, True])
def test_cupl_prompts_replace_templates(tmp_path, keyed_by_dataset):
    """Swapped descriptions make class red's weight green and green's red: s3 (greenish,
    labelled red) becomes right, s0 s1 s2 s5 wrong: acc1 2/6, recall red 1/3 green 0 blue 1/2."""
    source = CLIPBenchmarkSource(write_classification(tmp_path / "wds_colours"))
    prompts = {"red": ["a green leaf"], "green": ["a ripe red apple", "red"], "blue": ["sea blue"]}
    table = {"colours": prompts, "other": {}} if keyed_by_dataset else prompts
    (tmp_path / "cupl.json").write_text(json.dumps(table))
    result = zeroshot(source, ZeroShotConfig(prompts_file=tmp_path / "cupl.json", encode=QUIET))
    assert result["metrics"]["acc1"] == pytest.approx(2 / 6)
    assert result["metrics"]["mean_per_class_recall"] == pytest.approx((1 / 3 + 0 + 1 / 2) / 3)
    assert result["num_templates"] == 4 and result["templates"]["green"] == prompts["green"]
    del prompts["blue"]
    (tmp_path / "cupl.json").write_text(json.dumps(prompts))
    with pytest.raises(ValueError, match="no prompts for class 'blue'"):
        zeroshot(source, ZeroShotConfig(prompts_file=tmp_path / "cupl.json", encode=QUIET))


def test_multi_caption_retrieval_hand_computed(tmp_path):
    root = write_retrieval(tmp_path / "wds_pairs")
    source = open_source(f"clip_benchmark:{root}?split=test")
    assert [source[i].captions for i in range(3)] == [tuple(c) for _, c in RETRIEVAL]
    config = RetrievalConfig(recall_k=(1, 2, 3), encode=QUIET)
    result = retrieval(ColourModel(), colour_preprocess, colour_tokenizer, source, config)
    assert result["num_samples"] == 3 and result["num_texts"] == 6
    metrics = {k: v for k, v in result["metrics"].items() if k != "modality_gap"}
    assert metrics == pytest.approx(EXPECTED_RECALL)
    with pytest.warns(UserWarning, match=f"read it as clip_benchmark:{root}\\?split=test"):
        open_data(f"wds:{root}/test")  # plain WebDataset: told how to count every caption


def test_classnames_file_for_an_image_folder(tmp_path):
    folder = tmp_path / "folder"
    for index, (rgb, label) in enumerate(CLASSIFIED):
        (folder / f"class{label}").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), rgb).save(folder / f"class{label}" / f"{index}.png")
    (folder / "classnames.txt").write_text("red\ngreen\nblue\n")  # beside the class folders
    source = open_classification_data(str(folder))
    assert isinstance(source, ClassFolderSource)  # still an image folder, not a wds set
    names = folder / "classnames.txt"
    config = ZeroShotConfig(templates=("a {c}",), class_names_file=names, encode=QUIET)
    result = zeroshot(source, config)
    assert result["metrics"]["acc1"] == pytest.approx(4 / 6)  # "class0" … would score 0 / 6
    (tmp_path / "names.json").write_text(json.dumps(["red", "green"]))
    config.class_names_file = tmp_path / "names.json"
    with pytest.raises(ValueError, match="names.json: 2 class names, but .* has 3 classes"):
        zeroshot(source, config)


# --- the CLI with a real (micro) model ---------------------------------------------------------


def micro_model(directory, seed):
    torch.manual_seed(seed)
    words = [f"a {t} {c} thing photo of" for t in ("photo", "drawing") for c in COLOURS]
    tokenizer = Tokenizer.train(words, vocab_size=120, context_length=8, min_frequency=1)
    config = model_config("tiny")
    config.embed_dim = 16
    config.vision.image_size = config.preprocess.image_size = 16
    config.vision.patch_size, config.vision.width = 8, 16
    config.vision.layers, config.vision.heads = 1, 2
    config.text.width, config.text.layers, config.text.heads = 16, 1, 2
    config.text.context_length, config.text.vocab_size = 8, tokenizer.vocab_size
    model = CLIP(config)
    model.init_weights()
    return save_model_dir(directory, model, tokenizer)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return [micro_model(root / name, seed) for seed, name in enumerate(("alpha", "beta"))]


def run_cli(argv, capsys):
    code = main([*argv, "--workers", "0", "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_json_has_clip_benchmark_schema(models, tmp_path, capsys):
    """Keys first in CLIP_benchmark's order; the wds set scores as the same images in folders."""
    root = write_classification(tmp_path / "wds_colours")
    folder = tmp_path / "folder"
    for index, (rgb, label) in enumerate(CLASSIFIED):
        (folder / COLOURS[label]).mkdir(parents=True, exist_ok=True)
        (folder / COLOURS[label] / f"{index}.{FORMATS[index]}").write_bytes(
            encoded(rgb, FORMATS[index])
        )
    results = []
    for data in (root, folder):
        out = tmp_path / f"{data.name}.json"
        argv = ["eval", "zeroshot", "--model", str(models[0]), "--data", str(data)]
        code, _, _ = run_cli(
            [
                *argv,
                "--templates",
                str(root / "zeroshot_classification_templates.txt"),
                "--json",
                str(out),
            ],
            capsys,
        )
        assert code == 0
        results.append(json.loads(out.read_text()))
    wds_result, folder_result = results
    assert list(wds_result)[:6] == ["dataset", "model", "pretrained", "task", "metrics", "language"]
    assert wds_result["task"] == "zeroshot_classification" and wds_result["language"] == "en"
    assert wds_result["model"] == wds_result["pretrained"] == str(models[0])
    assert wds_result["dataset"] == "wds/colours" and "num_samples" in wds_result
    assert wds_result["metrics"] == folder_result["metrics"]
    rows = collect_rows([tmp_path / "wds_colours.json"])  # what clip_benchmark build reads
    assert rows[0]["model_fullname"] == f"{models[0]} {models[0]}"


def names_in(folder):
    return sorted(p.name for p in folder.iterdir())


def test_benchmark_grid_and_skip_existing(models, tmp_path, capsys):
    cls_root = write_classification(tmp_path / "wds_colours")
    ret_root = write_retrieval(tmp_path / "wds_pairs")
    out = tmp_path / "bench"
    argv = ["benchmark", "--models", ",".join(map(str, models)), "--out", str(out)]
    argv += ["--datasets", str(cls_root), f"pairs={ret_root}"]
    code, printed, _ = run_cli(argv, capsys)
    assert code == 0, printed
    files = [
        f"{dataset}_{name}_{str(model).strip('/').replace('/', '_')}_en_{task}.json"
        for model, name in zip(models, ("alpha", "beta"))
        for dataset, task in (
            ("wds_colours", "zeroshot_classification"),
            ("pairs", "zeroshot_retrieval"),
        )
    ]
    assert names_in(out) == sorted([*files, "benchmark.csv", "report.html"])
    report = (out / "report.html").read_text()
    assert all(f"<th>{name}</th>" in report for name in ("alpha", "beta"))  # a column each
    first = json.loads((out / files[0]).read_text())
    assert first["dataset"] == "wds/colours" and first["model"] == str(models[0])
    assert set(json.loads((out / files[1]).read_text())["metrics"]) >= {"image_retrieval_recall@5"}
    with open(out / "benchmark.csv") as table:
        rows = list(csv.DictReader(table))
    assert len(rows) == 4 and {r["task"] for r in rows} == {
        "zeroshot_classification",
        "zeroshot_retrieval",
    }
    assert list(rows[0])[:6] == [
        "dataset",
        "model",
        "pretrained",
        "task",
        "language",
        "model_fullname",
    ]

    kept = json.loads((out / files[0]).read_text())
    kept["metrics"]["acc1"] = 0.125  # a marker a rerun would overwrite
    (out / files[0]).write_text(json.dumps(kept))
    (out / files[3]).unlink()
    code, printed, _ = run_cli([*argv, "--skip-existing"], capsys)
    assert code == 0 and printed.count("skip ") == 3 and "1 results written, 3 skipped" in printed
    assert json.loads((out / files[0]).read_text())["metrics"]["acc1"] == 0.125
    assert (out / files[3]).exists()
    with open(out / "benchmark.csv") as table:
        rows = list(csv.DictReader(table))
    assert len(rows) == 4 and "0.125" in {r["acc1"] for r in rows}
    code, printed, _ = run_cli(argv, capsys)  # without the flag every cell reruns
    assert code == 0 and "4 results written" in printed
    assert json.loads((out / files[0]).read_text())["metrics"]["acc1"] != 0.125


def test_suites(tmp_path):
    assert {(e.task, e.data) for e in load_suite("default")} == {
        ("zeroshot_classification", "builtin:emoji?split=val"),
        ("zeroshot_retrieval", "builtin:emoji?split=val"),
    }
    assert load_suite("default") == DEFAULT_SUITE
    (tmp_path / "s.yaml").write_text(
        "entries:\n  - {task: retrieval, data: /x, name: x, options: {recall_k: [1]}}\n"
    )
    (entry,) = load_suite(tmp_path / "s.yaml")
    assert (entry.task, entry.data, entry.name, entry.options) == (
        "retrieval",
        "/x",
        "x",
        {"recall_k": [1]},
    )


# --- bad input: one line naming it, nothing written ---------------------------------------------


def bad_layout(case, root):
    if case == "no classnames":
        write_classification(root)
        (root / "classnames.txt").unlink()
        return root, "classnames.txt: missing"
    if case == "no shards":
        (root / "test").mkdir(parents=True)
        (root / "classnames.txt").write_text("a\n")
        return f"clip_benchmark:{root}", "test: no .tar shards in this split folder"
    if case == "missing shard":
        write_classification(root)
        (root / "test" / "nshards.txt").write_text("3\n")
        return root, "2.tar: missing"
    if case == "no split":
        write_classification(root)
        return (
            f"clip_benchmark:{root}?split=train",
            "train: no such split folder (splits here: test)",
        )
    (root / "test").mkdir(parents=True)
    (root / "dataset_type.txt").write_text("multilabel\n")  # recognised by this file
    return root, "data set type 'multilabel' is not supported"


@pytest.mark.parametrize(
    "case", ["no classnames", "no shards", "missing shard", "no split", "multilabel"]
)
def test_bad_layouts(case, models, tmp_path, capsys):
    data, message = bad_layout(case, tmp_path / "wds_bad")
    code, _, err = run_cli(
        ["eval", "zeroshot", "--model", str(models[0]), "--data", str(data)], capsys
    )
    assert code == 2 and err.startswith("clipforge eval: error:") and message in err
    assert len(err.strip().splitlines()) == 1


def test_benchmark_bad_input_writes_nothing(models, tmp_path, capsys):
    out = tmp_path / "bench"
    out.mkdir()
    (out / "old.json").write_text("{}")
    root = write_retrieval(tmp_path / "wds_pairs")
    base = ["benchmark", "--models", str(models[0]), "--out", str(out)]
    code, _, err = run_cli([*base, "--datasets", str(root), "--task", "segmentation"], capsys)
    assert code == 2 and "unknown task 'segmentation'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli([*base, "--datasets", str(root), str(tmp_path / "gone")], capsys)
    assert code == 2 and "suite entry 1" in err and str(tmp_path / "gone") in err
    code, _, err = run_cli(
        [
            "benchmark",
            "--models",
            str(tmp_path / "nomodel"),
            "--out",
            str(out),
            "--datasets",
            str(root),
        ],
        capsys,
    )
    assert code == 2 and "nomodel: no such model" in err
    code, _, err = run_cli([*base, "--datasets", str(root), "--output", "{size}.json"], capsys)
    assert code == 2 and "output template '{size}.json': KeyError 'size'" in err
    assert names_in(out) == ["old.json"]


# --- export: clipforge data in CLIP_benchmark's layout ------------------------------------------


def test_export_round_trip(tmp_path, capsys):
    """``export_clip_benchmark`` writes what the reader (and CLIP_benchmark) reads: same
    labels, class names, templates and every caption; bad records left out and listed."""
    source = ShapesSource(10, bad_keys={3})  # PIL images; record 3 is undecodable
    summary = export_clip_benchmark(
        source, tmp_path / "wds_shapes", templates=TEMPLATES, max_count=4
    )
    assert (summary.samples, summary.shards, [k for k, _ in summary.skipped]) == (9, 3, ["shape-3"])
    back = CLIPBenchmarkSource(tmp_path / "wds_shapes")
    assert back.class_names() == source.class_names() and back.templates() == tuple(TEMPLATES)
    kept = [i for i in range(10) if i != 3]
    assert [back[j].metadata["label"] for j in range(9)] == [
        source[i].metadata["label"] for i in kept
    ]
    export_clip_benchmark(source, tmp_path / "wds_shapes", split="val", retrieval=True)
    captions = CLIPBenchmarkSource(tmp_path / "wds_shapes", SourceOptions(split="val"))
    assert [captions[j].captions for j in range(9)] == [source[i].captions for i in kept]
    with pytest.raises(FileExistsError, match="val: already exists"):
        export_clip_benchmark(source, tmp_path / "wds_shapes", split="val", retrieval=True)


def test_export_cli_copies_images(tmp_path, capsys):
    """An image folder exported from the command line: PNG and JPEG bytes copied unchanged."""
    folder = tmp_path / "folder"
    for index, (rgb, label) in enumerate(CLASSIFIED):
        (folder / COLOURS[label]).mkdir(parents=True, exist_ok=True)
        (folder / COLOURS[label] / f"{index}.{FORMATS[index]}").write_bytes(
            encoded(rgb, FORMATS[index])
        )
    out = tmp_path / "wds_colours"
    argv = ["data", "export-wds", str(folder), "--out", str(out), "--max-count", "5"]
    assert main(argv) == 0 and "wrote 6 samples in 2 shards" in capsys.readouterr().out
    back, source = CLIPBenchmarkSource(out), ClassFolderSource(folder)
    assert back.class_names() == ["blue", "green", "red"] and back.templates()
    assert [back[i].image for i in range(6)] == [p.read_bytes() for p, _ in source.items]
    assert main(argv) == 2 and "test: already exists" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["both", "missing names", "prompts missing a class"])
def test_eval_prompt_flag_errors(case, models, tmp_path, capsys):
    root = write_classification(tmp_path / "wds_colours")
    (tmp_path / "cupl.json").write_text(json.dumps({"red": ["red"], "green": ["green"]}))
    flags, message = {
        "both": (["--prompts", "cupl.json", "--templates", "t.txt"], "not both"),
        "missing names": (["--classnames", "names.txt"], "names.txt: class names file not found"),
        "prompts missing a class": (["--prompts", "cupl.json"], "no prompts for class 'blue'"),
    }[case]
    flags = [str(tmp_path / f) if f.endswith((".json", ".txt")) else f for f in flags]
    argv = ["eval", "zeroshot", "--model", str(models[0]), "--data", str(root), *flags]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
