"""Every named model size builds and has the parameter count the README and ``sizes.py`` state."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from clipforge.models import MODELS, create_model, model_config
from clipforge.models.sizes import PARAMETERS

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("name", MODELS.names())
def test_size_builds_with_its_documented_parameter_count(name):
    with torch.device("meta"):  # shapes only: ViT-L-14 costs no memory here
        model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[name]
    assert model.config.name == name


def test_readme_size_table_matches_the_configs():
    assert set(PARAMETERS) == set(MODELS.names())
    table = README.read_text().split("<!-- sizes:begin -->")[1].split("<!-- sizes:end -->")[0]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \|(.*)$", table, re.M)}
    assert set(rows) == set(MODELS.names())
    for name, row in rows.items():
        config = model_config(name)
        vision, text = config.vision, config.text
        cells = [cell.strip() for cell in row.strip(" |").split("|")]
        assert cells == [
            str(vision.image_size),
            str(vision.patch_size),
            f"{vision.width} × {vision.layers}",
            f"{text.width} × {text.layers}",
            str(config.embed_dim),
            f"{PARAMETERS[name]:,}",
        ], name
