"""Heavy work off the server's interpreter: a bounded pool of worker processes.

Why
---
Streamlit runs every session's script in a thread of one process. The engine's numpy
and scipy calls release the GIL only in parts and scikit-image has Python-level loops,
so one visitor segmenting a 3000² image slows every other visitor's slider. Large
images (at least :data:`HEAVY_PIXELS` pixels, ``CELLSEG_HEAVY_PIXELS``) are therefore
segmented, measured, histogrammed, tried with every threshold and predicted by a
learned model in a small pool of worker processes (``CELLSEG_WORKERS``, default one
fewer than the cores, at least one) that run at a lower priority (``nice``
``CELLSEG_WORKER_NICE``, default 10): the server's own thread, which answers the
other sessions, keeps its core and the GIL. Small images stay in-process, where a
call costs less than shipping the image to a process. ``docs/hosting.md`` has the
numbers behind these choices.

Each session has one slot in the pool: a new heavy call from a session whose
previous call is still going (the user moved the slider again) cancels the stale
one, which is killed with its process (a fresh one forks in milliseconds from the
preloaded fork server). While a page waits for its result it still answers its
controls: a rerun leaves the job running for the next run to pick up if it asks for
the same thing (or cancels it if it asks for something else), and Streamlit's Stop,
or the session ending, cancels it at once. Jobs wait in arrival order when every
worker is busy, at most one per session.

A job carries its large inputs (the image, a model) as :class:`Shared` tokens: a
worker keeps the last :data:`HELD_PER_WORKER` of them, so a slider move sends only
the parameters, not the image again.

This module imports Streamlit only inside the functions that wait in a script run,
so the worker processes never load it.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import multiprocessing
import os
import pickle
import threading
import time
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field, fields
from functools import cached_property
from multiprocessing.connection import wait as wait_connections

import numpy as np
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException
from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from cellseg_core.methods import load_method
from cellseg_core.params import Params
from cellseg_core.pipeline import Segmentation, preprocess, preprocess_key, segment

from .figures import class_histograms

__all__ = ["HEAVY_PIXELS", "HELD_PER_WORKER", "Shared", "Job", "WorkerPool", "Cancelled",
           "NotSent", "heavy_pixels", "workers", "is_heavy", "pool", "call", "segmentation",
           "histograms", "model_call", "PooledSegmentation", "session_id", "cancel_session",
           "send", "receive"]

log = logging.getLogger(__name__)

#: Images with at least this many pixels go to the pool (``CELLSEG_HEAVY_PIXELS``).
HEAVY_PIXELS = 1_500_000
#: Large inputs (images, models) each worker keeps between jobs.
HELD_PER_WORKER = 2
#: How often a waiting script run checks for a rerun or a stop (s).
POLL_SECONDS = 0.05
#: Session name prefix of calls made outside a script run (one slot per thread).
OUTSIDE_SCRIPT = "thread-"
#: Modules the fork server imports once, so that a new worker starts in milliseconds.
PRELOAD = ["numpy", "scipy.ndimage", "skimage.measure", "skimage.segmentation",
           "pandas", "cellseg_core.pipeline", "app_support.figures", "app_support.worker"]


class Cancelled(Exception):
    """The job was cancelled (a newer call of its session, a stop, the session ended)."""


class NotSent(RuntimeError):
    """The job's arguments could not be sent to a worker (not picklable)."""


