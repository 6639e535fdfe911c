"""Hosts for tests: Linux network namespaces on a bridge, each with an address of its own.

Each ``Host`` is a namespace joined to one bridge by a veth pair; the test process is on the
bridge too (its first address). PostgreSQL, Redis and other services that listen on the
machine's 127.0.0.1 are reached from the hosts through ``socat`` forwarders bound to the
bridge's address. Processes started with ``Host.popen`` run inside the namespace; ``Host.kill``
SIGKILLs every one of them at once (a machine that dies). Needs root (CAP_NET_ADMIN), ``ip``
and ``socat``; ``Network.available`` says why not.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import signal
import subprocess
import time
import uuid


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


class Host:
    """One namespace: a machine with its own address on the test network."""

    def __init__(self, network: Network, name: str, address: str):
        self.network = network
        self.name = name
        self.netns = f"{network.prefix}-{name}"
        self.address = address
        self.procs: list[subprocess.Popen] = []

    def create(self) -> None:
        outside, inside = f"{self.network.prefix}{self.name}h", f"{self.network.prefix}{self.name}n"
        _ip("netns", "add", self.netns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", outside, "master", self.network.bridge)
        _ip("link", "set", outside, "up")
        _ip("link", "set", inside, "netns", self.netns)
        _ip("-n", self.netns, "addr", "add", f"{self.address}/24", "dev", inside)
        _ip("-n", self.netns, "link", "set", inside, "up")
        _ip("-n", self.netns, "link", "set", "lo", "up")

    def popen(self, command: list[str], **kwargs) -> subprocess.Popen:
        """Start ``command`` inside this host (``ip netns exec`` execs it: same pid)."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, *command], start_new_session=True, **kwargs
        )
        self.procs.append(proc)
        return proc

    def pids(self) -> list[int]:
        done = _ip("netns", "pids", self.netns, check=False)
        return [int(p) for p in done.stdout.split()]

    def kill(self) -> list[int]:
        """SIGKILL every process of this host at once, as a machine that loses power."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        return pids

    def destroy(self) -> None:
        self.kill()
        deadline = time.monotonic() + 10
        while self.pids() and time.monotonic() < deadline:
            self.kill()
            time.sleep(0.1)
        _ip("netns", "del", self.netns, check=False)


class Network:
    """A bridge on the test machine, the hosts on it, and forwarders to local services."""

    def __init__(self):
        tag = uuid.uuid4().hex[:4]
        self.prefix = f"f{tag}"  # interface names hold 15 characters
        self.bridge = f"{self.prefix}br"
        used = _ip("-4", "route", "show").stdout
        for _ in range(50):
            subnet = ipaddress.ip_network(
                f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24"
            )
            if str(subnet.network_address)[:-1] not in used:
                break
        self.subnet = subnet
        self.gateway = str(subnet.network_address + 1)  # the test process's side
        self.hosts: list[Host] = []
        self.forwarders: list[subprocess.Popen] = []

    @staticmethod
    def available() -> str | None:
        """None when namespaces can be made here; otherwise why not."""
        if os.geteuid() != 0:
            return "needs root (CAP_NET_ADMIN) for ip netns"
        for tool in ("ip", "socat"):
            if not shutil.which(tool):
                return f"needs {tool} (Debian: iproute2, socat)"
        probe = f"fprobe{uuid.uuid4().hex[:6]}"
        made = _ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"cannot make a network namespace: {made.stderr.strip()}"
        _ip("netns", "del", probe, check=False)
        return None

    def create(self) -> Network:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def host(self, name: str) -> Host:
        address = str(self.subnet.network_address + 11 + len(self.hosts))
        host = Host(self, name, address)
        self.hosts.append(host)
        host.create()
        return host

    def forward(self, port: int, to_host: str, to_port: int) -> str:
        """Serve ``to_host:to_port`` of this machine to the hosts at ``gateway:port``."""
        proc = subprocess.Popen(
            [
                "socat",
                f"TCP-LISTEN:{port},bind={self.gateway},fork,reuseaddr",
                f"TCP:{to_host}:{to_port}",
            ],
            start_new_session=True,
        )
        self.forwarders.append(proc)
        return f"{self.gateway}:{port}"

    def destroy(self) -> None:
        for host in self.hosts:
            host.destroy()
        for proc in self.forwarders:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        _ip("link", "del", self.bridge, check=False)
