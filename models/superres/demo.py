"""superres in `tfstack demo`: held-out photos through the server at x2 and x4, vs bicubic."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from models.evaluation import ServedResult
from models.superres import data as sr_data
from models.superres import evaluate as sr_evaluate
from models.superres.model import BicubicUpsample
from serving.client import ServingClient

NAME = "superres"
PANEL = 192  # side of each panel in the side-by-side image, in high-res pixels
SIGNATURES = {2: "serving_default", 4: "x4"}  # served upscaling factor -> signature


def serve_demo(client: ServingClient, workdir: Path) -> ServedResult:
    """Upscale every held-out photo through the server at x2 and x4; PSNR Y vs bicubic."""
    _, heldout = sr_data.split_photos(sr_data.discover_photos())
    rows, photos, panels = [], [], ()
    for photo in heldout:
        image = sr_data.load_rgb(photo)
        scores = {}
        for factor, signature in SIGNATURES.items():
            truth = np.asarray(sr_data.crop_to_multiple(image, factor))
            low = _to_uint8(sr_data.degrade(_unit(truth), factor).numpy())
            sent = time.perf_counter()
            outputs = client.predict(NAME, {"image_bytes": [_encode_png(low)]}, signature)
            latency_ms = (time.perf_counter() - sent) * 1e3
            upscaled = np.asarray(Image.open(io.BytesIO(outputs["image_bytes"][0])))
            bicubic = _to_uint8(BicubicUpsample(factor)(_unit(low)[None])[0].numpy())
            scores[factor] = {
                "bicubic_psnr": sr_evaluate.psnr_y(_unit(bicubic), _unit(truth), factor),
                "model_psnr": sr_evaluate.psnr_y(_unit(upscaled), _unit(truth), factor),
                "latency_ms": latency_ms,
                "input_size": f"{low.shape[1]}x{low.shape[0]}",
            }
            if factor == 2 and not panels:
                panels = (low, bicubic, upscaled, truth)
        photos.append({"photo": photo.name, **{f"x{k}": v for k, v in scores.items()}})
        rows.append(_row(photo.name, scores))
    means = {
        factor: {
            key: float(np.mean([p[f"x{factor}"][key] for p in photos]))
            for key in ("bicubic_psnr", "model_psnr")
        }
        for factor in SIGNATURES
    }
    blank = {"input_size": "", "latency_ms": None}
    rows.append(_row("mean", {factor: {**m, **blank} for factor, m in means.items()}))
    side_by_side = Path(workdir) / "superres_side_by_side.png"
    _side_by_side(*panels, scale=2).save(side_by_side)
    gains = {f"x{f}": m["model_psnr"] - m["bicubic_psnr"] for f, m in means.items()}
    return ServedResult(
        family=NAME,
        title=f"{NAME} over gRPC, held-out photos (PSNR Y in dB: bicubic / model)",
        columns=["photo", "input x2", "x2 bicubic", "x2 model", "x4 bicubic", "x4 model", "x2 ms"],
        rows=rows,
        summary=", ".join(
            f"x{f} {m['model_psnr']:.2f} dB vs bicubic {m['bicubic_psnr']:.2f} dB"
            for f, m in means.items()
        ),
        passed=all(gain > 0 for gain in gains.values()),
        report={
            "photos": photos,
            "means": {f"x{factor}": m for factor, m in means.items()},
            "gain_db": gains,
        },
        images=[str(side_by_side)],
    )


def _row(photo: str, scores: dict[int, dict]) -> tuple[str, ...]:
    name = photo if len(photo) <= 24 else photo[:23] + "…"
    latency = scores[2]["latency_ms"]
    return (
        name,
        scores[2]["input_size"],
        *(f"{scores[f][k]:.2f}" for f in SIGNATURES for k in ("bicubic_psnr", "model_psnr")),
        "" if latency is None else f"{latency:.0f}",
    )


def _unit(image: np.ndarray) -> np.ndarray:
    return np.asarray(image).astype(np.float32) / 255.0


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def _encode_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _side_by_side(low, bicubic, model, truth, scale: int) -> Image.Image:
    """Centre crops; the input keeps its pixels visible (nearest-neighbour)."""
    height, width = truth.shape[:2]
    side = min(PANEL, height, width) // scale * scale
    top, left = (height - side) // 2 // scale * scale, (width - side) // 2 // scale * scale
    low_crop = low[top // scale : (top + side) // scale, left // scale : (left + side) // scale]
    crops = [
        np.asarray(Image.fromarray(low_crop).resize((side, side), Image.NEAREST)),
        bicubic[top : top + side, left : left + side],
        model[top : top + side, left : left + side],
        truth[top : top + side, left : left + side],
    ]
    zoom, label_height, gap = 2, 18, 6  # panels are small; double them for a person
    panel = side * zoom
    canvas = Image.new("RGB", (len(crops) * (panel + gap) - gap, panel + label_height), "white")
    draw = ImageDraw.Draw(canvas)
    labels = ["input (low-res)", "bicubic", "tfstack model", "ground truth"]
    for index, (crop, label) in enumerate(zip(crops, labels, strict=True)):
        x = index * (panel + gap)
        canvas.paste(Image.fromarray(crop).resize((panel, panel), Image.NEAREST), (x, label_height))
        draw.text((x + 4, 3), label, fill="black")
    return canvas
