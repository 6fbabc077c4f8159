"""The heatmap overlay PNG: the slide's thumbnail, tumor probability painted over it
(transparent at 0, yellow to red towards 1), detections circled and numbered by rank, and
the ground-truth lesion outlines in green when they are known."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from skimage.segmentation import find_boundaries

from models.tumor import slide_io
from models.tumor.scan import Detection, Heatmap

MAX_SIDE = 1024
MIN_SHOWN_PROBABILITY = 0.1
OPACITY = 0.6


def heatmap_overlay(
    slide_path: Path | str,
    heatmap: Heatmap,
    detections: Sequence[Detection] = (),
    labels: np.ndarray | None = None,
    min_detection_probability: float = 0.5,
) -> Image.Image:
    """An RGB image at most `MAX_SIDE` px a side; `labels` is the level-0 lesion mask."""
    with slide_io.open_slide(slide_path) as slide:
        thumbnail = slide.get_thumbnail((MAX_SIDE, MAX_SIDE)).convert("RGB")
    ratio = thumbnail.width / heatmap.width
    probability = np.asarray(
        Image.fromarray(heatmap.probabilities).resize(thumbnail.size, Image.Resampling.BILINEAR)
    )
    color = np.stack(
        [np.full_like(probability, 255.0), 255.0 * (1.0 - probability), np.zeros_like(probability)],
        axis=-1,
    )
    alpha = np.where(probability >= MIN_SHOWN_PROBABILITY, OPACITY * probability, 0.0)[..., None]
    blended = np.asarray(thumbnail, np.float32) * (1 - alpha) + color * alpha
    image = Image.fromarray(np.round(blended).astype(np.uint8))
    if labels is not None:
        small = Image.fromarray(labels).resize(thumbnail.size, Image.Resampling.NEAREST)
        outline = find_boundaries(ndimage.binary_fill_holes(np.asarray(small) > 0), mode="inner")
        pixels = np.array(image)
        pixels[outline] = (0, 160, 0)
        image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    shown = [d for d in detections if d.probability >= min_detection_probability]
    for rank, detection in enumerate(shown, start=1):
        x, y = detection.x * ratio, detection.y * ratio
        radius = max(6.0, heatmap.stride * ratio * 1.5)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=(0, 0, 255), width=2)
        draw.text(
            (x + radius + 2, y - radius), f"{rank}: {detection.probability:.2f}", fill=(0, 0, 160)
        )
    return image