def env_number(name: str, default, minimum, kind=int):
    """The environment variable `name` as a `kind` (int or float) of at least `minimum`;
    `default` when unset or blank. A ValueError names the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"{name} must be {what}, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {raw}")
    return value


def heavy_pixels() -> int:
    """Pixel count from which an image is heavy (``CELLSEG_HEAVY_PIXELS``; 0 = every
    image goes to the pool)."""
    return env_number("CELLSEG_HEAVY_PIXELS", HEAVY_PIXELS, 0)


def workers() -> int:
    """Worker processes at most (``CELLSEG_WORKERS``; default one fewer than the
    cores, at least one; 0 = no pool, everything in-process)."""
    return env_number("CELLSEG_WORKERS", max(1, (os.cpu_count() or 2) - 1), 0)


def is_heavy(image) -> bool:
    """True when `image` is large enough to be worth a worker process (and there is
    a pool)."""
    shape = np.shape(image)
    return (len(shape) >= 2 and shape[0] * shape[1] >= heavy_pixels()
            and workers() > 0)


@dataclass(frozen=True)
class Shared:
    """A large argument that a worker keeps under `token` (same token, same object)."""

    token: str


@dataclass(eq=False)
class Job:
    """One call in the pool: ``fn(*args)`` for `session`, named by `key`."""

    session: str
    key: str
    fn: object
    args: tuple
    shared: dict
    future: Future = field(default_factory=Future)
    started: float | None = None
    worker: "_Worker | None" = None

    @property
    def done(self) -> bool:
        return self.future.done()


# --- the wire: pickle protocol 5 with the arrays' memory written as it is --------------
def _frame(obj) -> tuple[bytes, list]:
    """`obj` as a protocol-5 pickle and its out-of-band buffers (raises when `obj`
    cannot be pickled; nothing is sent then)."""
    buffers = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    return pickle.dumps((data, [r.nbytes for r in raws]), protocol=5), raws


def send(conn, obj, frame=None) -> None:
    """Send `obj` over `conn`: a pickle whose large buffers (numpy arrays) follow it
    raw, written straight from the arrays' memory (no copy into the pickle, and the
    GIL is released while the bytes go). `frame`: ``_frame(obj)`` if already made."""
    header, raws = frame or _frame(obj)
    conn.send_bytes(header)
    fd = conn.fileno()
    for raw in raws:
        view, sent = raw.cast("B"), 0
        while sent < len(view):
            sent += os.write(fd, view[sent:])


def receive(conn):
    """Receive what :func:`send` sent: the arrays are read straight into their final
    memory."""
    data, sizes = pickle.loads(conn.recv_bytes())
    fd, buffers = conn.fileno(), []
    for size in sizes:
        buf = np.empty(size, np.uint8)  # not zeroed: every byte is read into it
        view, got = memoryview(buf), 0
        while got < size:
            n = os.readv(fd, [view[got:]])
            if n == 0:
                raise EOFError("the other end closed the pipe")
            got += n
        buffers.append(buf)
    return pickle.loads(data, buffers=buffers)


# --- in the worker process -------------------------------------------------------------
def _resolve(value, held: dict):
    if isinstance(value, Shared):
        return held[value.token]
    if isinstance(value, tuple):
        return tuple(_resolve(v, held) for v in value)
    return value


def _serve(conn, nice: int) -> None:  # pragma: no cover - runs in the worker process
    """A worker's loop: receive (fn, args, new shared objects, tokens to drop), answer
    ("ok", result) or ("error", exception)."""
    if nice:
        try:
            os.nice(nice)
        except OSError:
            pass
    held: dict = {}
    while True:
        try:
            message = receive(conn)
        except (EOFError, OSError):
            return
        if message is None:
            return
        fn, args, new, drop = message
        for token in drop:
            held.pop(token, None)
        held.update(new)
        del message, new
        try:
            reply = ("ok", fn(*_resolve(args, held)))
        except BaseException as err:  # noqa: BLE001  sent back to the caller
            reply = ("error", err)
        try:
            send(conn, reply)
        except Exception as err:  # noqa: BLE001  an unpicklable result or error
            send(conn, ("error", RuntimeError(f"{type(err).__name__}: {err}")))
        del reply


# --- the pool, in the server process ----------------------------------------------------
#: How workers start: forked from a server process that has imported :data:`PRELOAD`
#: (milliseconds per worker), or spawned where there is no fork server (Windows).
START_METHOD = ("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                else "spawn")
_CTX = multiprocessing.get_context(START_METHOD)
_LAUNCH_LOCK = threading.Lock()


def _without_main(prepare):
    def data(name):
        out = prepare(name)
        out.pop("init_main_from_path", None)
        out.pop("init_main_from_name", None)
        return out
    return data


if START_METHOD == "forkserver":
    from multiprocessing import popen_forkserver as _popen_module
else:  # pragma: no cover - Windows
    _popen_module = None


if _popen_module is not None:
    class _Popen(_popen_module.Popen):
        """Starts a worker without re-running the parent's ``__main__``.

        multiprocessing prepares a child by importing the parent's
        ``sys.modules["__main__"]`` first; inside a Streamlit script run that is the
        page script (Streamlit puts it there), which must not run in a worker. The
        target (:func:`_serve`) needs nothing from ``__main__``. The stdlib's
        ``_launch`` finds ``spawn.get_preparation_data`` through its module: it gets a
        view of ``spawn`` whose preparation leaves ``__main__`` out.
        """

        def _launch(self, process_obj):
            names = _popen_module.Popen._launch.__globals__
            real = names["spawn"]
            view = type(real)("spawn_without_main")
            view.__dict__.update(real.__dict__)
            view.get_preparation_data = _without_main(real.get_preparation_data)
            with _LAUNCH_LOCK:
                names["spawn"] = view
                try:
                    return super()._launch(process_obj)
                finally:
                    names["spawn"] = real

    class _WorkerProcess(_CTX.Process):
        @staticmethod
        def _Popen(process_obj):
            return _Popen(process_obj)
else:  # pragma: no cover - Windows
    _WorkerProcess = _CTX.Process


@dataclass(eq=False)
class _Worker:
    process: object
    conn: object
    held: collections.OrderedDict = field(default_factory=collections.OrderedDict)
    job: Job | None = None


class WorkerPool:
    """At most `workers` processes, one job each; at most one job per session.

    Parameters
    ----------
    workers : int
        Processes at most (they start on demand and are replaced when killed).
    nice : int
        Added to the workers' niceness (lower priority than the server's threads).

    Examples
    --------
    >>> pool = WorkerPool(1)
    >>> pool.call("session-a", "sum", sum, ([1, 2, 3],))
    6
    >>> pool.shutdown()
    """

    def __init__(self, workers: int = 1, *, nice: int = 10):
        if workers < 1:
            raise ValueError(f"`workers` must be >= 1, got {workers}")
        self.size, self.nice = int(workers), int(nice)
        if START_METHOD == "forkserver":
            _CTX.set_forkserver_preload(PRELOAD)
        self._lock = threading.Lock()
        self._queue: collections.deque[Job] = collections.deque()
        self._workers: list[_Worker] = []
        self._dying: list[_Worker] = []  # killed, their pipe not yet closed
        self._by_session: dict[str, Job] = {}
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        self._closed = False
        self.stats = collections.Counter()  # jobs, cancelled, killed, started
        self._thread = threading.Thread(target=self._dispatch, name="cellseg-pool",
                                        daemon=True)
        self._thread.start()

    # --- public -----------------------------------------------------------------------
    def submit(self, session: str, key: str, fn, args: tuple = (), shared=None) -> Job:
        """Queue ``fn(*args)`` for `session` (``Shared(token)`` in `args` stands for
        ``shared[token]``).

        The session's job in progress is returned as is when it has the same `key`,
        and cancelled otherwise (it is stale).
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            current = self._by_session.get(session)
            if current is not None and not current.done:
                if current.key == key:
                    return current
                self._cancel_locked(current, "a newer call of its session")
            job = Job(session=session, key=key, fn=fn, args=tuple(args),
                      shared=dict(shared or {}))
            self._by_session[session] = job
            self._queue.append(job)
            self.stats["jobs"] += 1
        self._wake()
        return job

    def wait(self, job: Job, interrupt=None):
        """The job's result; calls ``interrupt()`` every :data:`POLL_SECONDS` while
        waiting (it may raise to stop waiting: the job then goes on, unwaited).

        Raises
        ------
        Cancelled
            When the job was cancelled.
        """
        while True:
            try:
                return job.future.result(timeout=POLL_SECONDS)
            except TimeoutError:
                if interrupt is not None:
                    interrupt()
            except CancelledError:
                raise Cancelled(f"job {job.key!r} was cancelled") from None

    def call(self, session: str, key: str, fn, args: tuple = (), shared=None,
             interrupt=None):
        """:meth:`submit` then :meth:`wait`."""
        return self.wait(self.submit(session, key, fn, args, shared), interrupt)

    def cancel(self, job: Job, why: str = "cancelled") -> None:
        """Cancel `job`: dropped from the queue, or its worker killed."""
        with self._lock:
            self._cancel_locked(job, why)
        self._wake()

    def cancel_session(self, session: str, why: str = "its session stopped") -> bool:
        """Cancel `session`'s job if one is queued or running; True if there was one."""
        with self._lock:
            job = self._by_session.pop(session, None)
            if job is None or job.done:
                return False
            self._cancel_locked(job, why)
        self._wake()
        return True

    def sessions(self) -> list[str]:
        """Sessions with a job queued or running."""
        with self._lock:
            return [s for s, j in self._by_session.items() if not j.done]

    def running(self) -> list[Job]:
        """Jobs now in a worker."""
        with self._lock:
            return [w.job for w in self._workers if w.job is not None]

    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        with self._lock:
            return [w.process.pid for w in self._workers]

    def shutdown(self) -> None:
        """Cancel everything and stop the workers."""
        with self._lock:
            self._closed = True
            for job in list(self._queue):
                job.future.cancel()
            self._queue.clear()
            workers, self._workers = self._workers + self._dying, []
            self._dying = []
        for worker in workers:
            self._kill(worker)
            worker.conn.close()
        self._wake()

    # --- inside -----------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            self._wake_w.send_bytes(b"x")
        except OSError:
            pass

    def _cancel_locked(self, job: Job, why: str) -> None:
        if job.done:
            return
        log.info("cancelling %s for session %s (%s)", job.key, job.session, why)
        self.stats["cancelled"] += 1
        if job in self._queue:
            self._queue.remove(job)
        job.future.cancel() or job.future.set_exception(Cancelled(why))
        if self._by_session.get(job.session) is job:
            del self._by_session[job.session]
        worker = job.worker
        if worker is not None and worker.job is job and worker in self._workers:
            self._workers.remove(worker)
            self._dying.append(worker)  # the dispatcher closes its pipe at EOF
            self.stats["killed"] += 1
            self._kill(worker)

    @staticmethod
    def _kill(worker: _Worker) -> None:
        try:
            worker.process.kill()
        except (OSError, ValueError, AttributeError):
            pass
        threading.Thread(target=worker.process.join, args=(5,), daemon=True).start()

    def _retire(self, worker: _Worker) -> None:
        """Forget a worker whose pipe ended (killed or crashed); lock not held."""
        with self._lock:
            for group in (self._workers, self._dying):
                if worker in group:
                    group.remove(worker)
        self._kill(worker)
        try:
            worker.conn.close()
        except OSError:
            pass

    def _start_worker(self) -> _Worker:
        parent, child = _CTX.Pipe()
        process = _WorkerProcess(target=_serve, args=(child, self.nice),
                                 name="cellseg-worker", daemon=True)
        process.start()
        child.close()
        self.stats["started"] += 1
        return _Worker(process=process, conn=parent)

    def _next_assignment(self):
        """(worker, job) to start now, or None; called with the lock held."""
        if not self._queue:
            return None
        idle = next((w for w in self._workers if w.job is None), None)
        if idle is None and len(self._workers) >= self.size:
            return None
        job = self._queue.popleft()
        if idle is None:
            try:
                idle = self._start_worker()
            except Exception as err:  # noqa: BLE001  no process: the job says why
                log.exception("cannot start a worker process")
                if self._by_session.get(job.session) is job:
                    del self._by_session[job.session]
                job.future.set_exception(RuntimeError(
                    f"cannot start a worker process: {type(err).__name__}: {err}"))
                return self._next_assignment()
            self._workers.append(idle)
        idle.job, job.worker, job.started = job, idle, time.perf_counter()
        job.future.set_running_or_notify_cancel()
        return idle, job

    def _send(self, worker: _Worker, job: Job) -> None:
        new = {t: job.shared[t] for t in job.shared if t not in worker.held}
        held = [t for t in worker.held if t not in job.shared] + list(job.shared)
        keep = max(HELD_PER_WORKER, len(job.shared))
        drop = [t for t in held[:-keep] if t not in job.shared] if len(held) > keep else []
        try:
            frame = _frame((job.fn, job.args, new, drop))
        except Exception as err:  # noqa: BLE001  unpicklable arguments: the worker is fine
            with self._lock:
                worker.job = None
                if self._by_session.get(job.session) is job:
                    del self._by_session[job.session]
            if not job.done:
                job.future.set_exception(NotSent(
                    f"could not send {job.key!r} to a worker: {type(err).__name__}: {err}"))
            self._wake()
            return
        worker.held = collections.OrderedDict.fromkeys(t for t in held if t not in drop)
        try:
            send(worker.conn, None, frame)
        except OSError as err:  # a worker killed under us
            with self._lock:
                worker.job = None
                if self._by_session.get(job.session) is job:
                    del self._by_session[job.session]
            self._retire(worker)
            if not job.done:
                job.future.set_exception(RuntimeError(
                    f"the worker process ended while receiving {job.key!r}: {err!r}"))

    def _receive(self, worker: _Worker) -> None:
        try:
            status, value = receive(worker.conn)
        except (EOFError, OSError) as err:
            with self._lock:
                job, worker.job = worker.job, None
                if job is not None and self._by_session.get(job.session) is job:
                    del self._by_session[job.session]
            self._retire(worker)
            if job is not None and not job.done:
                job.future.set_exception(RuntimeError(
                    f"the worker process ended while running {job.key!r}: {err!r}"))
            return
        with self._lock:
            job, worker.job = worker.job, None
            if job is not None and self._by_session.get(job.session) is job:
                del self._by_session[job.session]
            dying = worker in self._dying
        if dying:  # answered before the kill landed
            self._retire(worker)
        if job is None or job.done:
            return
        if status == "ok":
            job.future.set_result(value)
        else:
            job.future.set_exception(value)

    def _dispatch(self) -> None:
        while True:
            while True:
                with self._lock:
                    if self._closed:
                        return
                    assignment = self._next_assignment()
                if assignment is None:
                    break
                self._send(*assignment)
            with self._lock:
                busy = {w.conn: w for w in self._workers if w.job is not None}
                busy.update({w.conn: w for w in self._dying})
            ready = wait_connections([self._wake_r, *busy], timeout=1.0)
            for conn in ready:
                if conn is self._wake_r:
                    while self._wake_r.poll():
                        self._wake_r.recv_bytes()
                else:
                    self._receive(busy[conn])


