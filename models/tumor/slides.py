"""The slide generator: synthetic whole slides on real tissue, with exact ground truth.

A slide is glass with one or more tissue fragments cut from the real normal slide
(`sources`, per split), rotated, flipped and rescaled (scale jitter: magnification and
tissue shrinkage differ between labs). Tumor slides get metastases: irregular lesions from
~100 px (50 µm, a micrometastasis) up, painted as sheets of large pleomorphic nuclei or
textured with the real carcinoma. Every slide also gets mimics that fool a darkness
threshold or a careless model: lymphoid aggregates (dense, small, very dark nuclei),
histiocyte clusters (large pale nuclei, spread out) and tissue folds, besides the real
epidermis. Last, the whole slide's stains vary (HED jitter), and it is blurred
and noised a little, as scanners do.

Written per slide: `<name>.tiff` (pyramidal TIFF, read through OpenSlide),
`<name>.mask.png` (uint8 lesion labels: 0 none, k lesion k) and `<name>.json` (lesions,
mimics and the parameters drawn). A slide set is a directory of those plus
`manifest.json`, written last; a set whose manifest matches is reused, not regenerated.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.measure import regionprops

from models.tumor import painting, slide_io, sources, stain
from models.tumor.tissue import tissue_mask
from tfstack.atomic import atomic_write_text

MANIFEST = "manifest.json"
GENERATOR_VERSION = 2  # bump when the same spec and seed would paint different slides
SPLIT_SEEDS = {"train": 11, "heldout": 29}  # different random streams per split
GLASS_RGB = (238, 246)  # per-channel range of the bare glass
MIN_TISSUE_FRACTION = 0.3  # of a fragment's source crop
LESION_GAP_PX = 48  # between a lesion and any other painted region


@dataclasses.dataclass(frozen=True)
class SlideSpec:
    """What the generator draws from; ranges are (low, high), both included."""

    height: int = 1536
    width: int = 1536
    fragments: tuple[int, int] = (1, 2)
    normal_every: int = 3  # slide i has no tumor when i % normal_every == normal_every - 1
    lesions: tuple[int, int] = (1, 4)
    lesion_diameter: tuple[float, float] = (100.0, 450.0)  # px; log-uniform
    carcinoma_fraction: float = 0.35  # lesions textured with the real carcinoma
    lymphoid_aggregates: tuple[int, int] = (1, 3)
    histiocyte_clusters: tuple[int, int] = (0, 2)
    aggregate_diameter: tuple[float, float] = (70.0, 260.0)  # of either mimic
    folds: tuple[int, int] = (0, 2)
    scale: tuple[float, float] = (0.8, 1.25)
    stain_jitter: float = 0.2  # standard deviation of log H and log E scale factors
    blur_sigma: tuple[float, float] = (0.0, 1.0)
    noise: float = 2.0  # standard deviation, in 8-bit levels

    def __post_init__(self):
        if min(self.height, self.width) < 512:
            raise ValueError(
                f"slides must be at least 512 px a side. Received: height={self.height}, "
                f"width={self.width}"
            )
        if self.normal_every < 1:
            raise ValueError(f"`normal_every` must be >= 1. Received: {self.normal_every}")

    @classmethod
    def from_dict(cls, values: dict) -> SlideSpec:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def digest(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclasses.dataclass
class GeneratedSlide:
    """One slide in memory: pixels, lesion labels and what was painted where."""

    rgb: np.ndarray  # uint8 [H, W, 3]
    labels: np.ndarray  # uint8 [H, W]: 0 none, k = lesions[k - 1]
    lesions: list[dict]
    mimics: list[dict]
    params: dict


@dataclasses.dataclass(frozen=True)
class SlideRecord:
    """A slide written to disk, with its ground truth."""

    name: str
    path: Path  # the pyramidal TIFF
    mask_path: Path
    lesions: tuple[dict, ...]

    @property
    def has_tumor(self) -> bool:
        return bool(self.lesions)

    def labels(self) -> np.ndarray:
        with Image.open(self.mask_path) as mask:
            return np.asarray(mask)


def generate_slide(spec: SlideSpec, split: str, index: int, seed: int = 0) -> GeneratedSlide:
    """Slide `index` of `split`: the same for the same arguments, on every machine."""
    rng = np.random.default_rng([SPLIT_SEEDS[split], seed, index])
    tissue_source = sources.tissue_sources(split)
    scale = float(rng.uniform(*spec.scale))
    canvas = _glass(spec, rng)
    for _ in range(rng.integers(spec.fragments[0], spec.fragments[1] + 1)):
        _place_fragment(canvas, tissue_source.normal, _source_tissue(split), scale, rng)
    painter = _Painter.of(canvas, scale, rng)

    lesions = []
    has_tumor = index % spec.normal_every != spec.normal_every - 1
    for _ in range(rng.integers(spec.lesions[0], spec.lesions[1] + 1) if has_tumor else 0):
        diameter = _log_uniform(rng, spec.lesion_diameter)
        kind = painter.lesion(
            diameter, tissue_source.carcinoma, spec.carcinoma_fraction, len(lesions) + 1
        )
        if kind is not None:
            lesions.append({"kind": kind})

    mimics = []
    lymphoid = rng.integers(spec.lymphoid_aggregates[0], spec.lymphoid_aggregates[1] + 1)
    histiocytes = rng.integers(spec.histiocyte_clusters[0], spec.histiocyte_clusters[1] + 1)
    styles = [("lymphoid_aggregate", painting.LYMPHOID)] * int(lymphoid) + [
        ("histiocyte_cluster", painting.HISTIOCYTES)
    ] * int(histiocytes)
    for kind, style in styles:
        box = painter.cells(_log_uniform(rng, spec.aggregate_diameter), style)
        if box is not None:
            mimics.append({"kind": kind, **box})
    for _ in range(rng.integers(spec.folds[0], spec.folds[1] + 1)):
        box = painter.fold()
        if box is not None:
            mimics.append({"kind": "fold", **box})

    jitter = np.exp(rng.normal(0.0, spec.stain_jitter, 3) * np.array([1.0, 1.0, 0.5]))
    rgb = stain.hed_to_rgb(painter.hed * jitter.astype(np.float32))
    blur = float(rng.uniform(*spec.blur_sigma))
    return GeneratedSlide(
        rgb=_blur_and_noise(rgb, blur, spec.noise, rng),
        labels=painter.labels,
        lesions=describe_lesions(painter.labels, lesions),
        mimics=mimics,
        params={
            "split": split,
            "index": index,
            "seed": seed,
            "scale": scale,
            "stain_scale_hed": [round(float(v), 4) for v in jitter],
            "blur_sigma": blur,
            "tissue_fraction": float(painter.tissue.mean()),
        },
    )


def write_slide(directory: Path, name: str, slide: GeneratedSlide) -> SlideRecord:
    """`<name>.tiff`, `<name>.mask.png` and `<name>.json` in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = slide_io.write_pyramid(directory / f"{name}.tiff", slide.rgb, sources.MICRONS_PER_PIXEL)
    mask_path = directory / f"{name}.mask.png"
    Image.fromarray(slide.labels).save(mask_path)
    description = {
        "name": name,
        "microns_per_pixel": sources.MICRONS_PER_PIXEL,
        "height": slide.rgb.shape[0],
        "width": slide.rgb.shape[1],
        "lesions": slide.lesions,
        "mimics": slide.mimics,
        "params": slide.params,
    }
    atomic_write_text(directory / f"{name}.json", json.dumps(description, indent=2))
    return SlideRecord(name, path, mask_path, tuple(slide.lesions))


