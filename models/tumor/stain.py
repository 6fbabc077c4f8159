"""Stain amounts in scikit-image's HED colour space (Ruifrok & Johnston), exactly invertible.

`skimage.color.rgb2hed` clips negative stain amounts, so its round trip changes every colour
outside the stain cone (glass, ink). These maps use the same matrices and units without the
clip: untouched pixels survive painting unchanged, and stain variation is a linear change
of the H, E and D amounts (Tellez et al. 2018, "HED jitter").
"""

from __future__ import annotations

import numpy as np
from skimage.color import hed_from_rgb, rgb_from_hed

_LOG_ADJUST = np.float32(np.log(1e-6))  # skimage's unit: optical density / ln(1e6)
_HED_FROM_RGB = hed_from_rgb.astype(np.float32)
_RGB_FROM_HED = rgb_from_hed.astype(np.float32)


def rgb_to_hed(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB [..., 3] -> float32 H, E, D amounts [..., 3] (as rgb2hed, unclipped)."""
    intensity = np.maximum(rgb.astype(np.float32) / 255.0, 1e-6)
    return (np.log(intensity) / _LOG_ADJUST) @ _HED_FROM_RGB


def hed_to_rgb(hed: np.ndarray) -> np.ndarray:
    """Inverse of `rgb_to_hed`, rounded to uint8."""
    intensity = np.exp((hed.astype(np.float32) @ _RGB_FROM_HED) * _LOG_ADJUST)
    return np.clip(np.round(intensity * 255.0), 0, 255).astype(np.uint8)


def hematoxylin(rgb: np.ndarray) -> np.ndarray:
    """The H amount [...] of uint8 RGB [..., 3]: what makes nuclei dark blue-purple."""
    intensity = np.maximum(rgb.astype(np.float32) / 255.0, 1e-6)
    return (np.log(intensity) / _LOG_ADJUST) @ _HED_FROM_RGB[:, 0]
