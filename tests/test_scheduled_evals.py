"""The ``evals:`` section of a training config: checked when the config is read, each bad
entry named in a one-line error."""

from __future__ import annotations

import pytest

from clipforge.cli.main import main
from clipforge.evaluation import EVALUATORS, RetrievalConfig
from clipforge.evaluation.scheduled import EvalSpec
from clipforge.training import TrainConfig


def config(evals, eval_every=10):
    return TrainConfig.from_dict({"run": {"eval_every": eval_every}, "evals": evals})


def test_entries_parse_with_options_as_the_evaluator_config():
    parsed = config(
        [
            {
                "name": "retrieval",
                "data": "builtin:emoji?split=val",
                "every": 20,
                "options": {"recall_k": [1, 2]},
            },
            {"name": "zeroshot", "data": "d", "label": "zs"},
        ]
    )
    assert parsed.evals[0] == EvalSpec(
        "retrieval", "builtin:emoji?split=val", 20, {"recall_k": [1, 2]}
    )
    retrieval_config = EVALUATORS.get("retrieval").config_from_options(parsed.evals[0].options)
    assert isinstance(retrieval_config, RetrievalConfig) and retrieval_config.recall_k == (1, 2)
    assert [spec.key for spec in parsed.evals] == ["retrieval", "zs"]
    assert TrainConfig.from_dict(parsed.to_dict()).evals == parsed.evals  # round trip


@pytest.mark.parametrize(
    "evals, eval_every, message",
    [
        (
            [{"name": "zeroshoot", "data": "d"}],
            10,
            r"evals\[0\]\.name: unknown evaluator 'zeroshoot'",
        ),
        ([{"name": "zeroshot"}], 10, r"evals\[0\]: keys \['name'\]; expected name and data"),
        (
            [{"name": "retrieval", "data": "d", "options": {"recall": [1]}}],
            10,
            r"evals\[0\]\.options: unknown options \['recall'\]",
        ),
        (
            [{"name": "retrieval", "data": "d", "options": {"recall_k": [0]}}],
            10,
            r"evals\[0\]\.options: recall k values .* ≥ 1",
        ),
        (
            [{"name": "retrieval", "data": "d", "every": 15}],
            10,
            r"evals\[0\]\.every=15: must be a multiple of run\.eval_every \(10\)",
        ),
        ([{"name": "retrieval", "data": "d", "every": 10}], None, r"run\.eval_every \(None\)"),
        ([{"name": "retrieval", "data": "d", "every": 0}], 10, r"evals\[0\]\.every"),
        (
            [{"name": "retrieval", "data": "a"}, {"name": "retrieval", "data": "b"}],
            10,
            r"two entries with the label 'retrieval'",
        ),
        ({"name": "retrieval"}, 10, r"evals: expected a list"),
    ],
)
def test_bad_entries_fail_with_the_entry_named(evals, eval_every, message):
    with pytest.raises(ValueError, match=message):
        config(evals, eval_every)


def test_cli_reports_a_bad_entry_in_one_line(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("evals: [{name: nope, data: d}]\n")
    assert main(["train", "--config", str(path), "--print-config"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "evals[0].name: unknown evaluator 'nope'" in error
