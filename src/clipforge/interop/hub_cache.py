"""``hf-hub:org/name`` → a snapshot folder of the local Hugging Face hub cache, never the network.

OpenCLIP names hub models ``hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K`` and downloads them into
the cache that ``huggingface_hub`` shares with every tool::

    $HF_HUB_CACHE  (else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
                    else ~/.cache/huggingface/hub)
      models--{org}--{name}/refs/{revision}         the commit hash a branch or tag points to
      models--{org}--{name}/snapshots/{hash}/…      the files at that commit

clipforge reads what is already there (revision ``main`` unless ``hf-hub:org/name@revision``;
the newest snapshot when no ref was recorded) and says how to fetch it when it is not.
"""

from __future__ import annotations

import os
from pathlib import Path

HUB_PREFIX = "hf-hub:"


def is_hub_name(ref: object) -> bool:
    return isinstance(ref, str) and ref.startswith(HUB_PREFIX)


def hub_cache_dir() -> Path:
    """The hub cache folder ``huggingface_hub`` would use, from the same environment variables."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "huggingface" / "hub"


def resolve_hub_name(ref: str, needed: str) -> Path:
    """The cached snapshot folder of ``hf-hub:org/name[@revision]`` holding the file ``needed``.

    Raises ``FileNotFoundError`` naming the reference and the cache looked in."""
    repo_id, _, revision = ref[len(HUB_PREFIX) :].partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"{ref}: expected hf-hub:ORG/NAME")
    cache = hub_cache_dir()
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    revision = revision or "main"
    snapshots = repo / "snapshots"
    ref_file = repo / "refs" / revision
    candidates: list[Path] = []
    if ref_file.is_file():
        candidates.append(snapshots / ref_file.read_text().strip())
    elif (snapshots / revision).is_dir():  # a commit hash given directly
        candidates.append(snapshots / revision)
    elif revision == "main" and snapshots.is_dir():
        candidates += sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for snapshot in candidates:
        if (snapshot / needed).is_file():
            return snapshot
    raise FileNotFoundError(
        f"{ref}: no {needed} for revision {revision!r} in the local Hugging Face cache {cache} "
        f"(clipforge does not download; fetch it first, e.g. `hf download {repo_id}`, "
        "or set HF_HUB_CACHE / HF_HOME)"
    )
