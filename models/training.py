"""What every family's training shares: progress and history of the custom loop, presets.

Each family writes its own `train_step` (losses differ); `TrainingLog` does the rest
the same way everywhere: a rich progress bar with the latest mean loss and step rate,
and a history of chunks (`log_every` steps, or up to the end of a phase) with each
loss averaged over the chunk, for the checkpoint's history and `tfstack train` output.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

T = TypeVar("T")


class TrainingLog:
    """A context manager around a loop of `total_steps` steps; call `step()` after each.

    `shown` names the loss the bar displays, labelled `label` (default: its name).
    """

    def __init__(
        self,
        description: str,
        total_steps: int,
        log_every: int,
        progress: bool = True,
        shown: str = "loss",
        label: str | None = None,
    ) -> None:
        self.description = description
        self.total_steps = total_steps
        self.log_every = log_every
        self.shown = shown
        self.chunks: list[dict] = []
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(f"{label or shown} {{task.fields[shown]:.4g}}"),
            TextColumn("{task.fields[rate]:.1f} steps/s"),
            TimeRemainingColumn(),
            disable=not progress,
        )
        self._pending: list[Mapping[str, float]] = []
        self._start = self._chunk_start = time.perf_counter()
        self._task = None

    def __enter__(self) -> TrainingLog:
        self._bar.__enter__()
        self._task = self._bar.add_task(
            self.description, total=self.total_steps, shown=float("nan"), rate=0.0
        )
        self._start = self._chunk_start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    def step(self, step: int, losses: Mapping[str, float], phase_end: int | None = None) -> None:
        """Record step `step` (1-based); a chunk closes every `log_every` steps and at
        `phase_end` (default: the last step)."""
        self._pending.append(losses)
        self._bar.update(self._task, completed=step)
        if step % self.log_every and step < (phase_end or self.total_steps):
            return
        now = time.perf_counter()
        means = {name: float(np.mean([row[name] for row in self._pending])) for name in losses}
        self.chunks.append(
            {
                "step": step,
                **means,
                "seconds": round(now - self._start, 3),
                "steps_per_second": round(len(self._pending) / (now - self._chunk_start), 2),
            }
        )
        self._bar.update(
            self._task, shown=means[self.shown], rate=self.chunks[-1]["steps_per_second"]
        )
        self._pending, self._chunk_start = [], now

    def pause(self, description: str) -> None:
        """Work between phases (e.g. hard-negative mining): shown on the bar, not timed as steps."""
        self._bar.update(self._task, description=description)

    def resume(self) -> None:
        self._bar.update(self._task, description=self.description)
        self._chunk_start = time.perf_counter()

    def history(self) -> dict:
        """{"seconds": total wall time, "chunks": [...]} for the checkpoint's history."""
        return {"seconds": round(time.perf_counter() - self._start, 3), "chunks": self.chunks}


def preset_config(presets: Mapping[str, T], preset: str, steps: int | None = None) -> T:
    """A family's `TrainConfig` for `preset`, with `steps` replaced when given."""
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(presets)}")
    config = presets[preset]
    return config if steps is None else dataclasses.replace(config, steps=steps)


def has_checkpoint(load_trained: Callable[[Path], object], workdir: Path) -> bool:
    """Whether `load_trained(workdir)` finds a model (it raises FileNotFoundError if not)."""
    try:
        load_trained(Path(workdir))
    except FileNotFoundError:
        return False
    return True
