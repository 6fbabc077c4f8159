"""The superres family as the CLI and demo see it (see `models/__init__.py`)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from models.evaluation import Evaluation
from models.superres import data as sr_data
from models.superres import evaluate as sr_evaluate
from models.superres import signatures as sr_signatures
from models.superres import train as sr_train
from models.superres.demo import serve_demo  # noqa: F401  (part of the family interface)
from models.training import has_checkpoint, preset_config

NAME = "superres"
PRESETS = sr_train.PRESETS
DEMO_PRESET = "demo"
WARMUP_PHOTO, WARMUP_SIDE = "coffee", 64


def train(workdir: Path, preset: str = "demo", progress: bool = True, steps: int | None = None):
    """Train from a preset (optionally with a different step count); returns the Keras model."""
    config = preset_config(PRESETS, preset, steps)
    return sr_train.train(config, Path(workdir), progress=progress)


def is_trained(workdir: Path) -> bool:
    return has_checkpoint(sr_train.load_trained, workdir)


def evaluate(workdir: Path) -> Evaluation:
    """PSNR/SSIM (Y channel) of the trained model vs bicubic upscaling on held-out photos,
    at x2 and at x4 (the model run twice, as the `x4` signature serves it)."""
    model, config = sr_train.load_trained(Path(workdir))
    x2 = sr_evaluate.evaluate_heldout(model, config.scale)
    x4 = sr_evaluate.evaluate_heldout(model, config.scale, passes=2)
    metrics = {k: float(v) for k, v in x2.items() if isinstance(v, int | float)}
    metrics.update({f"x4_{k}": float(v) for k, v in x4.items() if isinstance(v, int | float)})
    return Evaluation(
        family=NAME,
        baseline="bicubic",
        metrics=metrics,
        rows=[
            (f"PSNR Y x{x2['scale']} (dB)", x2["model_psnr"], x2["bicubic_psnr"]),
            (f"SSIM Y x{x2['scale']}", x2["model_ssim"], x2["bicubic_ssim"]),
            (f"PSNR Y x{x4['scale']} (dB)", x4["model_psnr"], x4["bicubic_psnr"]),
            (f"SSIM Y x{x4['scale']}", x4["model_ssim"], x4["bicubic_ssim"]),
        ],
        details={
            "per_image": x2["per_image"],
            "x4_per_image": x4["per_image"],
            "scale": config.scale,
        },
    )


def serving_module(workdir: Path) -> tuple[tf.Module, dict]:
    model, _ = sr_train.load_trained(Path(workdir))
    module = sr_signatures.SuperResolutionModule(model)
    return module, module.signatures()


def warmup_inputs() -> dict[str, list[bytes]]:
    """A serving_default request for export's warmup file: one real photo, small, so the
    replay at load traces the signature without slowing the load down."""
    photo = Image.fromarray(sr_data.SKIMAGE_PHOTOS[WARMUP_PHOTO]())
    buffer = io.BytesIO()
    photo.resize((WARMUP_SIDE, WARMUP_SIDE), Image.BICUBIC).save(buffer, format="PNG")
    return {"image_bytes": [buffer.getvalue()]}


def request_inputs(paths: list[Path]) -> dict[str, np.ndarray]:
    """Encoded image files go to the server as they are: the model decodes them."""
    return {"image_bytes": np.array([Path(p).read_bytes() for p in paths], dtype=object)}


def save_outputs(outputs: dict[str, np.ndarray], paths: list[Path], out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source, png in zip(paths, outputs["image_bytes"], strict=True):
        target = out_dir / f"{Path(source).stem}_x2.png"
        target.write_bytes(png)
        written.append(target)
    return written
