"""The shared mechanisms of ``clipforge.common`` and that no second copy of them creeps back."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from clipforge.common.files import atomic_write, atomic_write_text
from clipforge.common.optional import require
from clipforge.common.vectors import l2_normalize

SRC = Path(__file__).resolve().parents[1] / "src" / "clipforge"


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "sub" / "model.json"
    assert atomic_write_text(target, "old") == target  # parents are created
    assert target.read_text() == "old"

    def crash(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert target.read_text() == "old"  # untouched
    assert [p.name for p in target.parent.iterdir()] == ["model.json"]  # no temporary left
    atomic_write(target, lambda tmp: tmp.write_text("new"))
    assert target.read_text() == "new"


def test_atomic_write_keeps_the_suffix_for_format_sniffing_writers(tmp_path):
    seen = []
    atomic_write(tmp_path / "loss.png", lambda tmp: (seen.append(tmp.suffix), tmp.write_bytes(b"")))
    assert seen == [".png"]


def test_require_names_the_extra_and_the_package():
    assert require("json", "hf", "x").dumps([1]) == "[1]"
    with pytest.raises(ImportError, match=r"a test needs 'no-such-pkg'.*clipforge\[hf\]"):
        require("no_such_module_xyz", "hf", "a test", "no-such-pkg")


def test_l2_normalize_rows_and_zero_vectors():
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float64))
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(l2_normalize(np.array([0.0, 2.0])), [0.0, 1.0])


@pytest.mark.parametrize(
    "pattern, allowed",
    [
        # one rename helper; checkpoint.py renames a whole checkpoint directory into place
        (r"os\.replace\(|\.replace\(tmp", {"common/files.py", "training/checkpoint.py"}),
        (r"except ImportError", {"common/optional.py", "search/lexicon.py", "cli/convert.py"}),
        (r"np\.linalg\.norm\(", {"common/vectors.py"}),
        (r"def modality_gap\(", {"evaluation/metrics.py"}),
        (r"yaml\.safe_load\(", {"common/yaml_files.py", "training/config.py"}),
    ],
)
def test_one_copy_of_each_mechanism(pattern, allowed):
    found = {
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if re.search(pattern, path.read_text())
    }
    assert found <= allowed, sorted(found - allowed)
