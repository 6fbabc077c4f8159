"""Where the tissue is: Otsu's threshold on colour saturation, as whole-slide pipelines do.

Glass is bright and grey, stained tissue is coloured, so saturation separates them better
than brightness (pale fat and dark ink fool a brightness threshold). The threshold is kept
within `SATURATION_RANGE`, so an image that is all glass or all tissue is not split in two.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

SATURATION_RANGE = (0.05, 0.25)


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation in [0, 1] of uint8 RGB [..., 3]."""
    rgb = rgb.astype(np.float32)
    brightest = rgb.max(axis=-1)
    return np.where(brightest > 0, (brightest - rgb.min(axis=-1)) / np.maximum(brightest, 1), 0)


def tissue_mask(rgb: np.ndarray, min_object_px: int = 64, fill_holes: bool = True) -> np.ndarray:
    """bool [H, W]: tissue pixels of uint8 RGB [H, W, 3], small specks removed; holes (lumens,
    gaps between folds) count as tissue unless `fill_holes=False`."""
    sat = saturation(rgb)
    threshold = float(np.clip(threshold_otsu(sat), *SATURATION_RANGE))
    mask = ndimage.binary_closing(sat > threshold, structure=np.ones((3, 3)), iterations=2)
    if fill_holes:
        mask = ndimage.binary_fill_holes(mask)
    labels, count = ndimage.label(mask)
    if count:
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
        mask = np.isin(labels, 1 + np.flatnonzero(sizes >= min_object_px))
    return mask
