"""The shipped superres pipeline on the `demo` preset model: the release gates pass.

Slow (about 15 minutes on two cores: training the demo model, then the pipeline);
opt-in with `pytest -m slow tests/test_compression_release.py`.
"""

from __future__ import annotations

import json

import pytest

from tfstack.cli import main


@pytest.mark.slow
def test_the_shipped_superres_pipeline_releases_a_4x_smaller_2x_faster_model(tmp_path):
    workdir, repo = tmp_path / "work", tmp_path / "repo"
    assert main(["train", "superres", "--preset", "demo", "--workdir", str(workdir)]) == 0

    assert main(["compress", "superres", "--workdir", str(workdir), "--repo", str(repo)]) == 0

    report = json.loads((repo / "superres" / "1" / "compression" / "report.json").read_text())
    final = report["stages"][-1]
    assert final["relative_metric_drop"] <= 0.01
    assert final["size_reduction"] >= 4
    assert min(final["speedup"].values()) >= 2
    assert final["metric"] > report["reference"][1]  # still beats bicubic
