"""8-bit image helpers shared by the demo and the CLI: PNG in and out, and the gray copy."""

import io

import numpy as np
import tensorflow as tf
from PIL import Image

from models.colorize.evaluate import with_chroma


def encode_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_rgb(encoded: bytes) -> np.ndarray:
    """Any image file PIL reads -> uint8 RGB [H, W, 3] (gray is stacked)."""
    with Image.open(io.BytesIO(encoded)) as image:
        return np.asarray(image.convert("RGB"))


def gray_copy(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> the uint8 gray image with the same CIELAB lightness: what the model sees
    of a photo, and the gray-copy baseline."""
    gray = with_chroma(tf.convert_to_tensor(rgb, tf.float32) / 255.0, (0.0, 0.0))
    return np.round(gray.numpy() * 255.0).astype(np.uint8)
