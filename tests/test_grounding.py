"""Score maps, boxes and the grounding metrics: hand-computed cases, a stub whose patches are set,
a real tiny CLIP whose weights make its map peak on red, and the explain / eval grounding CLI."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clipforge.cli.main import main
from clipforge.data.preprocess import PreprocessConfig
from clipforge.data.record import RawRecord
from clipforge.data.sources.base import MapSource
from clipforge.data.tokenizer import Tokenizer
from clipforge.evaluation import EVALUATORS, EncodeConfig
from clipforge.evaluation.dense_map import InputFrame, connected_box, ground
from clipforge.evaluation.grounding import GroundingConfig, box_iou, contains, grounding
from clipforge.models import CLIP, model_config
from clipforge.models.io import save_model_dir

QUIET = EncodeConfig(batch_size=3, workers=0, progress=False)
RED, BLUE, GREY = (230, 20, 20), (20, 20, 230), (128, 128, 128)


# --- hand-computed metrics, boxes and frames ---------------------------------------------------


def test_iou_and_contains_hand_computed():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching, x1 exclusive
    assert box_iou((0, 0, 4, 4), (1, 1, 3, 3)) == pytest.approx(4 / 16)
    assert contains((2, 2, 5, 5), (2, 4)) and not contains((2, 2, 5, 5), (5, 3))


def test_connected_box_keeps_the_peak_component():
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[1:3, 1:4] = True  # component A
    mask[3, 4] = True  # touches A diagonally: 8-connected, so part of A
    mask[6:8, 6:8] = True  # component B
    assert connected_box(mask, (1, 1)) == (1, 1, 5, 4)
    assert connected_box(mask, (7, 7)) == (6, 6, 8, 8)


def test_ground_one_hot_patch_hand_computed():
    """A 4 × 4 map, one-hot at row 1 column 2, seen at 16 px from a 32 px image: upsampled
    ×4, the pixels ≥ 0.5 are input columns 8–11 and rows 4–7 (half-pixel bilinear), the first
    maximum is input pixel (row 5, column 9), and the original image is ×2."""
    grid = torch.zeros(4, 4)
    grid[1, 2] = 1.0
    frame = InputFrame.of(32, 32, PreprocessConfig(image_size=16))
    found = ground(grid, frame, threshold=0.5)
    assert found.box == (16, 8, 24, 16)
    assert found.peak == (19, 11)
    assert found.max_score == 1.0


def test_input_frame_of_a_wide_image():
    frame = InputFrame.of(40, 20, PreprocessConfig(image_size=10))  # centre crop 20 × 20 at x 10
    assert (frame.left, frame.top, frame.scale_x) == (10.0, 0.0, 2.0)
    assert frame.point(0, 0) == (11, 1)
    assert frame.box((0, 0, 10, 10)) == (10, 0, 30, 20)
    squash = InputFrame.of(40, 20, PreprocessConfig(image_size=10, resize_mode="squash"))
    assert squash.box((0, 0, 10, 10)) == (0, 0, 40, 20)


# --- a stub model whose patch tokens are set -----------------------------------------------------


def scene(size: int, objects: list[tuple[tuple[int, ...], tuple[int, int, int]]]) -> Image.Image:
    image = Image.new("RGB", (size, size), GREY)
    for box, colour in objects:
        image.paste(colour, box)
    return image


class PatchStub(torch.nn.Module):
    """16 px input, 4 px patches: a patch's token is e0 where the patch is red, e2 where blue,
    e1 elsewhere; "red" texts embed to e0, "blue" ones to e2, so only the named colour's patches
    align with the text."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(vision=SimpleNamespace(image_size=16, patch_size=4))

    def encode_image(self, images, return_tokens=False, normalize=True):
        means = F.avg_pool2d(images, 4).flatten(2).transpose(1, 2)  # [B, 16, 3] normalised RGB
        red = (means[..., 0] > 1.0) & (means[..., 1] < 0.0)
        blue = (means[..., 2] > 1.0) & (means[..., 0] < 0.0)
        index = torch.where(red, 0, torch.where(blue, 2, 1))
        return None, F.one_hot(index, 4).float()

    def encode_text(self, ids, normalize=True):
        return F.one_hot(torch.where(ids[:, 0] == 0, 0, 2), 4).float()


def stub_tokenizer(texts):
    return torch.tensor([[0 if "red" in text else 1] for text in texts])