def make_slides(
    directory: Path,
    split: str,
    count: int,
    spec: SlideSpec,
    seed: int = 0,
    on_slide: Callable[[int], None] | None = None,
) -> list[SlideRecord]:
    """Generate (or reuse) `count` slides of `split` in `directory`; `on_slide(i)` after each."""
    if count < 1:
        raise ValueError(f"`count` must be positive. Received: count={count}")
    directory = Path(directory)
    wanted = {
        "generator": GENERATOR_VERSION,
        "split": split,
        "count": count,
        "seed": seed,
        "spec": dataclasses.asdict(spec),
    }
    manifest = directory / MANIFEST
    if manifest.is_file() and json.loads(manifest.read_text()).get("wanted") == json.loads(
        json.dumps(wanted)
    ):
        return load_slides(directory)
    manifest.unlink(missing_ok=True)
    names = []
    for index in range(count):
        name = f"{split}-{seed}-{index:03d}"
        write_slide(directory, name, generate_slide(spec, split, index, seed))
        names.append(name)
        if on_slide is not None:
            on_slide(index)
    atomic_write_text(manifest, json.dumps({"wanted": wanted, "slides": names}, indent=2))
    return load_slides(directory)


def load_slides(directory: Path) -> list[SlideRecord]:
    """The slides a `make_slides` run wrote into `directory`."""
    manifest = Path(directory) / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"no slide set in {directory} (no {MANIFEST})")
    return [load_record(Path(directory) / f"{name}.tiff") for name in _manifest_names(manifest)]


