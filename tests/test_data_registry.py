"""One source of truth: data-source prefixes come from the source registry, an objective's extra
inputs are declared by the objective, and the data layer imports nothing above it."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import clipforge.data
import clipforge.data.sources as sources
from clipforge.data.extras import ExtraInput
from clipforge.data.preprocess import PreprocessConfig
from clipforge.data.record import RawRecord
from clipforge.data.sources.base import MapSource
from clipforge.data.tokenizer import Tokenizer
from clipforge.objectives.base import Objective
from clipforge.registry import Registry
from clipforge.training.config import DataSection
from clipforge.training.setup import build_train_loader

from datagen import image_bytes


class Squares(MapSource):
    """A source a user adds: ``squares:N`` → N solid squares."""

    name = "squares"

    def __init__(self, location, options=None):
        self.count = int(location)

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return RawRecord(str(index), image_bytes(index, size=12), (f"square number {index}",))


def test_a_new_source_kind_is_one_registry_line(monkeypatch):
    monkeypatch.setattr(
        sources,
        "DATA_SOURCES",
        Registry("data source", {**dict(sources.DATA_SOURCES.items()), "squares": Squares}),
    )
    source = sources.open_source("squares:3")
    assert isinstance(source, Squares) and len(source) == 3
    with pytest.raises(ValueError, match="squares"):  # the error lists registered kinds
        sources.open_source("nowhere-like-this")


class ImageWidth(ExtraInput):
    """An input no built-in objective uses: each image's width before the transform."""

    name = "image_width"

    def make(self, view):
        return view.image.width

    def collate(self, values, captions, tokenizer):
        return {self.name: torch.tensor(values)}


class WidthAware(Objective):
    name = "width_aware"
    extra_inputs = (ImageWidth(), "text_view2")  # its own input next to a built-in one


def test_an_objective_declares_its_own_extra_input_without_loader_edits():
    tokenizer = Tokenizer.train(
        [f"square number {i}" for i in range(4)], vocab_size=300, context_length=16
    )
    model = SimpleNamespace(config=SimpleNamespace(preprocess=PreprocessConfig(image_size=8)))
    loader = build_train_loader(
        Squares("4"),
        DataSection(batch_size=4, workers=0),
        model,
        tokenizer,
        {"width_aware": WidthAware()},
        seed=0,
        rank=0,
        world=1,
    )
    batch = next(iter(loader))
    assert batch.extras["image_width"].tolist() == [12, 12, 12, 12]
    assert batch.extras["text_view2"].shape == (4, 16)


def test_data_layer_imports_nothing_above_it():
    """Every clipforge module a file under data/ imports is in data/ or a shared utility (the
    layers below data in tests/test_layering.py: registry, distributed, common, machine)."""
    allowed = (
        "clipforge.data",
        "clipforge.registry",
        "clipforge.distributed",
        "clipforge.common",
        "clipforge.machine",
    )
    root = Path(clipforge.data.__file__).parent
    upward = []
    for path in root.rglob("*.py"):
        package = ["clipforge", *path.relative_to(root.parent).with_suffix("").parts[:-1]]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                names = [".".join([*base, node.module] if node.module else base)]
                if node.module is None:  # from .. import distributed
                    names = [".".join([*base, alias.name]) for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            upward += [
                f"{path.name}: {name}"
                for name in names
                if name.startswith("clipforge") and not name.startswith(allowed)
            ]
    assert upward == []
