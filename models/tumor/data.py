"""Training patches from generated slides, and the tf.data pipeline that augments them.

Patches are labelled by their centre, the part of the patch a heatmap cell reports:
tumor when the centre lies at least `stride / 4` inside a lesion, normal when the whole
`stride` x `stride` centre window is clear of tumor. Patches in between are never drawn,
so lesion borders do not teach the model contradictions.

Tumor patches are drawn lesion by lesion (every lesion equally often, so micrometastases
count as much as large ones); normal patches uniformly over normal tissue, and after
hard-negative mining partly from the normal patches the model scored highest.
Slides are read through OpenSlide, as `scan` reads them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf
from scipy import ndimage
from skimage.color import hed_from_rgb, rgb_from_hed

from models.tumor import slide_io
from models.tumor.slides import SlideRecord
from models.tumor.tissue import tissue_mask

COORDINATE_STEP = 4  # candidate centres are kept on a grid this fine (px)
_HED_FROM_RGB = tf.constant(hed_from_rgb, tf.float32)
_RGB_FROM_HED = tf.constant(rgb_from_hed, tf.float32)


@dataclasses.dataclass
class TrainingSlide:
    """One slide in memory, padded by half a patch of glass, with its candidate centres."""

    name: str
    rgb: np.ndarray  # uint8 [H + patch, W + patch, 3]
    lesion_centres: list[np.ndarray]  # per lesion: int [K, 2] (row, col), level 0
    normal_centres: np.ndarray  # int [M, 2]
    grid_normal_centres: np.ndarray  # int [G, 2]: scan-grid cells that are normal tissue
    pad: int


def load_training_slide(record: SlideRecord, patch_size: int, stride: int) -> TrainingSlide:
    """Read a generated slide through OpenSlide and find its tumor and normal centres."""
    pad = patch_size // 2
    with slide_io.open_slide(record.path) as slide:
        width, height = slide.dimensions
        rgb = slide_io.read_region(slide, -pad, -pad, width + 2 * pad, height + 2 * pad)
    labels = record.labels()
    tumor = labels > 0
    inside = ndimage.distance_transform_edt(tumor) > stride / 4
    clear = ndimage.distance_transform_edt(~tumor) > stride * 0.75
    normal = clear & tissue_mask(rgb[pad : pad + height, pad : pad + width])
    step = COORDINATE_STEP
    lesions = []
    for label in range(1, int(labels.max()) + 1):
        centres = np.argwhere((labels == label)[::step, ::step] & inside[::step, ::step]) * step
        if len(centres):
            lesions.append(centres)
    cells = np.arange(stride // 2, height, stride), np.arange(stride // 2, width, stride)
    grid = np.stack(np.meshgrid(*cells, indexing="ij"), axis=-1).reshape(-1, 2)
    return TrainingSlide(
        name=record.name,
        rgb=rgb,
        lesion_centres=lesions,
        normal_centres=np.argwhere(normal[::step, ::step]) * step,
        grid_normal_centres=grid[normal[grid[:, 0], grid[:, 1]]],
        pad=pad,
    )


class PatchSampler:
    """Draws labelled patch batches from training slides; `hard_negatives` can be replaced
    between draws (hard-negative mining)."""

    def __init__(self, slides: Sequence[TrainingSlide], patch_size: int, seed: int = 0) -> None:
        self.slides = list(slides)
        self.patch_size = patch_size
        self.rng = np.random.default_rng(seed)
        self.lesions = [(i, c) for i, s in enumerate(self.slides) for c in s.lesion_centres]
        if not self.lesions:
            raise ValueError("the training slides hold no lesion to learn from")
        normal_counts = np.array([len(s.normal_centres) for s in self.slides], np.float64)
        if not normal_counts.sum():
            raise ValueError("the training slides hold no normal tissue")
        self.normal_weights = normal_counts / normal_counts.sum()
        self.hard_negatives = np.zeros((0, 3), np.int64)  # (slide, row, col)

    def patch(self, slide_index: int, row: int, col: int) -> np.ndarray:
        """uint8 [P, P, 3] centred on level-0 (row, col) of slide `slide_index`."""
        slide = self.slides[slide_index]
        top, left = row + slide.pad - self.patch_size // 2, col + slide.pad - self.patch_size // 2
        return slide.rgb[top : top + self.patch_size, left : left + self.patch_size]

    def batch(self, size: int, hard_fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 [size, P, P, 3], float32 labels [size]): half tumor, half normal, of which
        `hard_fraction` from the mined hard negatives (when there are any)."""
        tumor = size // 2
        hard = round((size - tumor) * hard_fraction) if len(self.hard_negatives) else 0
        centres = [self._tumor_centre() for _ in range(tumor)]
        centres += [self._normal_centre() for _ in range(size - tumor - hard)]
        picks = self.rng.integers(0, len(self.hard_negatives), hard)
        centres += [tuple(int(v) for v in cell) for cell in self.hard_negatives[picks]]
        patches = np.stack([self.patch(*centre) for centre in centres])
        labels = np.array([1.0] * tumor + [0.0] * (size - tumor), np.float32)
        return patches, labels

    def grid_normal_cells(self, limit: int) -> np.ndarray:
        """Up to `limit` random (slide, row, col) normal scan-grid cells: the mining pool."""
        cells = np.concatenate(
            [
                np.column_stack([np.full(len(s.grid_normal_centres), i), s.grid_normal_centres])
                for i, s in enumerate(self.slides)
            ]
        )
        if len(cells) > limit:
            cells = cells[self.rng.choice(len(cells), limit, replace=False)]
        return cells

    def _tumor_centre(self) -> tuple[int, int, int]:
        slide_index, centres = self.lesions[self.rng.integers(len(self.lesions))]
        row, col = centres[self.rng.integers(len(centres))] + self.rng.integers(
            0, COORDINATE_STEP, 2
        )
        return slide_index, int(row), int(col)

    def _normal_centre(self) -> tuple[int, int, int]:
        slide_index = int(self.rng.choice(len(self.slides), p=self.normal_weights))
        centres = self.slides[slide_index].normal_centres
        row, col = centres[self.rng.integers(len(centres))]
        return slide_index, int(row), int(col)