def load_record(path: Path) -> SlideRecord:
    """The record of a generated slide from its TIFF path (its JSON and mask sit beside it)."""
    path = Path(path)
    name = path.name.removesuffix(".tiff")
    description = json.loads((path.parent / f"{name}.json").read_text())
    return SlideRecord(name, path, path.parent / f"{name}.mask.png", tuple(description["lesions"]))


def describe_lesions(labels: np.ndarray, painted: list[dict]) -> list[dict]:
    """Lesion k's id, kind (from `painted[k - 1]`), bbox [x0, y0, x1, y1], centroid (x, y),
    area and longest diameter, from the label image."""
    lesions = []
    for props in regionprops(labels):
        top, left, bottom, right = props.bbox
        lesions.append(
            {
                "id": int(props.label),
                "kind": painted[props.label - 1]["kind"],
                "bbox": [int(left), int(top), int(right), int(bottom)],
                "centroid": [
                    round(float(props.centroid[1]), 1),
                    round(float(props.centroid[0]), 1),
                ],
                "area_px": int(props.area),
                "diameter_px": round(float(props.feret_diameter_max), 1),
            }
        )
    return lesions


def _manifest_names(manifest: Path) -> list[str]:
    return json.loads(manifest.read_text())["slides"]


@functools.cache
def _source_tissue(split: str) -> np.ndarray:
    return tissue_mask(sources.tissue_sources(split).normal, fill_holes=False)


def _glass(spec: SlideSpec, rng: np.random.Generator) -> np.ndarray:
    color = rng.integers(GLASS_RGB[0], GLASS_RGB[1] + 1, 3).astype(np.uint8)
    return np.broadcast_to(color, (spec.height, spec.width, 3)).copy()


@dataclasses.dataclass
class _Painter:
    """The slide being painted: stain amounts, lesion labels, where the tissue is and which
    of it is taken (painted regions grown by `LESION_GAP_PX`, so regions never touch)."""

    hed: np.ndarray
    labels: np.ndarray
    tissue: np.ndarray
    tissue_pixels: np.ndarray
    occupied: np.ndarray
    stats: painting.StainStats
    scale: float
    rng: np.random.Generator

    @classmethod
    def of(cls, canvas: np.ndarray, scale: float, rng: np.random.Generator) -> _Painter:
        tissue = tissue_mask(canvas, fill_holes=False)
        hed = stain.rgb_to_hed(canvas)
        return cls(
            hed=hed,
            labels=np.zeros(tissue.shape, np.uint8),
            tissue=tissue,
            tissue_pixels=np.flatnonzero(tissue.ravel()),
            occupied=np.zeros(tissue.shape, bool),
            stats=painting.StainStats.of(hed, tissue),
            scale=scale,
            rng=rng,
        )

    def lesion(
        self, diameter: float, carcinoma: np.ndarray, carcinoma_fraction: float, label: int
    ) -> str | None:
        """A metastasis labelled `label`, textured with the real `carcinoma` (with chance
        `carcinoma_fraction`) or painted; its kind, or None if none fits."""
        placed = self._place(diameter, irregularity=0.25, lobes=True)
        if placed is None:
            return None
        window, region = placed
        if self.rng.random() < carcinoma_fraction:
            texture = _carcinoma_texture(carcinoma, region.shape, self.scale, self.rng)
            painting.paint_texture(self.hed[window], region, texture, self.stats)
            kind = "carcinoma"
        else:
            painting.paint_cells(
                self.hed[window], region, painting.TUMOR, self.stats, self.rng, self.scale
            )
            kind = "painted"
        self.labels[window][region] = label
        self._occupy(window, region)
        return kind

    def cells(self, diameter: float, style: painting.CellStyle) -> dict | None:
        """A region of normal cells of `style`; its bbox and area, or None if none fits."""
        placed = self._place(diameter, irregularity=0.15, lobes=False)
        if placed is None:
            return None
        window, region = placed
        painting.paint_cells(self.hed[window], region, style, self.stats, self.rng, self.scale)
        self._occupy(window, region)
        return _box(window, region)

    def fold(self) -> dict | None:
        placed = _place_fold(self.tissue, self.tissue_pixels, self.occupied, self.scale, self.rng)
        if placed is None:
            return None
        window, region = placed
        painting.paint_fold(self.hed[window], region, float(self.rng.uniform(1.6, 2.4)))
        return _box(window, region)

    def _place(
        self, diameter: float, irregularity: float, lobes: bool
    ) -> tuple[tuple[slice, slice], np.ndarray] | None:
        return _place_region(
            self.tissue, self.tissue_pixels, self.occupied, diameter, self.rng, irregularity, lobes
        )

    def _occupy(self, window: tuple[slice, slice], region: np.ndarray) -> None:
        distance = ndimage.distance_transform_edt(~region)
        self.occupied[window] |= distance <= LESION_GAP_PX


