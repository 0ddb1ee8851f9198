"""More than one machine: worker pools on two "hosts" (127.0.0.1 and 127.0.0.2, one port) behind
the shipped configs in mode ``pools``: lighttpd's ``fastcgi.server`` with two hosts and Apache's
``mod_proxy_balancer`` with two ``fcgi://`` members, both real, both in front of the same two
real pools. Requests at once are spread over both pools (each pool's own status board counts
what it served); once one pool is killed (``kill -9``, as a host that goes down), every request
is still answered, by the other.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from deploy.servers import Pool, Server, call, free_port, servers_available, serving_pools, tcp_pools
from tests.support import render_text

HOSTS = ("127.0.0.1", "127.0.0.2")
PNG = {"Content-Type": "image/png"}
LINE = "Two hosts, one answer"
AT_ONCE = 6
Site = tuple[list[Server], tuple[Pool, ...]]  # the servers in front, the pools behind


def _port_free_on_both() -> int:
    for _ in range(20):
        port = free_port(HOSTS[0])
        with socket.socket() as probe:
            try:
                probe.bind((HOSTS[1], port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free on both loopback addresses")


@pytest.fixture(scope="module")
def line_png() -> bytes:
    return render_text([LINE])


@pytest.fixture(scope="module")
def site(prefix: Path) -> Iterator[Site]:
    kinds = servers_available()
    if not kinds:
        pytest.skip("SKIPPED LOUDLY: neither lighttpd nor apache2 is installed")
    port = _port_free_on_both()
    hosts = [f"{host}:{port}" for host in HOSTS]
    # One worker a pool: two pools are two workers, what this 2-core machine has.
    env = {"CRNNOCR_POOL_WORKERS": "1", "CRNNOCR_CACHE_MB": "0"}
    with ExitStack() as stack:
        pools = stack.enter_context(tcp_pools(prefix, hosts, env=env))
        servers = [stack.enter_context(serving_pools(kind, prefix, hosts, env=env)) for kind in kinds]
        yield servers, pools


def _served(pool: Pool) -> int:
    return int(pool.status().counters["served"])


def _gained(pools: tuple[Pool, ...], before: list[int], total: int) -> list[int]:
    """What each pool served since ``before``, once they add up to ``total`` (a pool counts a
    request just after its answer has gone out) or after a few seconds."""
    deadline = time.monotonic() + 5
    while True:
        gained = [_served(pool) - old for pool, old in zip(pools, before, strict=True)]
        if sum(gained) >= total or time.monotonic() > deadline:
            return gained
        time.sleep(0.05)


def _read(server: Server, image: bytes) -> str:
    reply = call(server, "POST", "mode=line&format=text", image, PNG, timeout=60)
    assert reply.status == 200, (server.kind, reply.status, reply.body[:300])
    return reply.body.decode().strip()


def test_requests_spread_over_both_pools(site: Site, line_png: bytes) -> None:
    servers, pools = site
    for server in servers:
        before = [_served(pool) for pool in pools]
        with ThreadPoolExecutor(AT_ONCE) as clients:
            texts = list(clients.map(_read, [server] * AT_ONCE, [line_png] * AT_ONCE))
        assert texts == [LINE] * AT_ONCE
        gained = _gained(pools, before, AT_ONCE)
        assert sum(gained) == AT_ONCE, (server.kind, gained)
        assert all(gained), f"{server.kind} sent every request to one pool: {gained}"


def test_one_pool_killed_the_other_answers(site: Site, line_png: bytes) -> None:
    servers, pools = site
    survivor, victim = pools
    os.kill(victim.pid, signal.SIGKILL)  # the supervisor; its workers leave once it is gone
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{victim.pid}").exists() \
            and Path(f"/proc/{victim.pid}/stat").read_text().split()[2] != "Z":
        time.sleep(0.05)
    before = [_served(survivor)]
    for server in servers:
        for _ in range(3):
            assert _read(server, line_png) == LINE
    assert _gained((survivor,), before, 3 * len(servers)) == [3 * len(servers)]


def test_pool_hosts_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    from deploy.sites import ConfigError, SiteConfig

    def site(mode: str, *hosts: str) -> SiteConfig:
        return SiteConfig(kind="lighttpd", prefix=tmp_path, port=8080, run_dir=tmp_path, mode=mode,  # type: ignore[arg-type]
                          pool_hosts=hosts)

    for mode, hosts in (("pools", ()), ("fastcgi", ("10.0.0.5:9000",)), ("pools", ("10.0.0.5",)),
                        ("pools", ("10.0.0.5:0",)), ("pools", ('10.0.0.5:9000" => 1, "x',))):
        with pytest.raises(ConfigError):
            site(mode, *hosts)
    rendered = site("pools", "10.0.0.5:9000", "[fd00::6]:9000").render()
    assert '"host" => "10.0.0.5", "port" => 9000' in rendered
    assert '"host" => "fd00::6", "port" => 9000' in rendered
    assert "bin-path" not in rendered  # the pools are other hosts' to run
