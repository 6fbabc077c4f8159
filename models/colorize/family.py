"""The colorize family as the CLI and demo see it (see `models/__init__.py`)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from models.colorize import data as cz_data
from models.colorize import evaluate as cz_evaluate
from models.colorize import grid as cz_grid
from models.colorize import images as cz_images
from models.colorize import signatures as cz_signatures
from models.colorize import train as cz_train
from models.evaluation import Evaluation, ServedResult
from models.training import has_checkpoint, preset_config

NAME = "colorize"
PRESETS = cz_train.PRESETS
DEMO_PRESET = "demo"
SAMPLES_SIGNATURE = "samples"
WARMUP_SIDE = 64
DEMO_GRID_PHOTOS, DEMO_SAMPLES, DEMO_TEMPERATURE = 4, 3, 1.0
DEMO_GRID_FILE = "colorize_grid.png"


def train(
    workdir: Path, preset: str = "demo", progress: bool = True, steps: int | None = None
) -> cz_train.Trained:
    """Train from a preset (optionally with a different step count)."""
    config = preset_config(PRESETS, preset, steps)
    return cz_train.train(config, Path(workdir), progress=progress)


def is_trained(workdir: Path) -> bool:
    return has_checkpoint(cz_train.load_trained, workdir)


def evaluate(workdir: Path) -> Evaluation:
    """PSNR/SSIM (RGB) and colourfulness of the model vs the gray copy and the training
    set's mean chroma, on held-out colour photos."""
    trained = cz_train.load_trained(Path(workdir))
    result = cz_evaluate.evaluate_heldout(trained.colorizer, trained.mean_ab)
    rows = []
    for metric, label in (("psnr", "PSNR RGB (dB)"), ("ssim", "SSIM RGB"), ("colourfulness", "")):
        if metric == "colourfulness":
            label = f"colourfulness (truth {result['truth_colourfulness']:.1f})"
        for baseline, baseline_label in (("gray", "gray copy"), ("mean_chroma", "mean chroma")):
            rows.append(
                (
                    f"{label} vs {baseline_label}",
                    result[f"model_{metric}"],
                    result[f"{baseline}_{metric}"],
                )
            )
    return Evaluation(
        family=NAME,
        baseline="baseline",
        metrics={k: float(v) for k, v in result.items() if isinstance(v, int | float)},
        rows=rows,
        details={
            "per_image": result["per_image"],
            "mean_ab": list(trained.mean_ab),
            "decode_temperature": trained.config.decode_temperature,
        },
    )


def serving_module(workdir: Path) -> tuple[tf.Module, dict]:
    trained = cz_train.load_trained(Path(workdir))
    module = cz_signatures.ColorizeModule(trained.colorizer)
    return module, module.signatures()


def warmup_inputs() -> dict[str, list[bytes]]:
    """A serving_default request for export's warmup file: a small gray crop of a real
    photo, so the replay at load traces the signature without slowing the load down."""
    photo = Image.fromarray(cz_data.photos.SKIMAGE_PHOTOS["coffee"]()).convert("L")
    small = np.asarray(photo.resize((WARMUP_SIDE, WARMUP_SIDE)))
    return {"image_bytes": [cz_images.encode_png(small)]}


def request_inputs(paths: list[Path]) -> dict[str, np.ndarray]:
    """Encoded image files go to the server as they are: the model decodes them."""
    return {"image_bytes": np.array([Path(p).read_bytes() for p in paths], dtype=object)}


def samples_inputs(image_bytes: list[bytes], num_samples: int, temperature: float) -> dict:
    """The `samples` signature's inputs."""
    return {
        "image_bytes": np.array(image_bytes, dtype=object),
        "num_samples": np.array(num_samples, np.int32),
        "temperature": np.array(temperature, np.float32),
    }


