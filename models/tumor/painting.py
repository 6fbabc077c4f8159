"""Cells and artefacts painted into a slide, in stain space (see `stain`).

Tumor (metastatic carcinoma), lymphoid aggregates and histiocyte clusters are all painted
as sheets of nuclei by `paint_cells`, differing only in their `CellStyle`: tumor nuclei are
large, crowded, pleomorphic, irregular and dark, some vesicular with nucleoli; lymphocytes
are small, round, uniform and darker still; histiocytes have large but pale, oval nuclei,
spread out in pink cytoplasm. A darkness threshold fires on tumor, lymphocytes and tissue
folds (`paint_fold`) alike; telling them apart takes the nuclei's size, shape and density.

Levels are relative to the slide's own stains (`StainStats`), so painted cells follow the
background's staining before the slide-wide stain jitter is applied.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from skimage.draw import polygon as draw_polygon

Range = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class StainStats:
    """Percentiles of the background tissue's stain amounts that painting is relative to."""

    h_median: float
    h_dark: float  # 97th percentile: the hematoxylin of the darkest normal nuclei
    e_median: float

    @classmethod
    def of(cls, hed: np.ndarray, tissue: np.ndarray) -> StainStats:
        h, e = hed[..., 0][tissue], hed[..., 1][tissue]
        return cls(float(np.median(h)), float(np.percentile(h, 97)), float(np.median(e)))


@dataclasses.dataclass(frozen=True)
class CellStyle:
    """How one population of cells looks; every range is sampled per region or per cell."""

    nucleus_radius: Range  # px at 0.5 µm/px, before the slide's scale
    size_spread: float  # per-nucleus radius varies by this factor either way
    spacing: Range  # centre-to-centre distance, in mean radii
    aspect: Range
    irregularity: Range  # amplitude of the outline's wobble, relative to the radius
    vesicular_fraction: float  # nuclei with pale chromatin and a dark rim
    nucleus_h: Range  # in multiples of StainStats.h_dark
    vesicular_inner: Range  # a vesicular nucleus' inside, relative to its rim
    nucleolus_probability: float
    cytoplasm_h: Range  # in multiples of StainStats.h_median
    cytoplasm_e: Range  # in multiples of StainStats.e_median
    cover: Range  # how much the painted cells replace the tissue underneath


TUMOR = CellStyle(
    nucleus_radius=(7.0, 13.0),
    size_spread=1.35,
    spacing=(2.6, 3.4),
    aspect=(1.0, 1.7),
    irregularity=(0.05, 0.2),
    vesicular_fraction=0.35,
    nucleus_h=(0.7, 1.3),
    vesicular_inner=(0.45, 0.75),
    nucleolus_probability=0.5,
    cytoplasm_h=(0.6, 1.4),
    cytoplasm_e=(1.0, 1.9),
    cover=(0.65, 1.0),
)
LYMPHOID = CellStyle(
    nucleus_radius=(3.0, 4.5),
    size_spread=1.1,
    spacing=(2.1, 2.8),
    aspect=(1.0, 1.2),
    irregularity=(0.01, 0.06),
    vesicular_fraction=0.0,
    nucleus_h=(1.0, 1.5),
    vesicular_inner=(1.0, 1.0),
    nucleolus_probability=0.0,
    cytoplasm_h=(0.6, 1.3),
    cytoplasm_e=(0.4, 1.0),
    cover=(0.7, 0.95),
)
HISTIOCYTES = CellStyle(
    nucleus_radius=(6.0, 9.5),
    size_spread=1.2,
    spacing=(3.6, 4.8),
    aspect=(1.2, 2.0),
    irregularity=(0.08, 0.2),
    vesicular_fraction=1.0,
    nucleus_h=(0.4, 0.7),
    vesicular_inner=(0.5, 0.8),
    nucleolus_probability=0.1,
    cytoplasm_h=(0.3, 0.8),
    cytoplasm_e=(1.0, 1.7),
    cover=(0.7, 0.95),
)


