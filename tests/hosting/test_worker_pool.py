"""The bounded worker pool of ``app_support.worker`` (issue 21 point 4), without a server.

One pool (one process) for the module: a fresh worker forks from the preloaded fork
server in milliseconds, the fork server itself takes a second or two to start.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app_support import figures, worker
from cellseg_core.pipeline import preprocess_key, segment
from cellseg_core.presets import get_preset


@pytest.fixture(scope="module")
def pool():
    jobs = worker.WorkerPool(1, nice=0)
    assert jobs.call("warm-up", "warm-up", sum, ([1, 2],)) == 3
    yield jobs
    jobs.shutdown()


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_dead(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_segmentation_in_the_pool_equals_in_process(pool):
    from cellseg_core.data import synthetic

    image = synthetic.cytology_image(rng=3, size=256).image
    params = get_preset("lab02")
    key = params.to_json(indent=None)
    seg, from_key = pool.call("a", "seg", worker._segment_job,
                              ("img", worker.Shared("image:img"), key), {"image:img": image})
    assert from_key
    local = segment(image, params)
    for name in ("labels", "nuclei", "channel", "blurred", "raw"):
        np.testing.assert_array_equal(getattr(seg, name), getattr(local, name))
    assert seg.summary == local.summary and seg.summary["n_nuclei"] > 0
    # The per-object table, made by the worker from the segmentation it still holds.
    table = pool.call("a", "objects", worker._objects_job,
                      ("img", worker.Shared("image:img"), key), {"image:img": image})
    assert table.equals(local.objects)


def test_a_newer_call_of_the_session_kills_the_stale_job(pool):
    stale = pool.submit("a", "sleep", time.sleep, (60,))
    deadline = time.monotonic() + 10
    while stale.worker is None and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = stale.worker.process.pid
    start = time.perf_counter()
    assert pool.call("a", "sum", sum, ([4, 5],)) == 9  # not after the 60 s sleep
    assert time.perf_counter() - start < 30
    with pytest.raises(worker.Cancelled, match="newer call"):
        pool.wait(stale)
    assert _wait_dead(pid)  # the stale computation stopped with its process
    assert pool.pids() and pid not in pool.pids()


def test_the_same_call_again_joins_the_job_in_progress(pool):
    first = pool.submit("a", "same", time.sleep, (0.3,))
    again = pool.submit("a", "same", time.sleep, (0.3,))
    assert again is first
    assert pool.wait(again) is None and pool.wait(first) is None


def test_an_interrupted_wait_leaves_the_job_for_the_next_run_and_stop_cancels(pool):
    class Rerun(Exception):
        pass

    def rerun_requested():
        raise Rerun()

    job = pool.submit("b", "nap", time.sleep, (0.5,))
    with pytest.raises(Rerun):
        pool.wait(job, interrupt=rerun_requested)
    assert not job.done  # still running: the next run picks it up by key
    assert pool.submit("b", "nap", time.sleep, (0.5,)) is job
    assert pool.wait(job) is None and job.future.exception() is None
    # Stop: cancel_session kills the job at once.
    job = pool.submit("b", "sleep", time.sleep, (60,))
    while job.worker is None:
        time.sleep(0.01)
    pid = job.worker.process.pid
    assert pool.cancel_session("b")
    with pytest.raises(worker.Cancelled):
        pool.wait(job)
    assert _wait_dead(pid)
    assert not pool.cancel_session("b")  # nothing left


def test_one_slot_per_session_and_arrival_order_between_sessions(pool):
    """With one worker, c's job waits for b's; d's waits for c's: no session goes first
    twice, and each session holds one job at most."""
    order = []
    jobs = [pool.submit(s, f"{s}-job", time.sleep, (0.2,)) for s in "bcd"]
    assert pool.submit("b", "b-job", time.sleep, (0.2,)) is jobs[0]
    for job in jobs:
        job.future.add_done_callback(lambda f, s=job.session: order.append(s))
    for job in jobs:
        pool.wait(job)
    assert order == ["b", "c", "d"]
    starts = [job.started for job in jobs]
    assert starts == sorted(starts) and starts[2] - starts[0] >= 0.35  # one at a time
    assert set(pool.sessions()) == set()


def test_errors_come_back_as_they_are_and_unsendable_arguments_say_so(pool):
    with pytest.raises(ValueError, match="invalid literal"):
        pool.call("a", "bad", int, ("x",))
    pids = pool.pids()
    lock = threading.Lock()
    with pytest.raises(worker.NotSent, match="could not send"):
        pool.call("a", "lock", id, (lock,))
    assert pool.call("a", "after", sum, ([1],)) == 1  # the pool is still fine,
    assert pool.pids() == pids                        # with the same worker


def test_a_built_in_model_goes_by_its_name_and_predicts_as_in_process(pool):
    """The built-in nucleus model holds an onnxruntime session, which cannot be
    pickled: the worker loads it from its spec."""
    from cellseg_core.data import synthetic
    from cellseg_core.methods import load_method

    image = synthetic.fluorescence_image(rng=2, size=128).image
    seg = pool.call("a", "builtin", worker._model_job,
                    ("segment", worker.Shared("model:nuclei"), worker.Shared("image:f")),
                    {"model:nuclei": "builtin:nuclei", "image:f": image})
    local = load_method("builtin:nuclei").model.segment(image)
    np.testing.assert_array_equal(seg.nuclei, local.nuclei)
    np.testing.assert_equal(seg.summary, local.summary)  # N/C is NaN: no cytoplasm


def test_large_inputs_are_sent_once_per_worker(pool):
    image = np.ones((1000, 1000), np.float32)
    pool.call("a", "first", np.sum, (worker.Shared("image:ones"),), {"image:ones": image})
    # The second call gives no object for the token: the worker must still hold it.
    assert pool.call("a", "second", np.sum, (worker.Shared("image:ones"),), {}) == 1e6


def test_is_heavy_follows_the_environment(monkeypatch):
    monkeypatch.setenv("CELLSEG_HEAVY_PIXELS", "100")
    monkeypatch.delenv("CELLSEG_WORKERS", raising=False)
    assert worker.is_heavy(np.zeros((10, 10))) and not worker.is_heavy(np.zeros((9, 10)))
    monkeypatch.setenv("CELLSEG_WORKERS", "0")
    assert not worker.is_heavy(np.zeros((100, 100)))
    monkeypatch.setenv("CELLSEG_WORKERS", "many")
    with pytest.raises(ValueError, match="CELLSEG_WORKERS must be an integer"):
        worker.workers()


def test_the_apps_pooled_segmentation_matches_and_keeps_the_channels(monkeypatch):
    """What cache.py calls for a large image: same arrays as in-process; a threshold
    move brings back only what changed (the channels are the ones kept), and the
    per-object table comes from the pool too."""
    from cellseg_core.data import synthetic

    monkeypatch.setenv("CELLSEG_WORKER_NICE", "0")
    monkeypatch.setattr(worker, "_POOL", None)
    image = synthetic.cytology_image(rng=5, size=256).image
    lab02 = get_preset("lab02")
    moved = lab02.with_values({"threshold.t_nuc": lab02.threshold.t_nuc + 0.02})
    try:
        first = worker.segmentation("syn5", image, lab02.to_json(indent=None))
        second = worker.segmentation("syn5", image, moved.to_json(indent=None))
        assert second.channel is first.channel and second.blurred is first.blurred
        assert not second.channel.flags.writeable
        local = segment(image, moved)
        for name in ("labels", "nuclei", "channel", "blurred", "raw"):
            np.testing.assert_array_equal(getattr(second, name), getattr(local, name))
        assert second.summary == local.summary
        assert isinstance(second, worker.PooledSegmentation)
        assert second.objects.equals(local.objects)
        hist = worker.histograms("syn5", image, moved)
        np.testing.assert_array_equal(hist["counts"]["all pixels"],
                                      figures.class_histograms(local.blurred)["counts"]
                                      ["all pixels"])
    finally:
        worker._POOL.shutdown()


def test_send_and_receive_carry_arrays_whole():
    import multiprocessing

    a, b = multiprocessing.Pipe()
    value = {"x": np.arange(300_000, dtype=np.int32).reshape(600, 500), "text": "é"}
    sender = threading.Thread(target=worker.send, args=(a, value))
    sender.start()  # a large message fills the pipe: send and receive at the same time
    got = worker.receive(b)
    sender.join()
    assert got["text"] == "é" and got["x"].dtype == np.int32
    np.testing.assert_array_equal(got["x"], value["x"])


def test_automatic_params_in_the_pool_keep_their_own_channels(monkeypatch):
    """auto-nuclei resolves its channel per image (segment() ignores the params'
    preprocessed channels): after the same params with auto off, whose channels the
    server keeps, it must not be given those."""
    from skimage import data

    from cellseg_core.io import as_float_image

    monkeypatch.setenv("CELLSEG_WORKER_NICE", "0")
    monkeypatch.setattr(worker, "_POOL", None)
    image = as_float_image(data.immunohistochemistry())[:256, :256]
    auto = get_preset("auto-nuclei")
    plain = auto.with_values({"auto.kind": "off"})
    try:
        for params in (plain, auto):
            pooled = worker.segmentation("ihc", image, params.to_json(indent=None))
            local = segment(image, params)
            for name in ("labels", "nuclei", "channel", "blurred"):
                np.testing.assert_array_equal(getattr(pooled, name), getattr(local, name))
        assert not np.array_equal(pooled.channel, worker._PREPROCESSED[
            ("ihc", preprocess_key(auto))][0])  # the case this is about
    finally:
        worker._POOL.shutdown()
