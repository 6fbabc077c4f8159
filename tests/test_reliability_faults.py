"""Faults in the model repository while serving: the served version keeps answering, the
status reports the failure, and an export that fails (disk full) leaves no partial version."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
import pytest
import tensorflow as tf
from serving_helpers import (
    ChildServer,
    RequestLoop,
    Stubs,
    error_counts,
    running_server,
    save_model,
    wait_until,
)
from tensorflow_serving.apis import get_model_status_pb2

from export.repository import ModelRepository
from export.savedmodel import TEMP_PREFIX, ExportError

pytestmark = pytest.mark.timeout(240)

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


def corrupt_saved_model(version: Path) -> None:
    (version / "saved_model.pb").write_bytes(b"\x08\x01garbage, not a SavedModel")


def remove_variables(version: Path) -> None:
    shutil.rmtree(version / "variables")


def half_copied(version: Path) -> None:
    """What `cp -r` shows mid-copy: the graph is there, the variables are not yet."""
    (version / "variables" / "variables.data-00000-of-00001").unlink()


def status_of(stubs, model: str, version: int):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    request.model_spec.version.value = version
    return stubs.models.GetModelStatus(request, timeout=10).model_version_status[0]


def failed_with(stubs, version: int):
    """The version's status once its load has failed (END with an error), else None."""
    try:
        status = status_of(stubs, "m", version)
    except grpc.RpcError:
        return None
    ended = status.state == get_model_status_pb2.ModelVersionStatus.END
    return status if ended and status.status.error_code else None


@pytest.mark.parametrize(
    ("damage", "code", "message"),
    [
        (corrupt_saved_model, grpc.StatusCode.DATA_LOSS, "Could not parse SavedModel"),
        (remove_variables, grpc.StatusCode.NOT_FOUND, "variables"),
        (half_copied, grpc.StatusCode.UNKNOWN, "No such file or directory"),  # TF's code
    ],
    ids=["corrupt saved_model.pb", "missing variables", "partial copy"],
)
def test_a_broken_new_version_is_reported_and_the_served_one_keeps_answering(
    tmp_path, damage, code, message
):
    save_model(tmp_path, 1, w=2.0)
    staged = save_model(tmp_path / "staging", 2, w=3.0)
    with running_server(model_name="m", model_base_path=str(tmp_path)) as (server, stubs):
        with RequestLoop(f"127.0.0.1:{server.port}", "m") as load:
            damage(staged)
            staged.rename(tmp_path / "2")
            status = wait_until(lambda: failed_with(stubs, 2), what="version 2 to fail")
            answers = load.stop()

        assert status.status.error_code == code.value[0]
        assert message in status.status.error_message
        assert error_counts(answers) == {}
        assert {(a.version, a.y) for a in answers} == {(1, 3.0)}
        assert server.manager.serving_versions("m") == [1]


def test_a_completed_copy_is_loaded_once_it_changes(tmp_path):
    """The partial copy above, finished: the version is retried and takes over."""
    save_model(tmp_path, 1, w=2.0)
    staged = save_model(tmp_path / "staging", 2, w=3.0)
    data = staged / "variables" / "variables.data-00000-of-00001"
    saved = data.read_bytes()
    data.unlink()
    with running_server(model_name="m", model_base_path=str(tmp_path)) as (server, stubs):
        staged.rename(tmp_path / "2")
        wait_until(lambda: failed_with(stubs, 2), what="the half copy to fail")
        (tmp_path / "2" / "variables" / data.name).write_bytes(saved)
        wait_until(lambda: server.manager.serving_versions("m") == [2], what="version 2")


def test_deleting_the_served_version_falls_back_without_a_failed_request(tmp_path):
    """Availability first: the older version loads while the deleted one still answers
    from memory, and only then is the deleted one unloaded."""
    save_model(tmp_path, 1, w=2.0)
    save_model(tmp_path, 2, w=3.0)
    with (
        running_server(model_name="m", model_base_path=str(tmp_path)) as (server, _),
        RequestLoop(f"127.0.0.1:{server.port}", "m") as load,
    ):
        wait_until(lambda: load.count() > 20, what="load")
        shutil.rmtree(tmp_path / "2")
        wait_until(lambda: server.manager.serving_versions("m") == [1], what="fallback")
        wait_until(lambda: load.answers[-1].version == 1, what="answers from version 1")
        answers = load.stop()

    assert error_counts(answers) == {}
    assert {(a.version, a.y) for a in answers} == {(2, 4.0), (1, 3.0)}
    first_from_1 = next(i for i, a in enumerate(answers) if a.version == 1)
    assert all(a.version == 1 for a in answers[first_from_1 + 8 :])  # no flapping back


# Root reads any file: the server runs without the capabilities that allow it, as a
# Kubernetes pod (non-root) would.
WITHOUT_ROOTS_OVERRIDE = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]


