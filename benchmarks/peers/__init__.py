"""The Python serving peers tfstack-model-server is compared with, each in its own venv.

- "mlserver" / "mlserver-batching": Seldon MLServer 1.7, gRPC v2, adaptive batching off / on;
- "kserve": KServe 0.21's Python ModelServer, gRPC v2 and REST v2;
- "bentoml": BentoML 1.4, HTTP with adaptive batching.
Each serves the benchmark's SavedModels through a minimal adapter (adapters/, run by the
peer's own interpreter) with the peer's documented settings (see each *_peer module), bound
to 127.0.0.1. `setup_peers()` builds the venvs (.venv-peers/<venv>) the servers run from;
the Targets that call them run in the project's venv.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.peers.bentoml_peer import BentoMLPeer
from benchmarks.peers.kserve_peer import KServePeer
from benchmarks.peers.mlserver_peer import MLServerBatchingPeer, MLServerPeer
from benchmarks.peers.process import PeerServer
from benchmarks.peers.venvs import DEFAULT_ROOT, setup_peers
from benchmarks.workloads import Workload

PEERS: dict[str, type[PeerServer]] = {
    "mlserver": MLServerPeer,
    "mlserver-batching": MLServerBatchingPeer,
    "kserve": KServePeer,
    "bentoml": BentoMLPeer,
}

__all__ = ["PEERS", "peer", "setup_peers"]


def peer(name: str, workloads: dict[str, Workload], root: Path = DEFAULT_ROOT) -> PeerServer:
    """The named peer, not started yet: use it as a context manager."""
    if name not in PEERS:
        raise ValueError(f"unknown peer. Expected one of {sorted(PEERS)}. Received: name={name!r}")
    return PEERS[name](workloads, root)