_POOL: WorkerPool | None = None
_POOL_LOCK = threading.Lock()


def pool() -> WorkerPool:
    """The process's pool (``CELLSEG_WORKERS`` processes, ``CELLSEG_WORKER_NICE``)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = WorkerPool(max(1, workers()), nice=env_number("CELLSEG_WORKER_NICE", 10, 0))
        return _POOL


# --- the script-run side ------------------------------------------------------------------
def session_id() -> str:
    """Id of the Streamlit session running this code ("" outside a script run)."""
    ctx = get_script_run_ctx(suppress_warning=True)
    return ctx.session_id if ctx is not None else ""


def _script_interrupt():
    """A callable that raises Streamlit's own rerun / stop exception when this script
    run was asked to rerun or stop (what any ``st.*`` call does), or None outside a
    script run."""
    ctx = get_script_run_ctx(suppress_warning=True)
    requests = getattr(ctx, "script_requests", None)
    if requests is None:
        return None

    def check():
        request = requests.on_scriptrunner_yield()
        if request is None:
            return
        if request.type == ScriptRequestType.RERUN:
            raise RerunException(request.rerun_data)
        raise StopException()

    return check


def call(key: str, fn, args: tuple = (), shared=None):
    """``fn(*args)`` in the pool for the current session, waiting for it.

    A rerun request stops the wait and leaves the job for the next run (which picks
    it up by `key` or cancels it); a stop request cancels it.
    """
    session = session_id() or f"{OUTSIDE_SCRIPT}{threading.get_ident()}"
    jobs = pool()
    job = jobs.submit(session, key, fn, args, shared)
    try:
        return jobs.wait(job, _script_interrupt())
    except BaseException as err:
        if type(err).__name__ == "StopException":
            jobs.cancel(job, "Stop")
        raise


def cancel_session(session: str) -> bool:
    """Cancel `session`'s heavy job, if any (a sweep of ended sessions calls it)."""
    return _POOL is not None and _POOL.cancel_session(session, "its session ended")


