"""The server process under load: SIGTERM drains in-flight requests and exits 0 within the
grace period; after SIGKILL a restart serves again within the readiness budget."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import socket
import time

import grpc
import pytest
from serving_helpers import (
    ChildServer,
    RequestLoop,
    Stubs,
    error_counts,
    held_request,
    predict_request,
    save_model,
    wait_until,
    x_input,
)

from serving.server import DRAIN_GRACE_SECONDS

pytestmark = pytest.mark.timeout(300)

HOLD_SECONDS = 1.0  # how long the drained requests still run after SIGTERM
# The Kubernetes startup probe allows 5 minutes; a restart of a small model must need far less.
READINESS_BUDGET_SECONDS = 60.0


def start_held(stubs: Stubs, tmp_path, name: str):
    """A request that runs until its release file exists; returns (future, started, release)."""
    folder = tmp_path / name
    folder.mkdir()
    request, started, release = held_request("m", folder)
    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(stubs.predictions.Predict, request, timeout=60)
    pool.shutdown(wait=False)
    return future, started, release


def test_sigterm_under_load_drains_in_flight_requests_and_exits_0(tmp_path):
    save_model(tmp_path / "m", 1, w=2.0)
    flags = [f"--model_base_path={tmp_path / 'm'}", "--model_name=m", "--rest_api_port=-1"]
    with ChildServer(flags, tmp_path / "server.log") as server:
        server.start()
        stubs = Stubs(server.target)
        held, started, release = start_held(stubs, tmp_path, "held")
        with RequestLoop(server.target, "m", clients=4) as load:
            wait_until(started.exists, what="the held request running")
            wait_until(lambda: load.count() > 50, what="load")
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            time.sleep(HOLD_SECONDS)
            still_running = server.process.poll() is None
            release.touch()
            code = server.process.wait(timeout=60)
            drain_seconds = time.monotonic() - signalled
            answers = load.stop()
        log = server.log()
        stubs.close()

    assert still_running  # it waited for the held request
    assert code == 0, log[-2000:]
    assert held.result(timeout=10).outputs["steps"].int_val  # drained, answered in full
    assert HOLD_SECONDS <= drain_seconds < DRAIN_GRACE_SECONDS
    before = [a for a in answers if a.started + a.seconds < signalled]
    after = [a for a in answers if a.started > signalled + 0.1]
    assert error_counts(before) == {}
    assert set(error_counts(after)) <= {"UNAVAILABLE"}  # refused, never cut off mid-answer
    assert "tfstack-model-server stopped" in log
    print(
        "SIGTERM drain:",
        json.dumps(
            {
                "requests_before": len(before),
                "in_flight_hold_s": HOLD_SECONDS,
                "exit_code": code,
                "sigterm_to_exit_s": round(drain_seconds, 2),
                "refused_after": error_counts(after),
            }
        ),
    )


def test_a_request_stuck_past_the_grace_period_does_not_block_the_exit(tmp_path):
    save_model(tmp_path / "m", 1, w=2.0)
    flags = [f"--model_base_path={tmp_path / 'm'}", "--model_name=m"]
    with ChildServer(flags, tmp_path / "server.log") as server:
        server.start()
        stubs = Stubs(server.target)
        stuck, started, _ = start_held(stubs, tmp_path, "stuck")  # never released
        wait_until(started.exists, what="the stuck request running")
        code, seconds = server.terminate(timeout=DRAIN_GRACE_SECONDS + 30)
        stubs.close()

    assert code == 0, server.log()[-2000:]
    assert DRAIN_GRACE_SECONDS <= seconds < DRAIN_GRACE_SECONDS + 5
    with pytest.raises(grpc.RpcError) as error:
        stuck.result(timeout=10)
    assert error.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    print("stuck request:", json.dumps({"exit_code": code, "sigterm_to_exit_s": round(seconds, 2)}))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def first_answer_seconds(target: str, since: float) -> float:
    """Seconds from `since` until `target` answers a Predict."""
    stubs = Stubs(target)
    try:
        wait_until(
            lambda: _answers(stubs), timeout=READINESS_BUDGET_SECONDS, what=f"{target} serving"
        )
    finally:
        stubs.close()
    return time.monotonic() - since


def _answers(stubs: Stubs) -> bool:
    try:
        return stubs.predict(predict_request("m", x_input(1.0))).outputs["y"].float_val == [3.0]
    except grpc.RpcError:
        return False


def test_after_sigkill_a_restart_serves_again_within_the_readiness_budget(tmp_path):
    """Same port and UNIX socket as the killed process (as a restarted container): nothing it
    left behind (the socket file, the port's TIME_WAIT) may keep the new one from serving."""
    save_model(tmp_path / "m", 1, w=2.0)
    port, socket_path = free_port(), tmp_path / "grpc.sock"
    flags = [
        f"--port={port}",
        f"--grpc_socket_path={socket_path}",
        f"--model_base_path={tmp_path / 'm'}",
        "--model_name=m",
    ]
    with ChildServer(flags, tmp_path / "first.log") as first:
        first.start()
        with RequestLoop(first.target, "m", clients=2) as load:
            wait_until(lambda: load.count() > 50, what="load")
            first.kill()
            killed = time.monotonic()
            time.sleep(0.5)
            answers = load.stop()
    assert socket_path.exists()  # SIGKILL cleaned nothing up

    with ChildServer(flags, tmp_path / "second.log") as second:
        restarted = time.monotonic()
        port_open_seconds = second.start(timeout=READINESS_BUDGET_SECONDS)
        tcp_seconds = first_answer_seconds(second.target, restarted)
        unix_seconds = first_answer_seconds(f"unix:{socket_path}", restarted)

    after_kill = [a for a in answers if a.started > killed]
    assert after_kill and set(error_counts(after_kill)) == {"UNAVAILABLE"}
    assert max(tcp_seconds, unix_seconds) < READINESS_BUDGET_SECONDS
    print(
        "SIGKILL restart:",
        json.dumps(
            {
                "port_open_s": round(port_open_seconds, 2),
                "first_answer_tcp_s": round(tcp_seconds, 2),
                "first_answer_unix_s": round(unix_seconds, 2),
            }
        ),
    )
