"""Memory stays bounded: the server's RSS under thousands of bad requests, and across version
load/unload cycles (measured on a child server process; figures in the README)."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import shutil
from collections import Counter

import grpc
import pytest
from serving_helpers import (
    REQUEST_LIMIT_BYTES,
    ChildServer,
    Stubs,
    bad_grpc_requests,
    bad_rest_requests,
    predict_request,
    save_image_model,
    save_model,
    wait_until,
    write_models_config,
    x_input,
)

pytestmark = pytest.mark.timeout(900)

MB = 1e6


def send_bad_requests(server: ChildServer, rounds: int, clients: int = 4) -> Counter:
    """Every bad request of the corpus, `rounds` times over, from `clients` threads; returns
    how often each answer came (gRPC code names, HTTP statuses)."""
    grpc_cases, rest_cases = bad_grpc_requests(), bad_rest_requests()

    def one_round(_: int) -> Counter:
        answers: Counter = Counter()
        with grpc.insecure_channel(server.target) as channel:
            predict = channel.unary_unary(
                "/tensorflow.serving.PredictionService/Predict",
                request_serializer=lambda request: request.SerializeToString(),
            )
            for case in grpc_cases:
                try:
                    predict(case.request, timeout=30)
                    answers["OK"] += 1
                except grpc.RpcError as err:
                    assert err.code() == case.code, (case.name, err.details())
                    answers[err.code().name] += 1
        connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
        try:
            for case in rest_cases:
                connection.request("POST", case.path, body=case.body, headers=dict(case.headers))
                response = connection.getresponse()
                json.loads(response.read())
                assert response.status == case.status, case.name
                answers[f"HTTP {response.status}"] += 1
                if response.getheader("Connection") == "close":
                    connection.close()
        finally:
            connection.close()
        return answers

    total: Counter = Counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for answers in pool.map(one_round, range(rounds)):
            total.update(answers)
    return total


def rss_under_bad_requests(tmp_path, warmup_rounds: int, rounds: int) -> dict:
    save_model(tmp_path / "tiny", 1, w=2.0)
    save_image_model(tmp_path / "image", 1)
    config = write_models_config(
        tmp_path / "models.config", {"tiny": tmp_path / "tiny", "image": tmp_path / "image"}
    )
    flags = [
        f"--model_config_file={config}",
        "--rest_api_port=-1",
        f"--max_request_bytes={REQUEST_LIMIT_BYTES}",
    ]
    with ChildServer(flags, tmp_path / "server.log") as server:
        server.start()
        send_bad_requests(server, warmup_rounds)
        before = server.rss_bytes()
        halfway = send_bad_requests(server, rounds // 2)
        middle = server.rss_bytes()
        answers = halfway + send_bad_requests(server, rounds - rounds // 2)
        after = server.rss_bytes()
        stubs = Stubs(server.target)
        assert stubs.predict(predict_request("tiny", x_input(1.0))).outputs["y"].float_val == [3.0]
        stubs.close()
    figures = {
        "requests": sum(answers.values()),
        "answers": dict(sorted(answers.items())),
        "rss_after_warmup_mb": round(before / MB, 1),
        "rss_growth_first_half_mb": round((middle - before) / MB, 1),
        "rss_growth_second_half_mb": round((after - middle) / MB, 1),
    }
    print("bad requests:", json.dumps(figures))
    return figures


def test_rss_stays_bounded_under_a_thousand_bad_requests(tmp_path):
    figures = rss_under_bad_requests(tmp_path, warmup_rounds=4, rounds=32)

    assert figures["requests"] >= 1000
    assert "OK" not in figures["answers"]
    assert figures["rss_growth_first_half_mb"] + figures["rss_growth_second_half_mb"] < 16


@pytest.mark.slow
def test_rss_stays_bounded_under_ten_thousand_bad_requests(tmp_path):
    figures = rss_under_bad_requests(tmp_path, warmup_rounds=8, rounds=320)

    assert figures["requests"] >= 10_000
    assert figures["rss_growth_first_half_mb"] + figures["rss_growth_second_half_mb"] < 32
    assert figures["rss_growth_second_half_mb"] < 8  # no leak that keeps growing


def rss_across_swaps(tmp_path, cycles: int, settle: int = 3) -> dict:
    """Load a new version and unload the old one `cycles` times; RSS after each cycle."""
    repo, staging = tmp_path / "m", tmp_path / "staging"
    repo.mkdir()
    versions = [save_model(staging, 1, w=2.0), save_model(staging, 2, w=3.0)]
    shutil.copytree(versions[0], repo / "1")
    flags = [f"--model_base_path={repo}", "--model_name=m", "--file_system_poll_wait_seconds=0.1"]
    rss = []
    with ChildServer(flags, tmp_path / "server.log") as server:
        server.start()
        stubs = Stubs(server.target)
        for version in range(2, cycles + 2):
            shutil.copytree(versions[version % 2], repo / str(version))
            wait_until(
                lambda v=version: (
                    stubs.states("m").get(v - 1) == "END"
                    and stubs.states("m").get(v) == "AVAILABLE"
                ),
                what=f"version {version} swapped in",
            )
            stubs.predict(predict_request("m", x_input(1.0)))
            shutil.rmtree(repo / str(version - 1))
            rss.append(server.rss_bytes())
        stubs.close()
    figures = {
        "cycles": cycles,
        "rss_after_first_cycles_mb": round(rss[settle - 1] / MB, 1),
        "growth_per_cycle_mb": round((rss[-1] - rss[settle - 1]) / (cycles - settle) / MB, 3),
    }
    print("load/unload:", json.dumps(figures))
    return figures


def test_memory_is_released_when_versions_are_unloaded(tmp_path):
    """Without gc + malloc_trim after an unload (serving.memory) each cycle kept ~1.3 MB."""
    figures = rss_across_swaps(tmp_path, cycles=10)

    assert figures["growth_per_cycle_mb"] < 0.5


@pytest.mark.slow
def test_memory_is_released_over_sixty_swaps(tmp_path):
    figures = rss_across_swaps(tmp_path, cycles=60, settle=5)

    assert figures["growth_per_cycle_mb"] < 0.25
