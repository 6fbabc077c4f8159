"""Soak: sustained load at the measured peak while versions are hot-swapped every few seconds.

Passes when no request fails, every answer is the one its version computes (a half-loaded
version would answer wrongly or fail), and the p99 latency of requests made while a swap is
under way (from the new version's directory appearing until it answers, plus the unload of
the old one) stays within 2x of the p99 of requests made in as long a time just before each
swap. A short run is part of `make test`; `-m soak` runs it for TFSTACK_SOAK_SECONDS
(default 240).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import (
    Answer,
    ChildServer,
    RequestLoop,
    error_counts,
    predict_request,
    save_model,
    wait_until,
    warmup_records,
    x_input,
)

pytestmark = pytest.mark.timeout(1800)

CONCURRENCIES = (1, 2, 4, 8)
SETTLE_SECONDS = 0.5  # after the new version first answers: the old one is being unloaded


def expected_y(version: int) -> float:
    """Odd versions are copies of the w=2 template, even ones of w=3: y = w * 1 + 1."""
    return 3.0 if version % 2 else 4.0


def stage_templates(staging: Path) -> dict[int, Path]:
    warmup = warmup_records(predict_request("m", x_input(1.0)))
    return {
        parity: save_model(staging, parity + 1, w=2.0 + parity, warmup=warmup) for parity in (0, 1)
    }


def publish(repo: Path, templates: dict[int, Path], version: int) -> None:
    """Copy a version in as an exporter does: complete under a temp name, then rename."""
    temp = repo / f".tmp-{version}"
    shutil.copytree(templates[(version + 1) % 2], temp)
    os.rename(temp, repo / str(version))


def peak_concurrency(target: str, seconds: float) -> tuple[int, dict[int, float]]:
    """The number of clients with the highest throughput (the fewest within 5% of it)."""
    throughput = {}
    for clients in CONCURRENCIES:
        with RequestLoop(target, "m", clients) as load:
            time.sleep(seconds)
            answers = load.stop()
        throughput[clients] = len(answers) / seconds
    best = max(throughput.values())
    return min(c for c, rate in throughput.items() if rate >= 0.95 * best), throughput


def p99_ms(answers: list[Answer]) -> float:
    return float(np.percentile([a.seconds for a in answers], 99) * 1000)


def soak(tmp_path: Path, seconds: float, swap_every: float) -> dict:
    repo, staging = tmp_path / "m", tmp_path / "staging"
    repo.mkdir()
    templates = stage_templates(staging)
    publish(repo, templates, 1)
    flags = [f"--model_base_path={repo}", "--model_name=m", "--file_system_poll_wait_seconds=0.2"]
    with ChildServer(flags, tmp_path / "server.log") as server:
        server.start()
        clients, throughput = peak_concurrency(server.target, seconds=1.0)
        windows = []
        with RequestLoop(server.target, "m", clients, max_seconds=seconds + 120) as load:
            time.sleep(swap_every)
            version, ends = 1, time.monotonic() + seconds
            while time.monotonic() < ends:
                version += 1
                swapped = time.monotonic()
                publish(repo, templates, version)
                wait_until(
                    lambda v=version: any(a.version == v for a in load.answers[-50:]),
                    what=f"version {version} answering",
                )
                windows.append((swapped, time.monotonic() + SETTLE_SECONDS))
                time.sleep(swap_every)
                shutil.rmtree(repo / str(version - 1))  # retention: the old one is unloaded
            answers = load.stop()
        log = server.log()

    # Steady state to compare with: the same length of time just before each swap, so that
    # the load of anything else on the machine drifts alike in both.
    controls = [(start - (end - start), start) for start, end in windows]
    during = [a for a in answers if any(s <= a.started <= e for s, e in windows)]
    between = [a for a in answers if any(s <= a.started < e for s, e in controls)]
    figures = {
        "seconds": seconds,
        "clients": clients,
        "throughput_by_clients": {c: round(rate) for c, rate in throughput.items()},
        "requests": len(answers),
        "swaps": len(windows),
        "errors": error_counts(answers),
        "wrong_answers": sum(1 for a in answers if a.version and a.y != expected_y(a.version)),
        "p50_ms_between_swaps": round(float(np.median([a.seconds for a in between])) * 1000, 2),
        "p99_ms_between_swaps": round(p99_ms(between), 2),
        "p99_ms_during_swaps": round(p99_ms(during), 2),
        "requests_during_swaps": len(during),
    }
    print("soak:", json.dumps(figures))
    assert "Traceback" not in log
    return figures


def check(figures: dict, slack_ms: float = 0.0) -> None:
    assert figures["errors"] == {}
    assert figures["wrong_answers"] == 0
    assert figures["swaps"] >= 3
    assert figures["p99_ms_during_swaps"] <= 2 * figures["p99_ms_between_swaps"] + slack_ms


def test_short_soak_with_hot_swaps(tmp_path):
    # 20 s on 2 cores: a swap's SavedModel load shares the CPU with the server, and on an
    # idle machine steady-state p99 is ~3.5 ms, so the ratio alone swings (measured 8.4 vs
    # 3.5 ms once). The short run allows 10 ms of slack on top of 2x; the opt-in soak
    # (`-m soak`, minutes) keeps the plain 2x bound the issue asks for.
    check(soak(tmp_path, seconds=20, swap_every=3.0), slack_ms=10.0)


@pytest.mark.soak
def test_soak_with_hot_swaps(tmp_path):
    check(
        soak(tmp_path, seconds=float(os.environ.get("TFSTACK_SOAK_SECONDS", 240)), swap_every=4.0)
    )