def _place_fragment(
    canvas: np.ndarray,
    normal: np.ndarray,
    normal_tissue: np.ndarray,
    scale: float,
    rng: np.random.Generator,
) -> None:
    """Paste a crop of real tissue (rotated, flipped, rescaled, with an irregular outline)."""
    height, width = canvas.shape[:2]
    side = int(min(height, width) * rng.uniform(0.55, 0.9) / scale)
    crop_h, crop_w = min(side, normal.shape[0]), min(side, normal.shape[1])
    best, best_fraction = (0, 0), -1.0
    for _ in range(30):
        top = int(rng.integers(0, normal.shape[0] - crop_h + 1))
        left = int(rng.integers(0, normal.shape[1] - crop_w + 1))
        fraction = float(normal_tissue[top : top + crop_h, left : left + crop_w].mean())
        if fraction > best_fraction:
            best, best_fraction = (top, left), fraction
        if fraction >= MIN_TISSUE_FRACTION:
            break
    top, left = best
    crop = np.rot90(normal[top : top + crop_h, left : left + crop_w], k=int(rng.integers(4)))
    if rng.integers(2):
        crop = crop[:, ::-1]
    size = (
        min(width, max(1, round(crop.shape[1] * scale))),
        min(height, max(1, round(crop.shape[0] * scale))),
    )
    fragment = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(size)).astype(
        np.float32
    )
    frag_h, frag_w = fragment.shape[:2]
    rows, cols = painting.irregular_polygon(
        (frag_h / 2, frag_w / 2),
        np.sqrt(frag_h * frag_w) / 2 * rng.uniform(0.95, 1.15),
        rng,
        irregularity=0.12,
        vertices=64,
    )
    # Only the tissue is pasted (its own edges, not the crop's), so glass stays one colour.
    outline = painting.polygon_mask(rows, cols, (frag_h, frag_w))
    outline &= ndimage.binary_dilation(tissue_mask(fragment.astype(np.uint8)), iterations=2)
    alpha = ndimage.gaussian_filter(outline.astype(np.float32), 1.5)[..., None]
    top = int(rng.integers(0, height - frag_h + 1))
    left = int(rng.integers(0, width - frag_w + 1))
    target = canvas[top : top + frag_h, left : left + frag_w].astype(np.float32)
    blended = target * (1 - alpha) + fragment * alpha
    canvas[top : top + frag_h, left : left + frag_w] = np.round(blended).astype(np.uint8)


