"""A TCP (layer 4) load balancer for tests: the stand-in for HAProxy or nginx `stream` in front of replicas.

The faults suite's TCP stand-in with several targets: TLS passes through untouched, so each replica
terminates mutual TLS itself, as in production. Each new connection goes to the next replica that
accepts it (round robin, skipping one that refuses), which is how "new exchanges go to the other
replica" when one shuts down.
"""

from __future__ import annotations

import socket

from gateway.server import bind
from tests.gateway.faults.harness import FaultyTcp


class Balancer(FaultyTcp):
    def __init__(self, backends: list[tuple[str, int]]) -> None:
        super().__init__(backends[0], name="balancer")
        self.backends = list(backends)
        self.only: int | None = None  # route every new connection to this backend (tests pin a replica)
        self._next = 0

    def targets(self) -> list[tuple[str, int]]:
        if self.only is not None:
            return [self.backends[self.only]]
        start = self._next
        self._next = (self._next + 1) % len(self.backends)
        return [self.backends[(start + i) % len(self.backends)] for i in range(len(self.backends))]


def free_socket() -> socket.socket:
    return bind("127.0.0.1", 0)