# --- jobs: plain functions a worker runs (also fine in-process) ----------------------------
_LOCAL: dict = {}  # in a worker: the last preprocess and segmentation, by key


def _local(name: str, key, compute):
    held = _LOCAL.get(name)
    if held is not None and held[0] == key:
        return held[1]
    _LOCAL.pop(name, None)  # free the old one before computing the new one
    value = compute()
    _LOCAL[name] = (key, value)
    return value


def _preprocessed(digest: str, image, params: Params):
    key = (digest, preprocess_key(params))
    return _local("preprocessed", key, lambda: preprocess(image, params))


def _segment_job(digest: str, image, params_json: str, without_preprocessed=False):
    """``(segmentation, from_key)``: `from_key` is True when its channel and blurred
    channel are those of ``preprocess_key(params)`` (automatic params resolve their own
    per image). With `without_preprocessed` and `from_key`, they are left out (None)
    of what is sent back: the caller has them already."""
    params = Params.from_json(params_json)
    pre = _preprocessed(digest, image, params)

    def compute():
        seg = segment(image, params, preprocessed=pre)
        seg.summary  # noqa: B018  computed here, travels in the object's __dict__
        return seg

    seg = _local("segmentation", (digest, params_json), compute)
    from_key = seg.channel is pre[0] and seg.blurred is pre[1]
    if not (without_preprocessed and from_key):
        return seg, from_key
    light = dataclasses.replace(seg, channel=None, blurred=None)
    light.__dict__["summary"] = seg.summary
    return light, from_key


