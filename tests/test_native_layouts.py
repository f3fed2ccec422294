"""Evaluation sets in the layouts users already have: COCO captions JSON, Karpathy split JSON
(Flickr30k, COCO) and a CSV of (image, label). Fixtures are written here in those exact layouts
with generated images; then the sources feed ``clipforge benchmark`` with a micro model."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from test_clip_benchmark import micro_model

from clipforge.cli.main import main
from clipforge.data.record import decode_image
from clipforge.data.sources import open_source

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def colour_of(record, rgb):
    """The record decodes to ``rgb`` (within JPEG's rounding)."""
    pixel = decode_image(record).getpixel((0, 0))
    return max(abs(a - b) for a, b in zip(pixel, rgb, strict=True)) <= 3


def png(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), rgb).save(path)


def write_coco(root):
    """``ROOT/annotations/captions_val2017.json`` + ``ROOT/val2017/``, COCO's own layout."""
    images, annotations = [], []
    for number, (name, rgb) in enumerate(COLOURS.items()):
        image_id = 100 + number
        file_name = f"{image_id:012d}.jpg"
        png(root / "val2017" / file_name, rgb)
        images.append({"license": 1, "file_name": file_name, "height": 16, "width": 16,
                       "id": image_id})  # fmt: skip
        annotations += [
            {"image_id": image_id, "id": 10 * image_id + k, "caption": f"a {name} square {k}"}
            for k in range(2 + number)  # 2, 3, 4 captions
        ]
    annotations.reverse()  # COCO's annotations are not grouped by image
    images.append({"file_name": "uncaptioned.jpg", "id": 999})
    (root / "annotations").mkdir(parents=True)
    path = root / "annotations" / "captions_val2017.json"
    path.write_text(json.dumps({"info": {}, "images": images, "annotations": annotations}))
    return path


def write_karpathy(root, coco_style=False):
    """``dataset_flickr30k.json`` (or ``dataset_coco.json`` with ``filepath``) + images."""
    images = []
    for number, (name, rgb) in enumerate(COLOURS.items()):
        filename = f"{1000 + number}.jpg"
        folder = "val2014" if coco_style else "flickr30k-images"
        png(root / folder / filename, rgb)
        sentences = [{"tokens": [name], "raw": f"A {name} square.", "imgid": number}] * 2
        entry = {"filename": filename, "imgid": number, "sentences": sentences,
                 "split": ("test", "test", "train")[number], "sentids": [0, 1]}  # fmt: skip
        if coco_style:
            entry["filepath"] = folder
        images.append(entry)
    path = root / ("dataset_coco.json" if coco_style else "dataset_flickr30k.json")
    path.write_text(json.dumps({"images": images, "dataset": "flickr30k"}))
    return path


def write_labels(root, header="image,label", rows=None):
    rows = rows or [f"img/{i}_{name}.png,{name}" for i, name in enumerate([*COLOURS, "red"])]
    for i, name in enumerate([*COLOURS, "red"]):
        png(root / "img" / f"{i}_{name}.png", COLOURS[name])
    path = root / "labels.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_coco_captions_several_per_image(tmp_path):
    path = write_coco(tmp_path / "coco")
    root = tmp_path / "coco"
    for spec in (f"coco:{root}", f"coco:{path}", f"coco:{root}?split=val"):
        source = open_source(spec)
        assert len(source) == 3 and source.uncaptioned == 1
        record = source[1]
        assert record.key == "101" and record.metadata == {"image_id": 101}
        assert sorted(record.captions) == [f"a green square {k}" for k in range(3)]
        assert colour_of(record, COLOURS["green"])
    assert len(list(source.captions())) == 2 + 3 + 4


def test_karpathy_split_json(tmp_path):
    flickr = write_karpathy(tmp_path / "flickr", coco_style=False)
    source = open_source(f"karpathy:{flickr}?image_root={tmp_path / 'flickr' / 'flickr30k-images'}")
    assert [r.key for r in (source[0], source[1])] == ["1000.jpg", "1001.jpg"]  # test split
    assert source[0].captions == ("A red square.", "A red square.")
    images = flickr.parent / "flickr30k-images"
    train = open_source(f"karpathy:{flickr}?split=train&image_root={images}")
    assert len(train) == 1 and colour_of(train[0], COLOURS["blue"])
    coco = open_source(f"karpathy:{write_karpathy(tmp_path / 'coco', coco_style=True)}")
    assert coco[1].key == "val2014/1001.jpg"  # filepath/filename under the JSON's folder
    assert colour_of(coco[1], COLOURS["green"])


