"""Fair sessions on one server (issue 21 point 4), with real ``streamlit run`` servers.

One user uploads a 3000² RGB noise image in Explore and keeps moving a slider on it
(a new full-size segmentation each time) while a second user moves the "Nucleus
below" slider on a 256² VocEd image. The second user's p95 update must stay within 4x
its value alone (a generous bound for a busy 2-core machine: the figures are in
``benchmarks/bench_load.py --heavy``), and the heavy user's stale computations are
cancelled by a newer move or by Stop.
"""
from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("streamlit")
psutil = pytest.importorskip("psutil")

from _common import start_streamlit, stop_streamlit  # noqa: E402
from bench_load import _pct, _ws_phase, noise_png  # noqa: E402

T_NUC = "explore.p.threshold.t_nuc"


@pytest.fixture(scope="module")
def noise():
    return noise_png(3000)


@pytest.fixture(scope="module")
def server(voced):
    proc, url = start_streamlit({"CELLSEG_DATA": str(voced), "CELLSEG_CONFIG": ""})
    yield proc, url
    stop_streamlit(proc)


def _workers(server_pid: int) -> set[int]:
    """Pids of the pool's workers: the children of the server's fork server."""
    out = set()
    for child in psutil.Process(server_pid).children(recursive=True):
        try:
            if "forkserver" in " ".join(child.cmdline()):
                out |= {c.pid for c in child.children()
                        if c.status() != psutil.STATUS_ZOMBIE}
        except psutil.NoSuchProcess:
            continue
    return out


async def _until_busy(server_pid: int, seconds: float = 60.0) -> set[int]:
    """The workers once one of them computes (its CPU time grows by 50 ms)."""
    def cpu(pid):
        try:
            times = psutil.Process(pid).cpu_times()
            return times.user + times.system
        except psutil.NoSuchProcess:
            return 0.0

    start = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        workers = _workers(server_pid)
        for pid in workers:
            now = cpu(pid)
            if now - start.setdefault(pid, now) >= 0.05:
                return workers
        await asyncio.sleep(0.01)
    raise TimeoutError("no worker started computing")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_a_heavy_user_does_not_stall_a_second_users_slider(server, noise):
    proc, url = server
    moves = 30
    alone, errors, _ = asyncio.run(_ws_phase(url, ["007"], moves, 120))
    assert not errors, errors
    shared, errors, heavy = asyncio.run(_ws_phase(url, ["007"], moves, 300, heavy=noise))
    assert not errors, errors
    assert heavy.get("moves"), "the heavy user made no move while the other one moved"
    ratio = _pct(shared, 0.95) / _pct(alone, 0.95)
    assert ratio <= 4.0, (f"p95 alone {_pct(alone, 0.95):.3f} s, with a heavy user "
                          f"{_pct(shared, 0.95):.3f} s (x{ratio:.1f}); heavy moves "
                          f"{[round(x, 2) for x in heavy['moves']]}")


async def _heavy_session(url: str, noise: bytes, server_pid: int) -> dict:
    from ws_client import StreamlitClient

    seen = {}
    async with StreamlitClient(url, timeout=300) as client:
        await client.open("")
        await client.set_widget(client.find_widget("radio", key="source.kind"), "Upload")
        run = await client.upload(client.find_widget("file_uploader", label="Image"),
                                  "noise.png", noise)
        assert not run.exceptions and not run.errors
        seen["after upload"] = _workers(server_pid)
        wid = client.find_widget("slider", key=T_NUC)
        value = client.widget(wid).value[0]
        # Move, and move again while the first move's segmentation is still going.
        value = client.next_step(client.widget(wid), value)
        await client.send_widget(wid, [value])
        seen["during first move"] = await _until_busy(server_pid)
        value = client.next_step(client.widget(wid), value)
        await client.send_widget(wid, [value])
        run = await client.receive_run()
        assert not run.exceptions and not run.errors and run.metrics.get("Nuclei")
        seen["after second move"] = _workers(server_pid)
        # Move, then Stop while it computes.
        value = client.next_step(client.widget(wid), value)
        await client.send_widget(wid, [value])
        seen["before stop"] = await _until_busy(server_pid)
        await client.stop()
        await client.receive_run()
        await asyncio.sleep(1.0)
        seen["after stop"] = _workers(server_pid)
    return seen


@pytest.mark.slow
def test_a_newer_move_and_stop_cancel_the_stale_heavy_computation(server, noise):
    proc, url = server
    seen = asyncio.run(asyncio.wait_for(_heavy_session(url, noise, proc.pid), 600))
    first = seen["during first move"]
    assert len(first) == 1, seen  # one worker, computing the first move
    # The second move killed the first move's worker; a fresh one did the second.
    assert all(_gone(pid) for pid in first), seen
    assert seen["after second move"] and not seen["after second move"] & first, seen
    # Stop killed the worker of the third move, and nothing new started.
    assert seen["before stop"] and seen["after stop"] == set(), seen
