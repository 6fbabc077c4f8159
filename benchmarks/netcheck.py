"""Which sockets of a server reach, or could be reached from, beyond this machine.

Every server in a benchmark run must talk to 127.0.0.1 only. A socket counts against
it when its remote address is not loopback (an outbound connection) or when it listens
(TCP) or waits for datagrams (UDP) on an address that is not loopback, e.g. 0.0.0.0,
where other machines could reach it. Children are included: MLServer's inference
workers and BentoML's HTTP workers are child processes.
"""

from __future__ import annotations

import ipaddress
import socket

import psutil


def foreign_connections(pids: list[int]) -> list[str]:
    """Every inet connection of these processes (and their children) whose remote address is
    not loopback, and every listening socket bound beyond loopback, as readable strings;
    [] means clean."""
    found = []
    for process in _with_children(pids):
        try:
            connections = process.net_connections(kind="inet")
            name = process.name()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        for connection in connections:
            if problem := _problem(connection):
                found.append(f"pid {process.pid} ({name}): {problem}")
    return found


def _with_children(pids: list[int]) -> list[psutil.Process]:
    processes: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            parent = psutil.Process(pid)
            for process in [parent, *parent.children(recursive=True)]:
                processes[process.pid] = process
        except psutil.NoSuchProcess:
            continue
    return list(processes.values())


def _problem(connection) -> str | None:
    local, remote = connection.laddr, connection.raddr
    kind = "udp" if connection.type == socket.SOCK_DGRAM else "tcp"
    if remote and not _is_loopback(remote.ip):
        return f"{kind} {_address(local)} -> {_address(remote)} ({connection.status})"
    waits_for_peers = connection.status == psutil.CONN_LISTEN or (kind == "udp" and not remote)
    if local and waits_for_peers and not _is_loopback(local.ip):
        return f"{kind} listening on {_address(local)}, beyond loopback"
    return None


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])  # drop an IPv6 zone id
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def _address(address) -> str:
    return f"[{address.ip}]:{address.port}" if ":" in address.ip else f"{address.ip}:{address.port}"