def test_label_csv_class_names(tmp_path):
    path = write_labels(tmp_path)
    source = open_source(f"classcsv:{path}")
    assert source.class_names() == ["blue", "green", "red"]  # sorted unique labels
    assert [r.metadata["label"] for r in (source[i] for i in range(4))] == [2, 1, 0, 2]
    assert source[3].captions == ("red",)
    assert colour_of(source[1], COLOURS["green"])
    names = tmp_path / "classnames.txt"
    names.write_text("red\ngreen\nblue\n")  # CLIP_benchmark's file: label order
    rows = ["img/0_red.png,0", "img/1_green.png,green", "img/2_blue.png,2"]
    path = write_labels(tmp_path, "filepath,cls", rows)
    source = open_source(f"classcsv:{path}?label_column=cls&classnames={names}")
    assert source.class_names() == ["red", "green", "blue"]
    assert [source[i].metadata["label"] for i in range(3)] == [0, 1, 2]
    numeric = write_labels(tmp_path, rows=[f"img/{i}_red.png,{n}" for i, n in ((0, 10), (3, 2))])
    assert open_source(f"classcsv:{numeric}").class_names() == ["2", "10"]


def bad_input(case, tmp_path):
    if case == "coco no image folder":
        path = write_coco(tmp_path / "c")
        (tmp_path / "c" / "val2017").rename(tmp_path / "c" / "elsewhere")
        return f"coco:{path}", f"{tmp_path / 'c' / 'val2017'}: no such image folder"
    if case == "coco no annotations key":
        path = write_coco(tmp_path / "c")
        path.write_text(json.dumps({"images": []}))
        return f"coco:{path}", "no list under key 'annotations'"
    if case == "coco caption key":
        path = write_coco(tmp_path / "c")
        data = json.loads(path.read_text())
        del data["annotations"][2]["caption"]
        path.write_text(json.dumps(data))
        return f"coco:{path}", "annotations[2] has no key 'caption'"
    if case == "karpathy sentences key":
        path = write_karpathy(tmp_path / "k")
        data = json.loads(path.read_text())
        data["images"][1]["sentences"][0] = {"tokens": []}
        path.write_text(json.dumps(data))
        return f"karpathy:{path}", "images[1].sentences[0] has no key 'raw'"
    if case == "karpathy images elsewhere":
        return f"karpathy:{write_karpathy(tmp_path / 'k')}", "1000.jpg: image not found"
    if case == "karpathy unknown split":
        path = write_karpathy(tmp_path / "k")
        return f"karpathy:{path}?split=val", "no image in split 'val' (splits here: test, train)"
    if case == "csv label column":
        return f"classcsv:{write_labels(tmp_path, 'image,class')}", "no column label"
    if case == "csv unknown label":
        names = tmp_path / "names.txt"
        names.write_text("red\ngreen\n")
        path = write_labels(tmp_path)
        return f"classcsv:{path}?classnames={names}", "row 2: label 'blue' is neither"
    raise AssertionError(case)


BAD = [
    "coco no image folder",
    "coco no annotations key",
    "coco caption key",
    "karpathy sentences key",
    "karpathy images elsewhere",
    "karpathy unknown split",
    "csv label column",
    "csv unknown label",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_layouts_one_line_errors(case, tmp_path):
    spec, message = bad_input(case, tmp_path)
    with pytest.raises((ValueError, FileNotFoundError)) as caught:
        open_source(spec)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_benchmark_reads_native_layouts(tmp_path, capsys):
    model = micro_model(tmp_path / "micro", 0)
    coco = write_coco(tmp_path / "coco")
    flickr = write_karpathy(tmp_path / "flickr")
    labels = write_labels(tmp_path / "cls")
    out = tmp_path / "bench"
    datasets = [
        f"coco={'coco:' + str(coco)}",
        f"flickr30k=karpathy:{flickr}?image_root={flickr.parent}/flickr30k-images",
        f"colours=classcsv:{labels}",
    ]
    argv = ["benchmark", "--models", str(model), "--out", str(out), "--datasets", *datasets]
    assert main([*argv, "--workers", "0", "--no-progress"]) == 0, capsys.readouterr().err
    results = {
        (r["dataset"], r["task"], r["num_samples"])
        for r in (json.loads(p.read_text()) for p in out.glob("*_en_*.json"))
    }
    assert results == {
        ("coco", "zeroshot_retrieval", 3),
        ("flickr30k", "zeroshot_retrieval", 2),
        ("colours", "zeroshot_classification", 4),
    }
