"""Camelyon16's metrics, and scoring scans of held-out slides with them.

Lesion level, FROC (as the challenge's Evaluation_FROC.py): a detection inside a lesion's
evaluation region (the lesion grown by `HIT_MARGIN_PX`, without merging neighbours) finds
that lesion; further detections of a found lesion are ignored; a detection outside every
lesion is a false positive. Sweeping the probability threshold gives sensitivity against
mean false positives per slide; the score is the mean sensitivity at 1/4, 1/2, 1, 2, 4
and 8 false positives per slide (the best sensitivity reached within each budget).

Slide level: ROC AUC of the slide score (the heatmap maximum) for "has tumor".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from scipy.stats import mannwhitneyu
from skimage.segmentation import expand_labels

from models.tumor import scan
from models.tumor.slides import SlideRecord

FP_RATES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
HIT_MARGIN_PX = 32  # one heatmap cell: a detection is a cell centre, up to half a cell off


@dataclasses.dataclass(frozen=True)
class SlideDetections:
    """One slide's detections and its ground truth, as FROC needs them."""

    detections: Sequence[scan.Detection]
    evaluation_mask: np.ndarray  # int [H, W]: lesion id grown by HIT_MARGIN_PX, 0 elsewhere
    lesion_ids: Sequence[int]


def evaluation_mask(labels: np.ndarray, margin_px: int = HIT_MARGIN_PX) -> np.ndarray:
    """Lesion labels grown by `margin_px`; where two lesions' margins meet, the nearer wins."""
    return expand_labels(labels, distance=margin_px)


def hit_lesions(detections: Sequence[scan.Detection], mask: np.ndarray) -> np.ndarray:
    """The lesion id under each detection (0: a false positive)."""
    if not detections:
        return np.zeros(0, np.int64)
    rows = np.clip([int(d.y) for d in detections], 0, mask.shape[0] - 1)
    cols = np.clip([int(d.x) for d in detections], 0, mask.shape[1] - 1)
    return mask[rows, cols].astype(np.int64)


def froc(slides: Sequence[SlideDetections], fp_rates: Sequence[float] = FP_RATES) -> dict:
    """The FROC curve over all slides and its score (mean sensitivity at `fp_rates`)."""
    total_lesions = sum(len(s.lesion_ids) for s in slides)
    if not slides or total_lesions == 0:
        raise ValueError("FROC needs slides with at least one lesion among them")
    lesion_scores: dict[tuple[int, int], float] = {}  # best probability per found lesion
    false_positive_scores = []
    for index, slide in enumerate(slides):
        hits = hit_lesions(slide.detections, slide.evaluation_mask)
        for detection, hit in zip(slide.detections, hits, strict=True):
            if hit == 0:
                false_positive_scores.append(detection.probability)
            else:
                key = (index, int(hit))
                lesion_scores[key] = max(lesion_scores.get(key, 0.0), detection.probability)
    thresholds = np.unique([*lesion_scores.values(), *false_positive_scores])[::-1]
    found = np.array(sorted(lesion_scores.values()))
    false = np.array(sorted(false_positive_scores))
    fp_per_slide = [0.0]
    sensitivity = [0.0]
    for threshold in thresholds:
        fp_per_slide.append(float((false >= threshold).sum()) / len(slides))
        sensitivity.append(float((found >= threshold).sum()) / total_lesions)
    fp_per_slide, sensitivity = np.array(fp_per_slide), np.array(sensitivity)
    at_rates = {
        rate: float(sensitivity[fp_per_slide <= rate].max(initial=0.0)) for rate in fp_rates
    }
    return {
        "score": float(np.mean(list(at_rates.values()))),
        "sensitivity_at": {str(rate): value for rate, value in at_rates.items()},
        "fp_per_slide": fp_per_slide.tolist(),
        "sensitivity": sensitivity.tolist(),
        "lesions": total_lesions,
        "lesions_found": len(lesion_scores),
    }


def slide_auc(scores: Sequence[float], has_tumor: Sequence[bool]) -> float:
    """ROC AUC (ties count half): the chance a tumor slide outscores a normal one."""
    scores, has_tumor = np.asarray(scores, np.float64), np.asarray(has_tumor, bool)
    if has_tumor.all() or not has_tumor.any():
        raise ValueError("slide AUC needs both tumor and normal slides")
    u = mannwhitneyu(scores[has_tumor], scores[~has_tumor]).statistic
    return float(u / (has_tumor.sum() * (~has_tumor).sum()))


def score_scans(scans: Sequence[scan.ScanResult], records: Sequence[SlideRecord]) -> dict:
    """FROC and slide AUC of one detector's scans of `records` (same order)."""
    per_slide = [
        SlideDetections(
            result.detections,
            evaluation_mask(record.labels()),
            [lesion["id"] for lesion in record.lesions],
        )
        for result, record in zip(scans, records, strict=True)
    ]
    curve = froc(per_slide)
    auc = slide_auc([s.slide_score for s in scans], [r.has_tumor for r in records])
    return {
        "froc": curve["score"],
        "slide_auc": auc,
        "sensitivity_at": curve["sensitivity_at"],
        "lesions": curve["lesions"],
        "lesions_found": curve["lesions_found"],
        "curve": {"fp_per_slide": curve["fp_per_slide"], "sensitivity": curve["sensitivity"]},
        "per_slide": [
            {
                "slide": record.name,
                "lesions": len(record.lesions),
                "slide_score": result.slide_score,
                "detections": len(result.detections),
                "patches": result.patches,
                "seconds": round(result.seconds, 3),
            }
            for result, record in zip(scans, records, strict=True)
        ],
    }


def compare_detectors(
    records: Sequence[SlideRecord],
    scorers: Mapping[str, scan.PatchScorer],
    patch_size: int,
    stride: int,
    progress: bool = True,
    on_scan: Callable[[str, SlideRecord, scan.ScanResult], None] | None = None,
) -> dict[str, dict]:
    """Scan every slide with every scorer; {scorer name: `score_scans` result}."""
    results = {}
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not progress,
    ) as bar:
        for name, scorer in scorers.items():
            task = bar.add_task(f"scan ({name})", total=len(records))
            scans = []
            for record in records:
                result = scan.scan(record.path, scorer, patch_size, stride)
                scans.append(result)
                if on_scan is not None:
                    on_scan(name, record, result)
                bar.advance(task)
            results[name] = score_scans(scans, records)
    return results
