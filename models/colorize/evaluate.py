"""Colourization quality against two non-learned baselines, on whole held-out photos.

Every method keeps the photo's own lightness L and only chooses chroma (ab):
- `gray`: ab = 0, the grayscale copy;
- `mean_chroma`: the training photos' mean ab everywhere;
- `model`: the deterministic (annealed-mean) output of the trained model.
Scores are on 8-bit RGB, what a served PNG holds: PSNR and SSIM against the true
colours, and colourfulness (Hasler and Süsstrunk, 2003; the truth's own is reported
beside it: the aim is to come close, a gray image scores 0).
"""

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from models.colorize import data
from models.colorize.colorizer import Colorizer
from models.colorize.lab import lab_to_rgb, rgb_to_lab
from models.superres import data as photos

METHODS = ("model", "gray", "mean_chroma")


def psnr(a: tf.Tensor, b: tf.Tensor) -> float:
    """PSNR (dB) between two RGB images in [0, 1]."""
    return float(tf.image.psnr(_float(a), _float(b), max_val=1.0))


def ssim(a: tf.Tensor, b: tf.Tensor) -> float:
    """SSIM between two RGB images in [0, 1] (mean over the three channels)."""
    return float(tf.image.ssim(_float(a), _float(b), max_val=1.0))


def colourfulness(rgb: tf.Tensor) -> float:
    """Hasler and Süsstrunk's M (2003) of an RGB image in [0, 1], on their 0-255 scale:
    spread plus 0.3 times mean of the opponent channels rg = R - G, yb = (R + G) / 2 - B."""
    red, green, blue = tf.unstack(_float(rgb) * 255.0, axis=-1)
    rg, yb = red - green, 0.5 * (red + green) - blue
    spread = tf.sqrt(tf.math.reduce_variance(rg) + tf.math.reduce_variance(yb))
    mean = tf.sqrt(tf.square(tf.reduce_mean(rg)) + tf.square(tf.reduce_mean(yb)))
    return float(spread + 0.3 * mean)


def with_chroma(rgb: tf.Tensor, ab: Sequence[float]) -> tf.Tensor:
    """The image's own L with one ab everywhere: the gray and mean-chroma baselines."""
    lightness = rgb_to_lab(_float(rgb))[..., :1]
    size = tf.concat([tf.shape(lightness)[:2], [2]], axis=0)
    ab = tf.broadcast_to(tf.convert_to_tensor(ab, tf.float32), size)
    return lab_to_rgb(tf.concat([lightness, ab], axis=-1))


def outputs(colorizer: Colorizer, rgb: tf.Tensor, mean_ab: Sequence[float]) -> dict[str, tf.Tensor]:
    """Every method's 8-bit-quantized colouring of one RGB image in [0, 1]."""
    rgb = _float(rgb)
    colourings = {
        "model": colorizer.colorize(rgb),
        "gray": with_chroma(rgb, (0.0, 0.0)),
        "mean_chroma": with_chroma(rgb, mean_ab),
    }
    return {name: tf.round(image * 255.0) / 255.0 for name, image in colourings.items()}


def score(prediction: tf.Tensor, truth: tf.Tensor) -> dict[str, float]:
    return {
        "psnr": psnr(prediction, truth),
        "ssim": ssim(prediction, truth),
        "colourfulness": colourfulness(prediction),
    }


def evaluate(colorizer: Colorizer, images: Sequence[np.ndarray], mean_ab: Sequence[float]) -> dict:
    """Means and per-image scores of every method on uint8 RGB images."""
    if not len(images):
        raise ValueError("`images` must hold at least one image. Received: images=[]")
    per_image = []
    for image in images:
        truth = tf.convert_to_tensor(image, tf.float32) / 255.0
        scores = {"height": int(image.shape[0]), "width": int(image.shape[1])}
        for name, output in outputs(colorizer, truth, mean_ab).items():
            scores.update({f"{name}_{k}": v for k, v in score(output, truth).items()})
        scores["truth_colourfulness"] = colourfulness(truth)
        per_image.append(scores)
    keys = [f"{m}_{k}" for m in METHODS for k in ("psnr", "ssim", "colourfulness")]
    means = {
        key: float(np.mean([s[key] for s in per_image])) for key in [*keys, "truth_colourfulness"]
    }
    return {
        **means,
        "psnr_gain_over_gray_db": means["model_psnr"] - means["gray_psnr"],
        "psnr_gain_over_mean_chroma_db": means["model_psnr"] - means["mean_chroma_psnr"],
        "per_image": per_image,
    }


def evaluate_heldout(
    colorizer: Colorizer,
    mean_ab: Sequence[float],
    debian_roots: photos.DebianRoots | None = photos.DEBIAN_ROOTS,
) -> dict:
    """`evaluate` on the held-out colour photos, with their names."""
    _, heldout = data.colour_photos(debian_roots)
    result = evaluate(colorizer, [image for _, image in heldout], mean_ab)
    for (photo, _), scores in zip(heldout, result["per_image"], strict=True):
        scores["name"] = photo.name
    return {**result, "images": [photo.name for photo, _ in heldout]}


def _float(image: tf.Tensor) -> tf.Tensor:
    return tf.convert_to_tensor(image, tf.float32)
