"""Super-resolution quality against the bicubic baseline, as the SR literature measures it.

PSNR and SSIM are computed on the luma (Y) channel of ITU-R BT.601 after cropping
`scale` pixels from every border, on 8-bit outputs (what a served PNG holds), for
whole held-out photos degraded with `data.degrade`.
"""

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models.superres import data
from models.superres.model import BicubicUpsample

# RGB in [0, 1] -> Y in [16, 235] / 255 (BT.601, as MATLAB's rgb2ycbcr). NumPy, not a tensor:
# a TensorFlow op at import time would stop multi-worker training (tfstack.distribute).
_BT601_LUMA = np.array([65.481, 128.553, 24.966], np.float32) / 255.0
_BT601_OFFSET = 16.0 / 255.0


def rgb_to_y(image: tf.Tensor) -> tf.Tensor:
    """[..., 3] RGB in [0, 1] -> [..., 1] BT.601 luma in [0, 1]."""
    image = tf.convert_to_tensor(image, tf.float32)
    return tf.tensordot(image, _BT601_LUMA, axes=1)[..., None] + _BT601_OFFSET


def psnr_y(a: tf.Tensor, b: tf.Tensor, border: int) -> float:
    """PSNR (dB) between two RGB images in [0, 1] on Y, ignoring `border` pixels."""
    return float(tf.reduce_mean(tf.image.psnr(*_luma_pair(a, b, border), max_val=1.0)))


def ssim_y(a: tf.Tensor, b: tf.Tensor, border: int) -> float:
    """SSIM between two RGB images in [0, 1] on Y, ignoring `border` pixels."""
    return float(tf.reduce_mean(tf.image.ssim(*_luma_pair(a, b, border), max_val=1.0)))


def upscale(model: keras.Model, low_res: tf.Tensor, passes: int = 1) -> tf.Tensor:
    """Run the model `passes` times (x4 = x2 twice, progressive upsampling as in LapSRN),
    quantizing to 8 bits between and after passes as the served PNGs are."""
    for _ in range(passes):
        low_res = _to_8bit(model(low_res, training=False))
    return low_res


def evaluate(model: keras.Model, images: Sequence[np.ndarray], scale: int, passes: int = 1) -> dict:
    """Means and per-image metrics of the model and of bicubic on full images.

    Each uint8 HR image is degraded by `scale ** passes`, then both the model (run
    `passes` times) and bicubic upscale the same low-resolution image; outputs are
    quantized to 8 bits before scoring.
    """
    if not images:
        raise ValueError("`images` must hold at least one image. Received: images=[]")
    factor = scale**passes
    upsample = BicubicUpsample(factor)
    per_image = []
    for image in images:
        hr = data.crop_to_multiple(tf.convert_to_tensor(image, tf.float32) / 255.0, factor)
        lr = data.degrade(hr, factor)[None]
        outputs = {"model": upscale(model, lr, passes)[0], "bicubic": _to_8bit(upsample(lr)[0])}
        scores = {}
        for name, output in outputs.items():
            scores[f"{name}_psnr"] = psnr_y(output, hr, factor)
            scores[f"{name}_ssim"] = ssim_y(output, hr, factor)
        per_image.append({"height": int(hr.shape[0]), "width": int(hr.shape[1]), **scores})
    means = {
        key: float(np.mean([scores[key] for scores in per_image]))
        for key in ("model_psnr", "model_ssim", "bicubic_psnr", "bicubic_ssim")
    }
    return {
        **means,
        "psnr_gain_db": means["model_psnr"] - means["bicubic_psnr"],
        "per_image": per_image,
    }


def evaluate_heldout(
    model: keras.Model,
    scale: int,
    debian_roots: data.DebianRoots | None = data.DEBIAN_ROOTS,
    passes: int = 1,
) -> dict:
    """`evaluate` on the held-out split of `data.discover_photos`, with photo names."""
    _, heldout = data.split_photos(data.discover_photos(debian_roots))
    result = evaluate(model, [photo.load() for photo in heldout], scale, passes)
    for photo, scores in zip(heldout, result["per_image"], strict=True):
        scores["name"] = photo.name
    images = [photo.name for photo in heldout]
    return {**result, "scale": scale**passes, "images": images}


def _luma_pair(a: tf.Tensor, b: tf.Tensor, border: int) -> tuple[tf.Tensor, tf.Tensor]:
    def crop(image: tf.Tensor) -> tf.Tensor:
        y = rgb_to_y(image)
        return y[..., border : tf.shape(y)[-3] - border, border : tf.shape(y)[-2] - border, :]

    return crop(a), crop(b)


def _to_8bit(image: tf.Tensor) -> tf.Tensor:
    return tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0) / 255.0
