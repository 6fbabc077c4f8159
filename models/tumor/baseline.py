"""The non-learned baseline: a colour/darkness threshold detector.

A patch's score is the share of its pixels that are both dark (gray level below
`MAX_GRAY`) and strongly stained (HSV saturation above `MIN_SATURATION`): metastases are
sheets of crowded, dark, purple cells, so that share is the obvious rule. It runs through
the same scan (heatmap, non-maximum suppression, slide score) as the model, so only the
patch scorer differs. The two thresholds are the best of a small grid (gray 160-205,
saturation 0-0.25; hematoxylin-amount thresholds did worse) at telling tumor from normal
patches of the training slides: patch ROC AUC 0.71 there.
"""

from __future__ import annotations

import numpy as np

from models.tumor.tissue import saturation

MAX_GRAY = 190.0
MIN_SATURATION = 0.25


def darkness_scores(patches: np.ndarray) -> np.ndarray:
    """uint8 [N, P, P, 3] -> float32 [N] in [0, 1]: share of dark, strongly stained pixels."""
    dark = patches.mean(axis=-1) < MAX_GRAY
    stained = saturation(patches) > MIN_SATURATION
    return (dark & stained).mean(axis=(1, 2)).astype(np.float32)