def batches(sampler: PatchSampler, batch_size: int, hard_fraction: float) -> tf.data.Dataset:
    """Endless augmented (float32 [B, P, P, 3] in [0, 1], labels [B]) batches."""

    def draw() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            yield sampler.batch(batch_size, hard_fraction)

    size = sampler.patch_size
    dataset = tf.data.Dataset.from_generator(
        draw,
        output_signature=(
            tf.TensorSpec([batch_size, size, size, 3], tf.uint8),
            tf.TensorSpec([batch_size], tf.float32),
        ),
    )
    return (
        dataset.unbatch()
        .map(lambda patch, label: (augment(patch), label), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def augment(patch: tf.Tensor) -> tf.Tensor:
    """uint8 [P, P, 3] -> float32 in [0, 1]: one of the 8 symmetries of the square, HED
    stain jitter (Tellez et al. 2018), then brightness, contrast, saturation and hue as in
    the Camelyon16 paper (Liu et al. 2017). Tissue has no orientation; labs stain differently."""
    image = tf.cast(patch, tf.float32) / 255.0
    image = tf.image.rot90(image, k=tf.random.uniform([], 0, 4, tf.int32))
    image = tf.image.random_flip_left_right(image)
    image = _hed_jitter(image, scale=0.1, shift=0.05)
    image = tf.image.random_brightness(image, 0.12)
    image = tf.image.random_contrast(image, 0.75, 1.25)
    image = tf.image.random_saturation(image, 0.75, 1.25)
    image = tf.image.random_hue(image, 0.04)
    return tf.clip_by_value(image, 0.0, 1.0)


def _hed_jitter(image: tf.Tensor, scale: float, shift: float) -> tf.Tensor:
    """Scale each of the H, E and D stain amounts by 1 +- `scale` and shift them by up to
    `shift` optical density."""
    density = -tf.math.log(tf.maximum(image, 1e-3))
    stains = tf.tensordot(density, _HED_FROM_RGB, axes=1)
    stains = stains * tf.random.uniform([3], 1 - scale, 1 + scale) + tf.random.uniform(
        [3], -shift, shift
    )
    return tf.exp(-tf.tensordot(stains, _RGB_FROM_HED, axes=1))