class BoxesSource(MapSource):
    """32 px scenes (8 px per stub patch) with a red and a blue square at known patch cells."""

    def __init__(self, layouts, bad_index=None):
        self.layouts, self.bad_index = layouts, bad_index

    def __len__(self):
        return len(self.layouts)

    def __getitem__(self, index):
        red_box, blue_box = self.layouts[index]
        image = scene(32, [(red_box, RED), (blue_box, BLUE)])
        metadata = {
            "boxes": [list(red_box), list(blue_box)],
            "region_captions": ["the red square", "the blue square"],
        }
        if index == self.bad_index:
            return RawRecord(f"s{index}", b"broken", ("x",), metadata)
        return RawRecord(f"s{index}", image, ("a red and a blue square",), metadata)


def stub_preprocess():
    from clipforge.data.transforms import eval_transform

    return eval_transform(PreprocessConfig(image_size=16))


def test_stub_map_peaks_on_the_named_object():
    layouts = [
        ((8, 8, 16, 16), (24, 0, 32, 16)),  # red one cell; blue a 1 × 2 column at the right
        ((0, 24, 16, 32), (8, 8, 24, 24)),  # red 2 × 1 at the bottom; blue 2 × 2 in the centre
        ((16, 16, 24, 24), (0, 0, 8, 8)),
    ]
    source = BoxesSource(layouts, bad_index=None)
    result = grounding(
        PatchStub(), stub_preprocess(), stub_tokenizer, source, GroundingConfig(encode=QUIET)
    )
    metrics = result["metrics"]
    assert metrics["pointing_game"] == metrics["pointing_game_any_object"] == 1.0
    assert metrics["box_iou50"] == 1.0 and metrics["box_mean_iou"] == pytest.approx(1.0)
    # the centre pixel (16, 16) lies in: the blue box of scene 1 and the red box of scene 2
    assert metrics["pointing_game_center_baseline"] == pytest.approx(2 / 6)
    assert result["num_samples"] == 3 and result["num_regions"] == 6 and result["skipped"] == []


def test_stub_swapped_captions_miss_and_bad_records_are_skipped():
    """Naming the other colour moves the peak off the true box: the metric can fail."""
    layouts = [((0, 0, 8, 8), (24, 24, 32, 32))] * 3
    source = BoxesSource(layouts, bad_index=1)

    def swapped(texts):
        return stub_tokenizer(["blue" if "red" in t else "red" for t in texts])

    result = grounding(
        PatchStub(), stub_preprocess(), swapped, source, GroundingConfig(encode=QUIET, limit=3)
    )
    assert result["metrics"]["pointing_game"] == 0.0 and result["metrics"]["box_iou50"] == 0.0
    assert result["metrics"]["pointing_game_any_object"] == 1.0  # it found the other square
    assert result["num_samples"] == 2 and [s["key"] for s in result["skipped"]] == ["s1"]


# --- a real tiny CLIP whose map peaks on red ------------------------------------------------------


@pytest.fixture(scope="module")
def red_finder_dir(tmp_path_factory):
    """A real CLIP (16 px, 4 px patches, width 32) set by hand: the blocks add nothing, the patch
    embedding reads red − green into the direction u = e0 − e1, every text embeds to u; so the
    cosine is +1 on red patches, 0 on grey ones (mean/std 0.5 make grey zero) and −1 on green."""
    captions = ["the red square", "a blue square at the top", "a cat and an apple"]
    tokenizer = Tokenizer.train(captions, vocab_size=300, context_length=16, min_frequency=1)
    config = model_config("tiny")
    config.embed_dim = 32
    config.vision.image_size = config.preprocess.image_size = 16
    config.vision.patch_size, config.vision.width = 4, 32
    config.vision.layers, config.vision.heads = 1, 2
    config.text.width, config.text.layers, config.text.heads = 32, 1, 2
    config.text.context_length, config.text.vocab_size = 16, tokenizer.vocab_size
    config.preprocess.mean, config.preprocess.std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    model = CLIP(config)
    u = torch.zeros(32)
    u[0], u[1] = 1.0, -1.0
    with torch.no_grad():
        for tower in (model.visual, model.text):
            for block in tower.transformer.blocks:
                for linear in (block.attn.out_proj, block.mlp.fc2):
                    linear.weight.zero_()
                    linear.bias.zero_()
            tower.positional_embedding.zero_()
            tower.proj.weight.copy_(torch.eye(32))
        kernel = torch.zeros(32, 3, 4, 4)
        kernel[:, 0] = u[:, None, None] / 16
        kernel[:, 1] = -u[:, None, None] / 16
        model.visual.patch_embed.weight.copy_(kernel)
        model.text.token_embedding.weight.copy_(u.expand(tokenizer.vocab_size, 32))
    return save_model_dir(tmp_path_factory.mktemp("red_finder"), model, tokenizer)


