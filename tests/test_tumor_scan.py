"""Heatmap, detections, FROC and AUC on slides whose answer is known exactly.

The slides here are written by the real writer (pyramidal TIFF, read back through
OpenSlide) but hold pure blue discs as lesions on pink tissue, and an oracle scorer
reports the blue share of a patch's centre: every figure then has one right value.
"""

import json

import numpy as np
import pytest

from models.tumor import baseline, evaluate, scan, slide_io, slides
from tfstack.cli import main

SIZE, PATCH, STRIDE = 768, 64, 32
TISSUE = (slice(96, 672), slice(96, 672))  # rows, cols of the pink tissue
LESION_RADIUS = 50
TUMOR_CENTRES = [(200, 200), (520, 260), (380, 560)]  # (x, y)


def _known_slide(directory, name: str, centres) -> slides.SlideRecord:
    rgb = np.full((SIZE, SIZE, 3), 242, np.uint8)
    rgb[TISSUE] = (225, 140, 190)
    labels = np.zeros((SIZE, SIZE), np.uint8)
    rows, cols = np.indices(labels.shape)
    for label, (x, y) in enumerate(centres, start=1):
        disc = (cols - x) ** 2 + (rows - y) ** 2 <= LESION_RADIUS**2
        rgb[disc] = (30, 30, 200)
        labels[disc] = label
    lesions = slides.describe_lesions(labels, [{"kind": "painted"}] * len(centres))
    generated = slides.GeneratedSlide(rgb, labels, lesions, mimics=[], params={})
    return slides.write_slide(directory, name, generated)


def oracle(patches: np.ndarray) -> np.ndarray:
    """Share of lesion-blue pixels in each patch's central stride x stride window."""
    lo, hi = (PATCH - STRIDE) // 2, (PATCH + STRIDE) // 2
    centre = patches[:, lo:hi, lo:hi].astype(int)
    blue = (centre[..., 2] > 150) & (centre[..., 0] < 100)
    return blue.mean(axis=(1, 2))


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    directory = tmp_path_factory.mktemp("known")
    return (
        _known_slide(directory, "tumor", TUMOR_CENTRES),
        _known_slide(directory, "normal", []),
    )