def irregular_polygon(
    center: tuple[float, float],
    radius: float,
    rng: np.random.Generator,
    irregularity: float = 0.2,
    aspect: float = 1.0,
    vertices: int = 40,
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of a closed outline: an ellipse of mean radius `radius` whose radius
    wobbles with random low harmonics, at a random angle."""
    theta = np.linspace(0.0, 2.0 * np.pi, vertices, endpoint=False)
    wobble = np.zeros_like(theta)
    for harmonic in range(2, 7):
        amplitude = rng.normal(0.0, irregularity / harmonic**0.7)
        wobble += amplitude * np.cos(harmonic * theta + rng.uniform(0, 2 * np.pi))
    r = radius * np.clip(1.0 + wobble, 0.35, None)
    x, y = r * np.cos(theta) * np.sqrt(aspect), r * np.sin(theta) / np.sqrt(aspect)
    angle = rng.uniform(0, np.pi)
    rows = center[0] + x * np.sin(angle) + y * np.cos(angle)
    cols = center[1] + x * np.cos(angle) - y * np.sin(angle)
    return rows, cols


def polygon_mask(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """bool [*shape]: the filled outline (PIL's scanline fill, fast for large regions)."""
    image = Image.new("1", (shape[1], shape[0]))
    ImageDraw.Draw(image).polygon(list(zip(cols.tolist(), rows.tolist(), strict=True)), fill=1)
    return np.array(image)


def smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit standard deviation."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return noise / max(float(noise.std()), 1e-6)


def paint_cells(
    hed: np.ndarray,
    region: np.ndarray,
    style: CellStyle,
    stats: StainStats,
    rng: np.random.Generator,
    scale: float = 1.0,
) -> None:
    """Fill `region` (bool, same [H, W] window as `hed`) with cells of `style`, in place."""
    shape = region.shape
    radius = rng.uniform(*style.nucleus_radius) * scale
    spacing = radius * rng.uniform(*style.spacing)
    nucleus_h = rng.uniform(*style.nucleus_h) * stats.h_dark
    nuclei_h = np.zeros(shape, np.float32)
    nuclei = np.zeros(shape, np.float32)
    for center in _jittered_lattice(shape, spacing, rng):
        if not region[int(center[0]), int(center[1])]:
            continue
        size = radius * np.exp(rng.uniform(-1, 1) * np.log(style.size_spread))
        level = nucleus_h * rng.uniform(0.85, 1.15)
        rows, cols = irregular_polygon(
            center, size, rng, rng.uniform(*style.irregularity), rng.uniform(*style.aspect), 24
        )
        _draw(nuclei_h, nuclei, rows, cols, level)
        if rng.random() < style.vesicular_fraction:
            inner = 0.68
            rows_in = center[0] + (rows - center[0]) * inner
            cols_in = center[1] + (cols - center[1]) * inner
            _draw(nuclei_h, nuclei, rows_in, cols_in, level * rng.uniform(*style.vesicular_inner))
            if rng.random() < style.nucleolus_probability:
                rows_n, cols_n = irregular_polygon(center, max(1.2, 0.2 * size), rng, 0.05)
                _draw(nuclei_h, nuclei, rows_n, cols_n, level * 1.3)
    chromatin = 1.0 + 0.2 * smooth_noise(shape, 0.8, rng)
    nuclei_h = ndimage.gaussian_filter(nuclei_h * chromatin, 0.6)
    nuclei = ndimage.gaussian_filter(nuclei, 0.6)

    texture = 1.0 + 0.25 * smooth_noise(shape, 4.0, rng)
    cytoplasm_h = rng.uniform(*style.cytoplasm_h) * stats.h_median * texture
    cytoplasm_e = rng.uniform(*style.cytoplasm_e) * stats.e_median * texture
    painted = hed.copy()
    painted[..., 0] = cytoplasm_h * (1 - nuclei) + nuclei_h
    painted[..., 1] = cytoplasm_e * (1 - 0.4 * nuclei)
    blend_into(hed, painted, region, rng.uniform(*style.cover))


def paint_texture(
    hed: np.ndarray, region: np.ndarray, texture_hed: np.ndarray, stats: StainStats
) -> None:
    """Fill `region` with a real tissue texture (stain amounts, same window shape), its H and
    E brought halfway to the background's staining."""
    tissue = texture_hed[..., 0] > 0.01
    h_ratio = stats.h_median / max(float(np.median(texture_hed[..., 0][tissue])), 1e-3)
    e_ratio = stats.e_median / max(float(np.median(texture_hed[..., 1][tissue])), 1e-3)
    painted = texture_hed * np.array([h_ratio**0.5, e_ratio**0.5, 1.0], np.float32)
    blend_into(hed, painted, region, 1.0)


def paint_fold(hed: np.ndarray, region: np.ndarray, thickness: float) -> None:
    """A tissue fold: two layers of the same tissue, so every stain amount is multiplied."""
    blend_into(hed, hed * thickness, region, 1.0)


def blend_into(hed: np.ndarray, painted: np.ndarray, region: np.ndarray, cover: float) -> None:
    """hed <- painted inside `region` (soft 2 px edge, `cover` opacity), in place."""
    alpha = ndimage.gaussian_filter(region.astype(np.float32), 2.0) * cover
    hed += (painted - hed) * alpha[..., None]


def _jittered_lattice(
    shape: tuple[int, int], spacing: float, rng: np.random.Generator
) -> np.ndarray:
    """Cell centres: a hexagonal lattice at a random angle and offset, each point jittered
    by up to a quarter spacing, so cells pack densely without a visible grid."""
    half = np.hypot(*shape) / 2 + spacing
    steps = np.arange(-half, half, spacing)
    grid_x, grid_y = np.meshgrid(steps, steps * np.sqrt(3) / 2)
    grid_x = grid_x + (np.arange(len(steps))[:, None] % 2) * spacing / 2
    points = np.stack([grid_y.ravel(), grid_x.ravel()], axis=1)
    angle = rng.uniform(0, np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = points @ rotation.T + np.array(shape) / 2 + rng.uniform(0, spacing, 2)
    points += rng.uniform(-0.25, 0.25, points.shape) * spacing
    inside = (points >= 0).all(axis=1) & (points < np.array(shape) - 1).all(axis=1)
    return points[inside]


def _draw(
    field: np.ndarray, coverage: np.ndarray, rows: np.ndarray, cols: np.ndarray, level: float
) -> None:
    rr, cc = draw_polygon(rows, cols, field.shape)
    field[rr, cc] = level
    coverage[rr, cc] = 1.0