def _objects_job(digest: str, image, params_json: str):
    return _segment_job(digest, image, params_json)[0].objects


def _histograms_job(digest: str, image, params_json: str, truth):
    _, blurred = _preprocessed(digest, image, Params.from_json(params_json))
    return class_histograms(blurred, truth)


def _model_job(method: str, model, image):
    if isinstance(model, str):  # a built-in model's spec: loaded here once
        model = _local("builtin", model, lambda: load_method(model).model)
    result = getattr(model, method)(image)
    if isinstance(result, Segmentation):
        result.summary  # noqa: B018
    return result


# --- what the app calls ---------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PooledSegmentation(Segmentation):
    """A :class:`Segmentation` made in the pool, whose per-object table is made there
    too (the worker still holds the segmentation)."""

    @cached_property
    def objects(self):
        digest, image, params_json = self.__dict__["_pooled_from"]
        return call(f"objects:{digest}:{params_json}", _objects_job,
                    (digest, Shared(f"image:{digest}"), params_json),
                    {f"image:{digest}": image})


def _pooled(seg: Segmentation, digest: str, image, params_json: str,
            preprocessed=None) -> PooledSegmentation:
    values = {f.name: getattr(seg, f.name) for f in fields(seg)}
    if preprocessed is not None:
        values["channel"], values["blurred"] = preprocessed
    out = PooledSegmentation(**values)
    out.__dict__.update({k: v for k, v in seg.__dict__.items()
                         if k not in out.__dict__})  # cached values (summary...)
    out.__dict__["_pooled_from"] = (digest, image, params_json)
    return out


