"""Whole-slide inference: tissue grid -> patch probabilities -> heatmap -> detections.

As in Liu et al. (2017): the slide is tiled on a grid of `stride` px cells over the tissue
(Otsu mask, `tissue`), each cell is scored by the patch of `patch_size` px centred on it,
and lesions are read off the heatmap by non-maximum suppression: report the maximum, zero
everything within `radius_px`, repeat while the maximum is at least `min_probability`.
The slide's score is the heatmap's maximum.

Patches go to a `PatchScorer`: any function uint8 [N, P, P, 3] -> probabilities [N], so
the same scan runs the Keras model, the served model over gRPC, or the baseline.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from models.tumor import slide_io
from models.tumor.tissue import tissue_mask

PatchScorer = Callable[[np.ndarray], np.ndarray]
MIN_TISSUE_IN_CELL = 0.1
MAX_THUMBNAIL_PIXELS = 64_000_000


@dataclasses.dataclass(frozen=True)
class Detection:
    """A lesion candidate: its level-0 position (px) and probability."""

    x: float
    y: float
    probability: float


@dataclasses.dataclass
class Heatmap:
    """Per-cell probabilities; cell (i, j) covers level-0 pixels [i*stride, (i+1)*stride)."""

    probabilities: np.ndarray  # float32 [rows, cols], 0 where there is no tissue
    tissue: np.ndarray  # bool [rows, cols]
    stride: int
    patch_size: int
    width: int  # slide, level 0
    height: int

    def cell_centre(self, row: int, col: int) -> tuple[float, float]:
        """(x, y) in level-0 pixels."""
        return float((col + 0.5) * self.stride), float((row + 0.5) * self.stride)


@dataclasses.dataclass
class ScanResult:
    """What a scan of one slide found."""

    slide: str
    heatmap: Heatmap
    detections: list[Detection]
    slide_score: float
    patches: int
    seconds: float

    def to_json(self) -> dict:
        return {
            "slide": self.slide,
            "slide_score": self.slide_score,
            "detections": [dataclasses.asdict(d) for d in self.detections],
            "patches": self.patches,
            "seconds": round(self.seconds, 3),
            "stride": self.heatmap.stride,
            "patch_size": self.heatmap.patch_size,
            "width": self.heatmap.width,
            "height": self.heatmap.height,
        }


def tissue_cells(path: Path | str, stride: int) -> np.ndarray:
    """bool [rows, cols]: grid cells with tissue, from a thumbnail at about stride / 2."""
    with slide_io.open_slide(path) as slide:
        rows, cols = _grid_shape(*slide.dimensions, stride)
        thumbnail = _thumbnail(slide, cols * stride, rows * stride, stride / 2)
    mask = Image.fromarray(tissue_mask(thumbnail).astype(np.uint8) * 255)
    coverage = np.asarray(mask.resize((cols, rows), Image.Resampling.BOX)) / 255.0
    return coverage >= MIN_TISSUE_IN_CELL


def score_heatmap(
    path: Path | str,
    scorer: PatchScorer,
    patch_size: int,
    stride: int,
    batch_size: int = 256,
    on_batch: Callable[[int, int], None] | None = None,
) -> Heatmap:
    """Score every tissue cell of a slide; `on_batch(done, total)` after each batch."""
    tissue = tissue_cells(path, stride)
    cells = np.argwhere(tissue)
    probabilities = np.zeros(tissue.shape, np.float32)
    with slide_io.open_slide(path) as slide:
        width, height = slide.dimensions
        for start in range(0, len(cells), batch_size):
            batch = cells[start : start + batch_size]
            patches = _read_patches(slide, batch, patch_size, stride)
            scores = np.asarray(scorer(patches), np.float32).reshape(-1)
            if scores.shape != (len(batch),):
                raise ValueError(
                    f"the scorer returned {scores.shape[0]} scores for {len(batch)} patches"
                )
            probabilities[batch[:, 0], batch[:, 1]] = scores
            if on_batch is not None:
                on_batch(start + len(batch), len(cells))
    return Heatmap(probabilities, tissue, stride, patch_size, width, height)


def detect_lesions(
    heatmap: Heatmap,
    min_probability: float = 0.05,
    radius_px: float = 128.0,
    max_detections: int = 40,
) -> list[Detection]:
    """Non-maximum suppression on the heatmap, highest probability first."""
    remaining = heatmap.probabilities.astype(np.float32, copy=True)
    radius = radius_px / heatmap.stride  # in cells
    reach = int(radius)
    offsets = np.arange(-reach, reach + 1)
    disc = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2
    detections = []
    while len(detections) < max_detections and remaining.size:
        row, col = np.unravel_index(int(np.argmax(remaining)), remaining.shape)
        probability = float(remaining[row, col])
        if probability < min_probability:
            break
        detections.append(Detection(*heatmap.cell_centre(row, col), probability))
        top, left = row - reach, col - reach
        window = remaining[max(0, top) : row + reach + 1, max(0, left) : col + reach + 1]
        clipped = disc[max(0, -top) :, max(0, -left) :][: window.shape[0], : window.shape[1]]
        window[clipped] = 0.0
    return detections


def scan(
    path: Path | str,
    scorer: PatchScorer,
    patch_size: int,
    stride: int,
    batch_size: int = 256,
    on_batch: Callable[[int, int], None] | None = None,
    **detection_options: float,
) -> ScanResult:
    """Heatmap, detections and slide score of one slide."""
    started = time.perf_counter()
    heatmap = score_heatmap(path, scorer, patch_size, stride, batch_size, on_batch)
    detections = detect_lesions(heatmap, **detection_options)
    return ScanResult(
        slide=str(path),
        heatmap=heatmap,
        detections=detections,
        slide_score=float(heatmap.probabilities.max(initial=0.0)),
        patches=int(heatmap.tissue.sum()),
        seconds=time.perf_counter() - started,
    )


def _grid_shape(width: int, height: int, stride: int) -> tuple[int, int]:
    if stride < 1:
        raise ValueError(f"`stride` must be positive. Received: stride={stride}")
    return -(-height // stride), -(-width // stride)


def _thumbnail(slide, width_px: int, height_px: int, downsample: float) -> np.ndarray:
    """uint8 RGB of level-0 [0, width_px) x [0, height_px) (glass beyond the slide),
    `downsample` times smaller, read from the finest level it needs."""
    level = slide_io.level_for_downsample(slide, downsample)
    level_downsample = slide.level_downsamples[level]
    size = (int(np.ceil(width_px / level_downsample)), int(np.ceil(height_px / level_downsample)))
    if size[0] * size[1] > MAX_THUMBNAIL_PIXELS:
        raise ValueError(
            f"the slide has no pyramid level near downsample {downsample:g}; reading "
            f"{size[0]}x{size[1]} pixels for its tissue mask is too much"
        )
    pixels = slide_io.read_region(slide, 0, 0, *size, level)
    target = (round(width_px / downsample), round(height_px / downsample))
    return np.asarray(Image.fromarray(pixels).resize(target, Image.Resampling.BOX))


def _read_patches(slide, cells: np.ndarray, patch_size: int, stride: int) -> np.ndarray:
    """uint8 [N, P, P, 3] centred on `cells` (row, col), one region read per grid row."""
    offset = stride // 2 - patch_size // 2
    patches = np.empty((len(cells), patch_size, patch_size, 3), np.uint8)
    for row in np.unique(cells[:, 0]):
        in_row = np.flatnonzero(cells[:, 0] == row)
        first, last = cells[in_row, 1].min(), cells[in_row, 1].max()
        band = slide_io.read_region(
            slide,
            first * stride + offset,
            row * stride + offset,
            (last - first) * stride + patch_size,
            patch_size,
        )
        for index in in_row:
            left = (cells[index, 1] - first) * stride
            patches[index] = band[:, left : left + patch_size]
    return patches
