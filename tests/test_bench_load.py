"""The load generator (benchmarks/load.py) against real servers on 127.0.0.1: the trivial
server (no work) and tfstack-model-server with the benchmark's tiny SavedModel."""

from __future__ import annotations

import json

import pytest

from benchmarks.limit import measure_limit
from benchmarks.load import LoadGenerator, LoadResult, LoadSpec
from benchmarks.tfserving_targets import GrpcPredictTarget
from benchmarks.tfstack_server import TfstackServer
from benchmarks.trivial_server import TrivialServer
from benchmarks.workloads import build_workloads
from tfstack import cli

SHORT = {"seconds": 1.5, "warmup_seconds": 0.5}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_workloads(tmp_path_factory.mktemp("bench-models"), names=["tiny"])["tiny"]


@pytest.fixture(scope="module")
def load():
    with LoadGenerator(processes=2) as generator:
        yield generator


@pytest.fixture(scope="module")
def tfstack_server(tiny, tmp_path_factory):
    with TfstackServer({"tiny": tiny}, tmp_path_factory.mktemp("tfstack-server")) as server:
        yield server


def assert_clean(result: LoadResult, at_least: int) -> None:
    assert result.errors == {}
    assert result.requests >= at_least
    assert 0 < result.p50_ms <= result.p90_ms <= result.p99_ms <= result.max_ms
    assert result.throughput == pytest.approx(result.requests / result.seconds)


def test_closed_and_open_loop_against_the_trivial_server(tiny, load):
    with TrivialServer({"tiny": tiny}) as server:
        (target,) = server.targets(tiny)
        closed = load.run(target, tiny, LoadSpec(concurrency=8, **SHORT))
        bounded = load.run(target, tiny, LoadSpec(concurrency=4, max_requests=60, seconds=30))
        opened = load.run(target, tiny, LoadSpec(rate=200, **SHORT))
    assert_clean(closed, at_least=100)
    assert closed.processes == 2 and closed.mode == "closed"
    assert bounded.requests == 60 and bounded.seconds < 30
    # Open loop: exactly the scheduled sends of the measured 1.5 s at 200/s, whatever the
    # server does; latency counted from the schedule.
    assert_clean(opened, at_least=300)
    assert opened.requests == pytest.approx(300, abs=2)
    assert opened.mode == "open" and opened.send_lag_p99_ms is not None


def test_tfstack_server_over_grpc_and_rest(tiny, load, tfstack_server):
    grpc_target, rest_target = tfstack_server.targets(tiny)
    for target in (grpc_target, rest_target):
        assert_clean(load.run(target, tiny, LoadSpec(concurrency=4, **SHORT)), at_least=20)
    assert_clean(load.run(grpc_target, tiny, LoadSpec(rate=100, **SHORT)), at_least=140)


def test_a_wrong_model_name_is_counted_as_errors(tiny, load, tfstack_server):
    target = GrpcPredictTarget(tfstack_server.grpc_address, "wrong name", model_name="nope")
    result = load.run(target, tiny, LoadSpec(concurrency=2, **SHORT))
    assert result.requests == 0
    assert set(result.errors) == {"grpc NOT_FOUND"} and result.errors["grpc NOT_FOUND"] > 10


def test_cli_load_writes_json(tfstack_server, tmp_path):
    out = tmp_path / "load.json"
    argv = ["bench", "load", "--server", tfstack_server.grpc_address, "--model", "tiny"]
    argv += ["--seconds", "1", "--warmup", "0.5", "--concurrency", "4", "--processes", "1"]
    argv += ["--json", str(out)]
    assert cli.main(argv) == 0
    written = json.loads(out.read_text())
    assert written["workload"] == "tiny" and written["errors"] == {}
    assert written["requests"] > 10 and written["p50_ms"] <= written["p99_ms"]


def test_limit_in_process(tiny):
    limit = measure_limit(tiny, seconds_per_slice=0.1, rounds=1, batch_sizes=(1, 16))
    assert set(limit.rows_per_second_by_batch) == {1, 16}
    # The tiny model's call is all overhead: 16 rows cost about what 1 does.
    assert limit.rows_per_second_by_batch[16] > 2 * limit.batch1_rows_per_second
    assert limit.best_batch == 16 and limit.best_rows == limit.rows_per_second_by_batch[16]
    assert 0 < limit.batch1_call_us < 1e6 / limit.batch1_rows_per_second * 2