def test_tissue_grid_covers_the_tissue_and_not_the_glass(known):
    cells = scan.tissue_cells(known[0].path, STRIDE)
    assert cells.shape == (SIZE // STRIDE, SIZE // STRIDE)
    expected = np.zeros_like(cells)
    expected[3:21, 3:21] = True  # tissue spans px 96-672: cells 3..20
    assert (cells == expected).all()


def test_heatmap_is_one_on_lesions_and_zero_elsewhere(known):
    heatmap = scan.score_heatmap(known[0].path, oracle, PATCH, STRIDE, batch_size=50)
    for x, y in TUMOR_CENTRES:
        assert heatmap.probabilities[y // STRIDE, x // STRIDE] == 1.0
    assert heatmap.probabilities[5, 12] == 0.0  # tissue, far from every lesion
    assert heatmap.probabilities[0, 0] == 0.0 and not heatmap.tissue[0, 0]
    labels = known[0].labels()
    centres = np.argwhere(heatmap.tissue) * STRIDE + STRIDE // 2
    inside = labels[centres[:, 0], centres[:, 1]] > 0
    assert (heatmap.probabilities[heatmap.tissue][inside] > 0.4).all()
    assert (heatmap.probabilities[heatmap.tissue][~inside] < 0.6).all()


def test_detections_find_each_lesion_once_and_froc_and_auc_are_perfect(known):
    tumor = known[0]
    results = [scan.scan(r.path, oracle, PATCH, STRIDE, radius_px=128) for r in known]
    assert results[0].slide_score == 1.0 and results[1].slide_score == 0.0
    assert results[1].detections == []
    hits = evaluate.hit_lesions(results[0].detections, tumor.labels())
    assert sorted(hits[: len(TUMOR_CENTRES)]) == [1, 2, 3]
    for detection in results[0].detections[: len(TUMOR_CENTRES)]:
        assert detection.probability == 1.0
        assert min(np.hypot(detection.x - x, detection.y - y) for x, y in TUMOR_CENTRES) < 50
    scores = evaluate.score_scans(results, known)
    assert scores["froc"] == 1.0
    assert scores["slide_auc"] == 1.0
    assert scores["lesions_found"] == scores["lesions"] == 3


def test_a_detector_that_sees_only_normal_tissue_scores_zero(known):
    def inverted(patches):
        return 1.0 - oracle(patches)

    results = [scan.scan(r.path, inverted, PATCH, STRIDE) for r in known]
    scores = evaluate.score_scans(results, known)
    assert scores["froc"] == 0.0
    assert scores["lesions_found"] == 0
    assert scores["slide_auc"] == 0.5  # both slides reach 1.0 somewhere


def test_froc_by_hand():
    """Lesions 1, 2 on slide A, 3 on slide B, none on C; see the sweep in the comments."""
    a = np.zeros((100, 300), np.int64)
    a[10:30, 10:30], a[10:30, 200:220] = 1, 2
    b = np.zeros((100, 300), np.int64)
    b[50:70, 50:70] = 1
    c = np.zeros((100, 300), np.int64)
    d = scan.Detection
    per_slide = [
        evaluate.SlideDetections(
            [d(20, 20, 0.9), d(150, 50, 0.8), d(25, 15, 0.7), d(210, 20, 0.3)], a, [1, 2]
        ),
        evaluate.SlideDetections([d(280, 90, 0.95), d(60, 60, 0.6)], b, [1]),
        evaluate.SlideDetections([d(5, 5, 0.5)], c, []),
    ]
    curve = evaluate.froc(per_slide)
    # threshold: 0.95 (1 FP) 0.9 (+L1) 0.8 (2 FP) 0.7 (L1 again: ignored) 0.6 (+L3)
    # 0.5 (3 FP) 0.3 (+L2): FP/slide 1/3, 1/3, 2/3, 2/3, 2/3, 1, 1; sensitivity 0, 1/3,
    # 1/3, 1/3, 2/3, 2/3, 1. Within 1/4 FP/slide: 0; within 1/2: 1/3; from 1 on: 1.
    assert curve["sensitivity_at"] == pytest.approx(
        {"0.25": 0.0, "0.5": 1 / 3, "1.0": 1.0, "2.0": 1.0, "4.0": 1.0, "8.0": 1.0}
    )
    assert curve["score"] == pytest.approx(13 / 18)
    assert curve["lesions_found"] == 3


def test_evaluation_mask_grows_lesions_by_the_margin():
    labels = np.zeros((200, 200), np.uint8)
    labels[90:110, 40:60] = 1
    labels[90:110, 140:160] = 2
    mask = evaluate.evaluation_mask(labels, margin_px=45)
    detections = [scan.Detection(50, 130, 0.9), scan.Detection(50, 160, 0.9)]
    assert evaluate.hit_lesions(detections, mask).tolist() == [1, 0]
    assert mask[100, 99] == 1 and mask[100, 101] == 2  # the nearer lesion wins


def test_froc_and_auc_refuse_what_they_cannot_score():
    empty = np.zeros((10, 10), np.int64)
    with pytest.raises(ValueError, match="at least one lesion"):
        evaluate.froc([evaluate.SlideDetections([], empty, [])])
    with pytest.raises(ValueError, match="both tumor and normal"):
        evaluate.slide_auc([0.2, 0.9], [True, True])
    assert evaluate.slide_auc([0.9, 0.5, 0.5, 0.1], [True, True, False, False]) == 0.875


def test_non_maximum_suppression_reports_peaks_in_order():
    probabilities = np.zeros((20, 20), np.float32)
    probabilities[5, 5], probabilities[5, 7], probabilities[15, 15] = 0.875, 0.75, 0.5
    probabilities[19, 0], probabilities[19, 2] = 0.25, 0.125  # at the edge
    probabilities[1, 18] = 0.04  # below min_probability
    heatmap = scan.Heatmap(probabilities, probabilities > 0, STRIDE, PATCH, 640, 640)
    found = scan.detect_lesions(heatmap, min_probability=0.05, radius_px=3 * STRIDE)
    assert found == [
        scan.Detection(176.0, 176.0, 0.875),
        scan.Detection(496.0, 496.0, 0.5),
        scan.Detection(16.0, 624.0, 0.25),
    ]
    assert all(type(value) is float for value in vars(found[0]).values())  # JSON-ready
    closer = scan.detect_lesions(heatmap, min_probability=0.05, radius_px=STRIDE)
    assert [d.probability for d in closer] == [0.875, 0.75, 0.5, 0.25, 0.125]
    assert len(scan.detect_lesions(heatmap, max_detections=2)) == 2


def test_off_slide_pixels_read_as_glass(known):
    with slide_io.open_slide(known[0].path) as slide:
        corner = slide_io.read_region(slide, -20, -20, 40, 40)
    assert (corner[:20, :20] == 255).all()
    assert (corner[20:, 20:] == 242).all()


def test_baseline_scores_dark_stained_pixels():
    glass = np.full((1, 8, 8, 3), 242, np.uint8)
    nuclei = np.broadcast_to(np.array([70, 40, 120], np.uint8), (1, 8, 8, 3))
    stroma = np.broadcast_to(np.array([235, 150, 200], np.uint8), (1, 8, 8, 3))
    scores = baseline.darkness_scores(np.concatenate([glass, nuclei, stroma]))
    assert scores.tolist() == [0.0, 1.0, 0.0]


def test_cli_makes_slides_and_scans_them_with_the_baseline(tmp_path):
    out = tmp_path / "slides"
    args = ["tumor", "make-slides", "--out", str(out), "--count", "2", "--size", "768"]
    assert main([*args, "--no-progress"]) == 0
    records = slides.load_slides(out)
    assert [r.name for r in records] == ["heldout-0-000", "heldout-0-001"]
    scans = tmp_path / "scans"
    assert (
        main(
            [
                "tumor",
                "scan",
                "--baseline",
                "--no-progress",
                "--workdir",
                str(tmp_path / "untrained"),
                "--output-dir",
                str(scans),
                str(records[0].path),
            ]
        )
        == 0
    )
    report = json.loads((scans / "heldout-0-000_detections.json").read_text())
    assert report["patch_size"] == PATCH and report["stride"] == STRIDE
    assert report["ground_truth"]["lesions"] == list(records[0].lesions)
    assert report["patches"] > 0 and 0.0 < report["slide_score"] <= 1.0
    assert (scans / "heldout-0-000_heatmap.png").stat().st_size > 1000
