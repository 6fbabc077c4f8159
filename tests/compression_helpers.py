"""What every family's compression tests share: a pipeline config on disk, a `tfstack
compress` run through the CLI, and a snapshot that shows whether a repository changed."""

from pathlib import Path

import yaml

from tfstack.cli import main


def write_config(path: Path, model: str, stages: list, gates: dict, measure: dict) -> Path:
    config = {"model": model, "stages": stages, "gates": gates, "measure": measure}
    path.write_text(yaml.safe_dump(config))
    return path


def compress(model: str, config: Path, workdir: Path, repo: Path) -> int:
    paths = ["--config", str(config), "--workdir", str(workdir), "--repo", str(repo)]
    return main(["compress", model, *paths, "--no-progress"])


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Path -> (size, mtime) of everything under `root`."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
    }
