"""A 2-D picture of the joint embedding space: PCA of images and texts together.

Both modalities are projected on the two leading principal directions of their union (centred
on the joint mean), so the modality gap shows as two separate clouds (Liang et al. 2022, Fig. 1)
and a line joins some images to their captions. matplotlib is imported only when drawing.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..common.files import atomic_write

PLOTTED_PER_MODALITY = 2000  # points drawn per modality, at most (chosen with the seed)


def pca_2d(points: torch.Tensor) -> torch.Tensor:
    """[N, D] → [N, 2]: coordinates on the top two principal directions (each direction's
    sign fixed so its largest-magnitude entry is positive, for reproducible pictures)."""
    centred = points.double() - points.double().mean(dim=0)
    _, _, directions = torch.linalg.svd(centred, full_matrices=False)  # rows: directions
    top = directions[:2]  # [2, D]
    signs = torch.sign(top.gather(1, top.abs().argmax(dim=1, keepdim=True)))
    return (centred @ (top * signs).T).float()


def plot_projection(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    text_image_index: torch.Tensor,
    path: str | Path,
    title: str = "",
    pairs: int = 40,
    seed: int = 0,
) -> Path:
    """Scatter images (blue) and texts (orange) in 2-D; ``pairs`` (image, caption) lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coordinates = pca_2d(torch.cat([image_embeds, text_embeds]))
    images, texts = coordinates[: len(image_embeds)], coordinates[len(image_embeds) :]
    generator = torch.Generator().manual_seed(seed)
    shown_images = torch.randperm(len(images), generator=generator)[:PLOTTED_PER_MODALITY]
    shown_texts = torch.randperm(len(texts), generator=generator)[:PLOTTED_PER_MODALITY]
    joined = torch.randperm(len(texts), generator=generator)[:pairs]

    figure, axis = plt.subplots(figsize=(6, 6), dpi=110)
    for text in joined.tolist():
        image = int(text_image_index[text])
        axis.plot(
            [images[image, 0], texts[text, 0]],
            [images[image, 1], texts[text, 1]],
            color="0.6",
            linewidth=0.6,
            alpha=0.7,
            zorder=1,
        )
    text_x, text_y = texts[shown_texts].T
    image_x, image_y = images[shown_images].T
    axis.scatter(text_x, text_y, s=7, color="tab:orange", alpha=0.5, label="texts", zorder=2)
    axis.scatter(image_x, image_y, s=9, color="tab:blue", label="images", zorder=3)
    axis.set_xlabel("PC 1")
    axis.set_ylabel("PC 2")
    axis.set_title(title or "image and text embeddings (PCA)")
    axis.legend(loc="best")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    path = atomic_write(Path(path), figure.savefig)
    plt.close(figure)
    return path