def run_cli(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_explain_cli_real_tiny_model_wide_image(red_finder_dir, tmp_path, capsys):
    """24 × 16 image: the model sees the centre 16 × 16 (x 4–20) at its own 16 px (no resize, so
    no filter bleeds red into grey patches); the red block fills patch columns 2–3, rows 1–2
    (input x 8–16, y 4–12), so the box is exactly the block, shifted by the crop."""
    image = Image.new("RGB", (24, 16), GREY)
    image.paste(RED, (12, 4, 20, 12))
    image.paste((20, 200, 20), (0, 0, 4, 16))  # green outside the model's view: never drawn on
    image.save(tmp_path / "wide.png")
    out = tmp_path / "maps" / "red.png"
    code, stdout, _ = run_cli(
        [
            "explain",
            "--model",
            str(red_finder_dir),
            "--image",
            str(tmp_path / "wide.png"),
            "--text",
            "the red square",
            "--out",
            str(out),
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 0
    printed = json.loads(stdout)
    assert printed["box"] == [12, 4, 20, 12]
    assert contains(printed["box"], tuple(printed["peak"]))
    assert printed["max_similarity"] == pytest.approx(1.0, abs=1e-4)
    drawn = Image.open(out)
    assert drawn.size == (24, 16) and drawn.mode == "RGB"
    assert drawn.getpixel((1, 8)) == (20, 200, 20)  # outside the crop: untouched
    assert drawn.getpixel((6, 14)) != GREY  # inside the crop: the heat map is blended in


def test_eval_grounding_cli_on_emoji_scenes(red_finder_dir, tmp_path, capsys):
    from clipforge.data.builtin.emoji_scenes import EmojiScenesSource

    out_json = tmp_path / "g.json"
    code, stdout, _ = run_cli(
        [
            "eval",
            "grounding",
            "--model",
            str(red_finder_dir),
            "--data",
            "builtin:emoji-scenes?split=val",
            "--limit",
            "3",
            "--json",
            str(out_json),
            "--workers",
            "0",
            "--no-progress",
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 0 and "pointing_game" in stdout
    result = json.loads(out_json.read_text())
    assert result["task"] == "grounding" and result["dataset"] == "builtin:emoji-scenes?split=val"
    scenes = EmojiScenesSource("val")
    boxes = [box for i in range(3) for box in scenes[i].metadata["boxes"]]
    assert result["num_samples"] == 3 and result["num_regions"] == len(boxes)
    centre_hits = sum(contains(box, (112, 112)) for box in boxes)
    metrics = result["metrics"]
    assert metrics["pointing_game_center_baseline"] == pytest.approx(centre_hits / len(boxes))
    for name in ("pointing_game", "box_iou50", "box_mean_iou"):
        assert 0.0 <= metrics[name] <= 1.0


def test_grounding_is_a_registered_evaluator():
    assert "grounding" in EVALUATORS
    evaluator = EVALUATORS.get("grounding")
    assert evaluator.config_class is GroundingConfig
    assert evaluator.config_from_options({"threshold": 0.3}).threshold == 0.3


@pytest.mark.parametrize("case", ["missing_image", "empty_text", "no_boxes", "threshold"])
def test_bad_input_one_line_errors(case, red_finder_dir, tmp_path, capsys):
    Image.new("RGB", (16, 16), RED).save(tmp_path / "ok.png")
    explain = ["explain", "--model", str(red_finder_dir), "--out", str(tmp_path / "o.png")]
    argv, named = {
        "missing_image": (
            [*explain, "--image", str(tmp_path / "nope.png"), "--text", "a"],
            str(tmp_path / "nope.png"),
        ),
        "empty_text": ([*explain, "--image", str(tmp_path / "ok.png"), "--text", " "], "--text"),
        "no_boxes": (
            [
                "eval",
                "grounding",
                "--model",
                str(red_finder_dir),
                "--data",
                "builtin:emoji?split=val",
                "--workers",
                "0",
                "--no-progress",
            ],
            "builtin:emoji?split=val: has no region boxes",
        ),
        "threshold": (
            [*explain, "--image", str(tmp_path / "ok.png"), "--text", "a", "--threshold", "0"],
            "threshold",
        ),
    }[case]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and named in err
    assert err.startswith(f"clipforge {argv[0]}: error:") and err.count("\n") == 1
    assert not (tmp_path / "o.png").exists()
