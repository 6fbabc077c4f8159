"""Colour photographs for colourization, and the tf.data pipeline of training crops.

Photos come from `models.superres.data` (the same discovery and the same by-scene
held-out split, so a scene held out there is held out here). Grayscale photos are
dropped from both splits: they would teach the network that the world is gray, and
scoring on them would reward the gray baseline for free.

Training examples follow inference: inference squeezes a whole photo to about
`refine_side`^2 pixels; training takes a random crop (8% to all of a photo,
about square, flipped half the time) resized to `refine_side` x `refine_side`, so
objects keep their shape as inference, which keeps the photo's aspect, sees them.
From it come the stage 1 input (L of the crop at half size), its target (ab averaged
over 8x8 cells) and the stage 2 example (a random `refine_crop` patch of L and the true
low-resolution ab upsampled to it, as PixColor trains its refinement on true colour).
"""

from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from models.colorize.lab import rgb_to_lab
from models.superres import data as photos

MIN_MEAN_CHROMA = 2.0  # mean sqrt(a^2 + b^2); stacked grayscale photos have exactly 0
LOW_RES_FACTOR = 8  # low-resolution colour is 1/8 of the refinement resolution
_MIN_CROP_AREA, _MAX_ASPECT_CHANGE = 0.08, 4.0 / 3.0


def colour_photos(
    debian_roots: photos.DebianRoots | None = photos.DEBIAN_ROOTS,
) -> tuple[list[tuple[photos.Photo, np.ndarray]], list[tuple[photos.Photo, np.ndarray]]]:
    """(train, held_out) colour photos with their uint8 RGB pixels, split by scene."""
    train, heldout = photos.split_photos(photos.discover_photos(debian_roots))
    return _loaded_colour(train), _loaded_colour(heldout)


def mean_chroma(image: np.ndarray) -> float:
    """Mean chroma sqrt(a^2 + b^2) of a uint8 RGB image (0 for gray)."""
    lab = rgb_to_lab(np.asarray(image[::4, ::4], np.float32) / 255.0)
    return float(tf.reduce_mean(tf.norm(lab[..., 1:], axis=-1)))


def mean_ab(images: Sequence[np.ndarray]) -> tuple[float, float]:
    """Pixel-weighted mean (a, b) of uint8 RGB images: the global mean-chroma baseline."""
    sums, count = np.zeros(2), 0
    for image in images:
        ab = rgb_to_lab(np.asarray(image, np.float32) / 255.0)[..., 1:].numpy()
        sums += ab.reshape(-1, 2).sum(axis=0, dtype=np.float64)
        count += ab.shape[0] * ab.shape[1]
    return float(sums[0] / count), float(sums[1] / count)


def training_batches(
    images: Sequence[np.ndarray],
    refine_side: int,
    refine_crop: int,
    batch_size: int,
    seed: int = 0,
) -> tf.data.Dataset:
    """Endless batches of dicts: `stage1_l` [B, S/2, S/2, 1], `low_ab` [B, S/8, S/8, 2],
    `refine_l` [B, C, C, 1], `refine_coarse_ab` and `refine_ab` [B, C, C, 2] (S =
    `refine_side`, C = `refine_crop`), identical for a given seed."""
    if refine_side % (2 * LOW_RES_FACTOR) or not 0 < refine_crop <= refine_side:
        raise ValueError(
            f"`refine_side` must be a multiple of {2 * LOW_RES_FACTOR} and `refine_crop` in "
            f"(0, refine_side]. Received: refine_side={refine_side}, refine_crop={refine_crop}"
        )
    if not images:
        raise ValueError("`images` must hold at least one image. Received: images=[]")
    # Crops never need more than twice the working resolution: shrink once, up front.
    sources = [_shrink(image, 2 * refine_side) for image in images]

    def crops() -> Iterator[np.ndarray]:
        rng = np.random.default_rng(seed)
        while True:
            yield np.stack(
                [
                    _random_resized_crop(sources[rng.integers(len(sources))], refine_side, rng)
                    for _ in range(batch_size)
                ]
            )

    spec = tf.TensorSpec([batch_size, refine_side, refine_side, 3], tf.uint8)
    rgb_batches = tf.data.Dataset.from_generator(crops, output_signature=spec)
    crop_seeds = tf.data.Dataset.random(seed=seed).batch(2)

    def to_examples(rgb: tf.Tensor, crop_seed: tf.Tensor) -> dict[str, tf.Tensor]:
        rgb = tf.cast(rgb, tf.float32) / 255.0
        # Lab is costly per pixel: convert only what each stage sees (the half-size image
        # for stage 1, the patch for stage 2), as `Colorizer` does at inference.
        half = rgb_to_lab(tf.nn.avg_pool2d(rgb, 2, 2, "VALID"))
        low_ab = tf.nn.avg_pool2d(half[..., 1:], LOW_RES_FACTOR // 2, LOW_RES_FACTOR // 2, "VALID")
        coarse_ab = tf.image.resize(low_ab, [refine_side, refine_side], "bilinear")
        patch = tf.image.stateless_random_crop(
            tf.concat([rgb, coarse_ab], axis=-1),
            [batch_size, refine_crop, refine_crop, 5],
            seed=crop_seed,
        )
        patch_lab = rgb_to_lab(patch[..., :3])
        return {
            "stage1_l": half[..., :1],
            "low_ab": low_ab,
            "refine_l": patch_lab[..., :1],
            "refine_coarse_ab": patch[..., 3:],
            "refine_ab": patch_lab[..., 1:],
        }

    return (
        tf.data.Dataset.zip(rgb_batches, crop_seeds)
        .map(to_examples, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def _loaded_colour(
    selected: Sequence[photos.Photo],
) -> list[tuple[photos.Photo, np.ndarray]]:
    loaded = [(photo, photo.load()) for photo in selected]
    return [(photo, image) for photo, image in loaded if mean_chroma(image) >= MIN_MEAN_CHROMA]


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    ratio = max_side / max(height, width)
    if ratio >= 1.0:
        return image
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def _random_resized_crop(image: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    area = rng.uniform(_MIN_CROP_AREA, 1.0) * height * width
    aspect = np.exp(rng.uniform(-np.log(_MAX_ASPECT_CHANGE), np.log(_MAX_ASPECT_CHANGE)))
    crop_w = int(min(width, round(np.sqrt(area * aspect))))
    crop_h = int(min(height, round(np.sqrt(area / aspect))))
    top = rng.integers(height - crop_h + 1)
    left = rng.integers(width - crop_w + 1)
    crop = Image.fromarray(image[top : top + crop_h, left : left + crop_w])
    if rng.integers(2):
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(crop.resize((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0))
