"""The real slide (SVS through OpenSlide) and the slide generator built on it."""

import json
import sys

import numpy as np
import openslide
import pytest

from models.tumor import slide_io, slides, sources, stain
from models.tumor.tissue import tissue_mask

SPEC = slides.SlideSpec(height=768, width=768)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Three held-out slides (the first two with tumor), written and read back."""
    directory = tmp_path_factory.mktemp("slides")
    return slides.make_slides(directory, "heldout", 3, SPEC, seed=7), directory


def test_reads_the_real_svs_through_openslide():
    path = sources.data_file(sources.NORMAL_SLIDE)
    with slide_io.open_slide(path) as slide:
        assert slide.properties[openslide.PROPERTY_NAME_VENDOR] == "aperio"
        assert slide.dimensions == (2220, 2967)
        assert slide_io.microns_per_pixel(slide) == pytest.approx(0.499)
        region = slide_io.read_region(slide, 800, 1400, 256, 256)
        level = slide_io.read_level(slide, 0)
    assert region.shape == (256, 256, 3) and region.dtype == np.uint8
    np.testing.assert_array_equal(region, level[1400:1656, 800:1056])
    assert 0.2 < tissue_mask(level[::4, ::4]).mean() < 0.6  # a strip of skin on glass
    assert stain.hematoxylin(region).mean() > stain.hematoxylin(level[:64, :64]).mean() + 0.02


def test_splits_use_disjoint_regions_of_the_real_images():
    train, heldout = sources.tissue_sources("train"), sources.tissue_sources("heldout")
    assert train.normal.shape[0] + heldout.normal.shape[0] == 2967
    assert train.normal.shape[1] == heldout.normal.shape[1] == 2220
    assert train.carcinoma.shape[1] == heldout.carcinoma.shape[1]
    assert min(train.carcinoma.shape[0], heldout.carcinoma.shape[0]) > 200
    with pytest.raises(ValueError, match="Received: split='test'"):
        sources.tissue_sources("test")


def test_missing_images_name_make_setup(tmp_path, monkeypatch):
    monkeypatch.setenv(sources.DATA_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    with pytest.raises(FileNotFoundError, match="run `make setup`"):
        sources.data_file(sources.NORMAL_SLIDE)
    (tmp_path / sources.NORMAL_SLIDE).write_bytes(b"")
    assert sources.data_file(sources.NORMAL_SLIDE) == tmp_path / sources.NORMAL_SLIDE


def test_slides_are_pyramidal_tiffs_that_openslide_reads(written):
    records, _ = written
    generated = slides.generate_slide(SPEC, "heldout", 0, seed=7)
    with slide_io.open_slide(records[0].path) as slide:
        assert slide.properties[openslide.PROPERTY_NAME_VENDOR] == "generic-tiff"
        assert slide.level_count > 1
        assert slide.dimensions == (768, 768)
        assert slide.level_dimensions[1] == (384, 384)
        assert slide_io.microns_per_pixel(slide) == pytest.approx(sources.MICRONS_PER_PIXEL)
        pixels = slide_io.read_level(slide, 0)
    np.testing.assert_array_equal(pixels, generated.rgb)  # lossless, and deterministic


def test_masks_and_lesion_lists_agree(written):
    records, directory = written
    assert [r.has_tumor for r in records] == [True, True, False]  # every 3rd slide is normal
    for record in records:
        labels = record.labels()
        description = json.loads((directory / f"{record.name}.json").read_text())
        assert description["lesions"] == list(record.lesions)
        assert sorted(np.unique(labels[labels > 0]).tolist()) == [
            lesion["id"] for lesion in record.lesions
        ]
        for lesion in record.lesions:
            x0, y0, x1, y1 = lesion["bbox"]
            assert (labels == lesion["id"]).sum() == lesion["area_px"]
            assert (labels[y0:y1, x0:x1] == lesion["id"]).sum() == lesion["area_px"]
            assert 60 <= lesion["diameter_px"] <= 700
        kinds = {mimic["kind"] for mimic in description["mimics"]}
        assert "lymphoid_aggregate" in kinds  # every slide has a darkness mimic


def test_lesions_lie_in_tissue_and_seeds_give_other_slides(written):
    records, _ = written
    with slide_io.open_slide(records[0].path) as slide:
        rgb = slide_io.read_level(slide, 0)
    assert tissue_mask(rgb)[records[0].labels() > 0].mean() > 0.9
    other_seed = slides.generate_slide(SPEC, "heldout", 0, seed=8)
    assert not np.array_equal(other_seed.rgb, rgb)


def test_make_slides_reuses_a_matching_set_and_regenerates_otherwise(written, tmp_path):
    records, directory = written
    stamp = records[0].path.stat().st_mtime_ns
    again = slides.make_slides(directory, "heldout", 3, SPEC, seed=7)
    assert again == records and records[0].path.stat().st_mtime_ns == stamp
    fewer = slides.make_slides(directory, "heldout", 1, SPEC, seed=7)
    assert [r.name for r in fewer] == ["heldout-7-000"]
    with pytest.raises(FileNotFoundError, match="no slide set"):
        slides.load_slides(tmp_path)
    with pytest.raises(ValueError, match="at least 512"):
        slides.SlideSpec(height=256)


def test_stain_round_trip_is_exact_for_untouched_pixels():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(stain.hed_to_rgb(stain.rgb_to_hed(rgb)), rgb)
