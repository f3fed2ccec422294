"""The training loop on seconds-long runs: outputs, exact resume, bad records, schedule."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

import clipforge
from clipforge.data.record import BadRecordError
from clipforge.training import TrainConfig, train
from clipforge.training.config import OptimSection
from clipforge.training.optim import WarmupCosine, build_optimizer

from synthetic import ShapesSource, micro_model_overrides


def make_config(out, **run) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "model": {
                "name": "tiny",
                "overrides": micro_model_overrides(),
                "tokenizer_vocab_size": 300,
            },
            "data": {"batch_size": 8, "workers": 0, "val": None},
            "run": {"out": str(out), "steps": 6, "log_every": 1, "progress": False, **run},
        }
    )


def losses(run_dir) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows]


def test_run_writes_model_logs_and_plot(tmp_path):
    result = train(make_config(tmp_path / "run"), ShapesSource(48))
    run_dir = tmp_path / "run"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5, 6]
    for row in rows:
        assert {"step", "loss", "lr", "samples_per_s"} <= row.keys()
        assert math.isfinite(row["loss"]) and row["samples_per_s"] > 0
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["steps"] == result.steps == 6
    assert summary["skipped_records"]["count"] == 0
    assert (run_dir / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"

    model, preprocess, tokenizer = clipforge.load(run_dir)
    image = preprocess(ShapesSource(1)[0].image).unsqueeze(0)
    image_embeds = model.encode_image(image, normalize=True)
    text_embeds = model.encode_text(tokenizer(["a red circle", "a blue square"]), normalize=True)
    assert image_embeds.shape == (1, 32) and text_embeds.shape == (2, 32)
    assert torch.allclose(image_embeds.norm(dim=-1), torch.ones(1), atol=1e-5)
    _, patches = model.encode_image(image, return_tokens=True)
    assert patches.shape == (1, 16, 32)


def test_training_reduces_loss_on_learnable_data(tmp_path):
    config = make_config(tmp_path / "run", steps=60, log_every=5)
    config.optim.lr = 2e-3
    train(config, ShapesSource(64))
    curve = losses(tmp_path / "run")
    assert curve[-1] < 0.8 * curve[0]


def test_resume_continues_the_same_loss_curve(tmp_path):
    full = tmp_path / "full"
    train(make_config(full, save_every=3, keep_checkpoints=5), ShapesSource(48))
    # Simulate a run that died after step 3: only the step-3 checkpoint and the log survive.
    broken = tmp_path / "broken"
    shutil.copytree(full, broken)
    shutil.rmtree(broken / "checkpoints" / "step-00000006")
    (broken / "model.safetensors").unlink()
    resumed = train(make_config(broken, save_every=3, resume=True), ShapesSource(48))
    assert resumed.steps == 6
    assert losses(broken) == losses(full)


def test_workers_do_not_change_the_batches(tmp_path):
    train(make_config(tmp_path / "a"), ShapesSource(48))
    config = make_config(tmp_path / "b")
    config.data.workers = 2
    train(config, ShapesSource(48))
    assert losses(tmp_path / "a") == pytest.approx(losses(tmp_path / "b"), abs=1e-6)


def test_bad_records_are_skipped_and_counted(tmp_path):
    source = ShapesSource(48, bad_keys=frozenset({0, 5, 9}))
    train(make_config(tmp_path / "run", epochs=1, steps=None), source)
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    skipped = summary["skipped_records"]
    assert skipped["count"] == 3
    assert sorted(e["key"] for e in skipped["examples"]) == ["shape-0", "shape-5", "shape-9"]
    assert skipped["per_epoch"] == {"0": 3}


def test_strict_stops_at_the_first_bad_record_and_names_it(tmp_path):
    config = make_config(tmp_path / "run")
    config.data.strict = True
    with pytest.raises(BadRecordError, match="shape-"):
        train(config, ShapesSource(48, bad_keys=frozenset(range(48))))


def test_freeze_prefix_must_match(tmp_path):
    config = make_config(tmp_path / "run", steps=2)
    config.model.freeze = ["vision_tower"]
    with pytest.raises(ValueError, match="vision_tower"):
        train(config, ShapesSource(48))


def test_frozen_tower_does_not_move(tmp_path):
    config = make_config(tmp_path / "run", steps=3, save_every=1, keep_checkpoints=5)
    config.model.freeze = ["visual"]
    train(config, ShapesSource(48))
    step1 = clipforge.load(tmp_path / "run" / "checkpoints" / "step-00000001")[0]
    step3 = clipforge.load(tmp_path / "run" / "checkpoints" / "step-00000003")[0]
    assert torch.equal(step1.visual.proj.weight, step3.visual.proj.weight)
    assert not torch.equal(step1.text.proj.weight, step3.text.proj.weight)


def test_warmup_cosine_by_hand():
    schedule = WarmupCosine(base_lr=1.0, total_steps=10, warmup_fraction=0.2)
    assert schedule.warmup_steps == 2
    assert schedule.lr(0) == pytest.approx(0.5)
    assert schedule.lr(1) == pytest.approx(1.0)
    assert schedule.lr(2) == pytest.approx(1.0)  # cosine starts at 1
    assert schedule.lr(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 7)))
    assert schedule.lr(9) == pytest.approx(0.0)  # the last step runs at the floor


def test_no_weight_decay_on_norms_biases_embeddings_and_scale():
    model = clipforge.create_model("tiny")
    optimizer = build_optimizer(
        model.named_parameters(), OptimSection(weight_decay=0.1), torch.device("cpu")
    )
    decayed = {id(p) for p in optimizer.param_groups[0]["params"]}
    names = {name for name, p in model.named_parameters() if id(p) in decayed}
    assert "visual.transformer.blocks.0.attn.qkv.weight" in names
    assert not any(
        n.endswith(".bias") or "ln_" in n or "embedding" in n or "logit" in n for n in names
    )


def test_exactly_one_length_option(tmp_path):
    config = make_config(tmp_path / "run", epochs=1)
    with pytest.raises(ValueError, match="exactly one"):
        train(config, ShapesSource(48))


def test_grow_schedule_deepens_the_model_mid_run(tmp_path):
    config = make_config(tmp_path / "run", steps=4)
    config.grow = [{"at_step": 2, "vision_layers": 1, "text_layers": 1}]
    train(config, ShapesSource(48))
    model, _, _ = clipforge.load(tmp_path / "run")
    assert model.config.vision.layers == 2 and model.config.text.layers == 2
    assert len(model.visual.transformer.blocks) == 2
    assert all(math.isfinite(loss) for loss in losses(tmp_path / "run"))


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_model_and_checkpoint_files_follow_the_umask(tmp_path, umask, mode):
    """safetensors creates its files 0600; a model must be readable as any file the user
    writes (by the group, by a server running as another user) — and no more than that."""
    import os

    from clipforge.models import create_model, model_config
    from clipforge.models.io import save_model_dir
    from clipforge.training.checkpoint import save_checkpoint
    from clipforge.training.setup import set_dotted

    config = model_config("tiny")
    for key, value in micro_model_overrides().items():
        set_dotted(config, key, value)
    model = create_model(config)
    old = os.umask(umask)
    try:
        save_model_dir(tmp_path / "model", model, None)
        checkpoint = save_checkpoint(
            tmp_path / "run", 1, model, None, {"queue": torch.nn.Linear(2, 2)}, {"step": 1}
        )
    finally:
        os.umask(old)
    files = [
        tmp_path / "model" / "model.safetensors",
        tmp_path / "model" / "config.json",
        checkpoint / "model.safetensors",
        checkpoint / "objectives.safetensors",
    ]
    assert [oct(f.stat().st_mode & 0o777) for f in files] == [oct(mode)] * len(files)