_PREPROCESSED: collections.OrderedDict = collections.OrderedDict()  # server side
_PREPROCESSED_LOCK = threading.Lock()
#: Preprocessed channels the server keeps from pooled segmentations (they do not change
#: with a threshold or clean-up slider, so a move need not bring them back).
PREPROCESSED_KEPT = 2


def segmentation(digest: str, image, params_json: str) -> PooledSegmentation:
    """``segment(image, Params.from_json(params_json))`` (with its summary) in the pool.

    The channel and blurred channel come back only when they changed (a new image,
    channel or blur); otherwise the ones kept from the last call are used.
    """
    key = (digest, preprocess_key(Params.from_json(params_json)))
    with _PREPROCESSED_LOCK:
        kept = _PREPROCESSED.get(key)
        if kept is not None:
            _PREPROCESSED.move_to_end(key)
    seg, from_key = call(f"segment:{digest}:{params_json}:{kept is not None}", _segment_job,
                         (digest, Shared(f"image:{digest}"), params_json, kept is not None),
                         {f"image:{digest}": image})
    if seg.channel is not None:  # sent back: new, or not the key's (automatic params)
        for array in (seg.channel, seg.blurred):
            array.flags.writeable = False
        if from_key:
            with _PREPROCESSED_LOCK:
                _PREPROCESSED[key] = (seg.channel, seg.blurred)
                while len(_PREPROCESSED) > PREPROCESSED_KEPT:
                    _PREPROCESSED.popitem(last=False)
        return _pooled(seg, digest, image, params_json)
    return _pooled(seg, digest, image, params_json, kept)


def histograms(digest: str, image, params: Params, truth=None) -> dict:
    """``class_histograms`` of the blurred channel, computed in the pool."""
    key = preprocess_key(params)
    return call(f"histograms:{digest}:{key}:{truth is not None}", _histograms_job,
                (digest, Shared(f"image:{digest}"), params.to_json(indent=None), truth),
                {f"image:{digest}": image})


_UNSENDABLE: set = set()  # model tokens that could not be pickled


def model_call(method: str, digest: str, image, token: str, model, spec: str | None = None):
    """``model.<method>(image)`` in the pool (`token` names the model, which a worker
    keeps). A built-in model goes as its `spec` (``"builtin:nuclei"``: the worker loads
    it); a model that cannot be sent to a process (one holding a lock, an open file or
    a native session) is run in-process."""
    sent = spec if spec is not None else model
    if token in _UNSENDABLE:
        return _model_job(method, model, image)
    try:
        return call(f"model:{method}:{token}:{digest}", _model_job,
                    (method, Shared(f"model:{token}"), Shared(f"image:{digest}")),
                    {f"model:{token}": sent, f"image:{digest}": image})
    except NotSent as err:
        log.warning("%s; predicting in-process", err)
        _UNSENDABLE.add(token)
        return _model_job(method, model, image)