def _place_region(
    tissue: np.ndarray,
    tissue_pixels: np.ndarray,
    occupied: np.ndarray,
    diameter: float,
    rng: np.random.Generator,
    irregularity: float,
    lobes: bool,
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """An irregular region of about `diameter` inside tissue, clear of `occupied`;
    (window, region mask in the window), or None if none fits."""
    if not tissue_pixels.size:
        return None
    radius = diameter / 2
    for _ in range(40):
        center = np.unravel_index(rng.choice(tissue_pixels), tissue.shape)
        rows, cols = painting.irregular_polygon(
            center, radius, rng, irregularity, rng.uniform(1.0, 1.8), vertices=64
        )
        window = _window(rows, cols, tissue.shape, pad=LESION_GAP_PX)
        if window is None:
            continue
        offset = (window[0].start, window[1].start)
        shape = (window[0].stop - window[0].start, window[1].stop - window[1].start)
        outline = painting.polygon_mask(rows - offset[0], cols - offset[1], shape)
        if lobes and rng.random() < 0.4:
            outline |= _satellites(outline, radius, rng)
        region = outline & tissue[window]
        if region.sum() < 0.7 * outline.sum() or (region & occupied[window]).any():
            continue
        return window, region
    return None


def _satellites(outline: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """One to three smaller blobs on the outline's edge: lesions grow unevenly."""
    edge = np.argwhere(outline & ~ndimage.binary_erosion(outline))
    lobes = np.zeros_like(outline)
    for _ in range(rng.integers(1, 4)):
        center = edge[rng.integers(len(edge))]
        rows, cols = painting.irregular_polygon(center, radius * rng.uniform(0.25, 0.45), rng)
        lobes |= painting.polygon_mask(rows, cols, outline.shape)
    return lobes


def _place_fold(
    tissue: np.ndarray,
    tissue_pixels: np.ndarray,
    occupied: np.ndarray,
    scale: float,
    rng: np.random.Generator,
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """A long narrow band across tissue, clear of painted regions."""
    if not tissue_pixels.size:
        return None
    for _ in range(20):
        center = np.array(np.unravel_index(rng.choice(tissue_pixels), tissue.shape), float)
        length = rng.uniform(150, 500) * scale
        width = rng.uniform(12, 45) * scale
        angle = rng.uniform(0, np.pi)
        along = np.array([np.sin(angle), np.cos(angle)])
        across = np.array([along[1], -along[0]])
        steps = np.linspace(-0.5, 0.5, 12)[:, None] * length
        bend = np.cumsum(rng.normal(0, width * 0.3, (12, 1)), axis=0)
        spine = center + steps * along + bend * across
        half = (width / 2) * rng.uniform(0.7, 1.2, (12, 1))
        outline = np.concatenate([spine + half * across, (spine - half * across)[::-1]])
        window = _window(outline[:, 0], outline[:, 1], tissue.shape, pad=4)
        if window is None:
            continue
        offset = np.array([window[0].start, window[1].start])
        shape = (window[0].stop - window[0].start, window[1].stop - window[1].start)
        band = painting.polygon_mask(*(outline - offset).T, shape) & tissue[window]
        if band.sum() > 0.3 * length * width and not (band & occupied[window]).any():
            return window, band
    return None


def _carcinoma_texture(
    carcinoma: np.ndarray, shape: tuple[int, int], scale: float, rng: np.random.Generator
) -> np.ndarray:
    """Stain amounts [*shape, 3] of a randomly oriented crop of the real carcinoma, at the
    slide's scale (mirrored at its edges when the lesion is larger than the field)."""
    field = np.rot90(carcinoma, k=int(rng.integers(4)))
    if rng.integers(2):
        field = field[:, ::-1]
    if scale != 1.0:
        size = (max(1, round(field.shape[1] * scale)), max(1, round(field.shape[0] * scale)))
        field = np.asarray(Image.fromarray(np.ascontiguousarray(field)).resize(size))
    pad = [(0, max(0, shape[0] - field.shape[0])), (0, max(0, shape[1] - field.shape[1])), (0, 0)]
    field = np.pad(field, pad, mode="symmetric")
    top = int(rng.integers(0, field.shape[0] - shape[0] + 1))
    left = int(rng.integers(0, field.shape[1] - shape[1] + 1))
    return stain.rgb_to_hed(field[top : top + shape[0], left : left + shape[1]])


def _blur_and_noise(
    rgb: np.ndarray, sigma: float, noise: float, rng: np.random.Generator
) -> np.ndarray:
    image = rgb.astype(np.float32)
    if sigma > 0.05:
        image = ndimage.gaussian_filter(image, (sigma, sigma, 0))
    image += rng.standard_normal(image.shape, dtype=np.float32) * noise
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _window(
    rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], pad: int
) -> tuple[slice, slice] | None:
    """The bounding box of an outline plus `pad`, clipped to the image; None if empty."""
    top, bottom = max(0, int(rows.min()) - pad), min(shape[0], int(np.ceil(rows.max())) + pad)
    left, right = max(0, int(cols.min()) - pad), min(shape[1], int(np.ceil(cols.max())) + pad)
    if bottom - top < 2 or right - left < 2:
        return None
    return slice(top, bottom), slice(left, right)


def _box(window: tuple[slice, slice], region: np.ndarray) -> dict:
    rows, cols = np.nonzero(region)
    return {
        "bbox": [
            int(window[1].start + cols.min()),
            int(window[0].start + rows.min()),
            int(window[1].start + cols.max() + 1),
            int(window[0].start + rows.max() + 1),
        ],
        "area_px": int(region.sum()),
    }


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))