def save_outputs(outputs: dict[str, np.ndarray], paths: list[Path], out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source, png in zip(paths, outputs["image_bytes"], strict=True):
        target = out_dir / f"{Path(source).stem}_color.png"
        target.write_bytes(png)
        written.append(target)
    return written


def serve_demo(client, workdir: Path) -> ServedResult:
    """Colourize every held-out photo (sent as a gray PNG) through the server, score it
    against both baselines, and draw samples of the first few into a grid PNG."""
    workdir = Path(workdir)
    mean_ab = cz_train.load_trained(workdir).mean_ab
    _, heldout = cz_data.colour_photos()
    photos, grid_rows = [], []
    for index, (photo, truth) in enumerate(heldout):
        gray = cz_images.gray_copy(truth)
        sent = time.perf_counter()
        png = client.predict(NAME, {"image_bytes": [cz_images.encode_png(gray)]})["image_bytes"][0]
        latency_ms = (time.perf_counter() - sent) * 1e3
        colour = cz_images.decode_rgb(png)
        scores = _served_scores(colour, truth, mean_ab)
        photos.append({"photo": photo.name, "latency_ms": latency_ms, **scores})
        if index < DEMO_GRID_PHOTOS:
            drawn = client.predict(
                NAME,
                samples_inputs([cz_images.encode_png(gray)], DEMO_SAMPLES, DEMO_TEMPERATURE),
                signature_name=SAMPLES_SIGNATURE,
            )["image_bytes"][0]
            grid_rows.append([gray, colour, *(cz_images.decode_rgb(png) for png in drawn), truth])
    means = {
        key: float(np.mean([p[key] for p in photos]))
        for key in ("model_psnr", "gray_psnr", "mean_chroma_psnr", "model_ssim")
    }
    grid_path = workdir / DEMO_GRID_FILE
    columns = ["gray input", "model", *(f"sample {i + 1}" for i in range(DEMO_SAMPLES)), "truth"]
    cz_grid.image_grid(columns, grid_rows).save(grid_path)
    passed = means["model_psnr"] > max(means["gray_psnr"], means["mean_chroma_psnr"])
    rows = [
        (
            p["photo"],
            f"{p['gray_psnr']:.2f}",
            f"{p['mean_chroma_psnr']:.2f}",
            f"{p['model_psnr']:.2f}",
            f"{p['latency_ms']:.0f}",
        )
        for p in photos
    ]
    rows.append(
        (
            "mean",
            f"{means['gray_psnr']:.2f}",
            f"{means['mean_chroma_psnr']:.2f}",
            f"{means['model_psnr']:.2f}",
            "",
        )
    )
    return ServedResult(
        family=NAME,
        title=f"{NAME} over gRPC, held-out photos (PSNR RGB, dB)",
        columns=["photo", "gray copy", "mean chroma", "model", "ms"],
        rows=rows,
        summary=(
            f"{means['model_psnr']:.2f} dB vs gray {means['gray_psnr']:.2f} dB and mean chroma "
            f"{means['mean_chroma_psnr']:.2f} dB"
        ),
        passed=passed,
        report={"photos": photos, **means, "samples_per_photo": DEMO_SAMPLES},
        images=[str(grid_path)],
    )


def _served_scores(colour: np.ndarray, truth: np.ndarray, mean_ab) -> dict[str, float]:
    truth_unit = tf.convert_to_tensor(truth, tf.float32) / 255.0
    scores = {}
    baselines = {
        "gray": cz_evaluate.with_chroma(truth_unit, (0.0, 0.0)),
        "mean_chroma": cz_evaluate.with_chroma(truth_unit, mean_ab),
    }
    for name, image in {"model": colour / 255.0, **baselines}.items():
        image = tf.round(tf.convert_to_tensor(image, tf.float32) * 255.0) / 255.0
        scores[f"{name}_psnr"] = cz_evaluate.psnr(image, truth_unit)
        scores[f"{name}_ssim"] = cz_evaluate.ssim(image, truth_unit)
    return scores
