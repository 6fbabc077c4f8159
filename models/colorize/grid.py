"""The picture a person looks at: one row per photo (gray input, colourings, truth)."""

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

CELL_HEIGHT = 160
_LABEL_HEIGHT, _GAP = 18, 6


def image_grid(
    columns: Sequence[str],
    rows: Sequence[Sequence[np.ndarray | None]],
    cell_height: int = CELL_HEIGHT,
) -> Image.Image:
    """uint8 RGB images in a labelled grid; `None` leaves a cell empty (a gray photo has no
    truth). Every cell is scaled to `cell_height`, keeping its aspect."""
    if not rows or any(len(row) != len(columns) for row in rows):
        raise ValueError(
            f"every row needs one image per column ({len(columns)}). "
            f"Received: rows of lengths {[len(row) for row in rows]}"
        )
    widths = [
        max(_scaled_width(image, cell_height) for image in column if image is not None)
        if any(image is not None for image in column)
        else cell_height
        for column in zip(*rows, strict=True)
    ]
    lefts = np.concatenate([[0], np.cumsum([w + _GAP for w in widths])])
    canvas = Image.new(
        "RGB",
        (int(lefts[-1] - _GAP), _LABEL_HEIGHT + len(rows) * (cell_height + _GAP) - _GAP),
        "white",
    )
    draw = ImageDraw.Draw(canvas)
    for left, label in zip(lefts, columns, strict=False):
        draw.text((int(left) + 4, 3), label, fill="black")
    for index, row in enumerate(rows):
        top = _LABEL_HEIGHT + index * (cell_height + _GAP)
        for left, image in zip(lefts, row, strict=False):
            if image is not None:
                cell = Image.fromarray(image).resize(
                    (_scaled_width(image, cell_height), cell_height), Image.Resampling.LANCZOS
                )
                canvas.paste(cell, (int(left), top))
    return canvas


def _scaled_width(image: np.ndarray, height: int) -> int:
    return max(1, round(image.shape[1] * height / image.shape[0]))