@pytest.mark.skipif(
    os.geteuid() == 0 and not shutil.which("setpriv"), reason="root without setpriv"
)
def test_an_unreadable_version_is_permission_denied_until_fixed(tmp_path):
    """A version copied in unreadable fails with PERMISSION_DENIED, the served one keeps
    answering, and fixing the mode is a change the server retries."""
    repo = tmp_path / "m"
    save_model(repo, 1, w=2.0)
    staged = save_model(tmp_path / "staging", 2, w=3.0)
    (staged / "saved_model.pb").chmod(0)
    flags = [f"--model_base_path={repo}", "--model_name=m", "--max_num_load_retries=0"]
    flags.append("--file_system_poll_wait_seconds=0.2")
    prefix = WITHOUT_ROOTS_OVERRIDE if os.geteuid() == 0 else []
    with ChildServer(flags, tmp_path / "server.log", prefix) as server:
        server.start()
        stubs = Stubs(server.target)
        with RequestLoop(server.target, "m") as load:
            staged.rename(repo / "2")
            status = wait_until(lambda: failed_with(stubs, 2), what="permission denied")
            answers = load.stop()
        assert status.status.error_code == grpc.StatusCode.PERMISSION_DENIED.value[0]
        assert "Permission denied" in status.status.error_message
        assert error_counts(answers) == {}
        assert {a.version for a in answers} == {1}

        (repo / "2" / "saved_model.pb").chmod(0o644)
        wait_until(lambda: status_of(stubs, "m", 2).state == AVAILABLE, what="version 2")
        stubs.close()


# -- disk full during export ----------------------------------------------------------------

BIG_MODULE = """
class Big(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.ones([1 << 20]))  # 4 MiB of variables

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def serve(self, x):
        return {"y": x * self.w[0]}
"""


def export_big(root: Path) -> str:
    """Export the 4 MiB model into `root` in this process; "" or the ExportError text."""
    namespace: dict = {"tf": tf}
    exec(BIG_MODULE, namespace)  # the same module the child process exports
    module = namespace["Big"]()
    try:
        ModelRepository(root).export("m", module, {"serving_default": module.serve})
    except ExportError as err:
        return str(err)
    return ""


EXPORT_WITH_A_FILE_SIZE_LIMIT = """
import json, resource, signal, sys
import tfstack
import tensorflow as tf
from export.repository import ModelRepository
from export.savedmodel import ExportError
BIG_MODULE
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
module = Big()
try:
    ModelRepository(sys.argv[1]).export("m", module, {"serving_default": module.serve})
    print(json.dumps({"error": ""}))
except ExportError as err:
    print(json.dumps({"error": str(err)}))
"""


def leftovers(model_dir: Path) -> list[str]:
    return sorted(child.name for child in model_dir.iterdir() if child.name != "1")


def test_export_past_a_file_size_limit_reports_it_and_leaves_no_partial_version(tmp_path):
    """RLIMIT_FSIZE in a child process: its writes past 1 MiB fail with EFBIG, as on a full
    disk, without needing the privileges to mount a small file system."""
    save_model(tmp_path / "m", 1, w=2.0)
    ModelRepository(tmp_path).write_config()
    config_before = (tmp_path / "models.config").read_text()
    child = EXPORT_WITH_A_FILE_SIZE_LIMIT.replace("BIG_MODULE", BIG_MODULE)
    with running_server(model_name="m", model_base_path=str(tmp_path / "m")) as (server, _):
        with RequestLoop(f"127.0.0.1:{server.port}", "m") as load:
            done = subprocess.run(
                [sys.executable, "-c", child, str(tmp_path)],
                capture_output=True,
                text=True,
                timeout=180,
                cwd=Path(__file__).parent.parent,
            )
            answers = load.stop()
        assert server.manager.serving_versions("m") == [1]

    assert done.returncode == 0, done.stderr[-2000:]
    error = json.loads(done.stdout.strip().splitlines()[-1])["error"]
    assert "could not export a version" in error
    assert "File too large" in error
    assert leftovers(tmp_path / "m") == []  # no version 2, no temp directory
    assert (tmp_path / "models.config").read_text() == config_before
    assert error_counts(answers) == {}
    assert {a.version for a in answers} == {1}


def can_mount_tmpfs() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(tempfile.mkdtemp(prefix="tfstack-tmpfs-probe-"))
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True
        )
        if mounted.returncode == 0:
            subprocess.run(["umount", str(probe)], check=True)
        return mounted.returncode == 0
    finally:
        probe.rmdir()


@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs root and a mountable tmpfs")
def test_export_onto_a_full_file_system_while_serving_from_it(tmp_path):
    """A real full disk: a 2 MiB tmpfs holds the repository and version 1; the 4 MiB export
    fails with ENOSPC, is cleaned up, and the server keeps serving version 1 from it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(repo)], check=True)
    try:
        save_model(repo / "m", 1, w=2.0)
        with running_server(model_name="m", model_base_path=str(repo / "m")) as (server, _):
            with RequestLoop(f"127.0.0.1:{server.port}", "m") as load:
                error = export_big(repo)
                answers = load.stop()
            assert server.manager.serving_versions("m") == [1]
        assert "No space left on device" in error
        assert leftovers(repo / "m") == []
        assert not any(child.name.startswith(TEMP_PREFIX) for child in (repo / "m").iterdir())
        assert error_counts(answers) == {}
        assert {a.version for a in answers} == {1}
    finally:
        subprocess.run(["umount", str(repo)], check=True)
