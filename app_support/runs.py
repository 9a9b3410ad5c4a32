"""Long runs (compare a dataset, optimise parameters) that never freeze the app.

How it works
------------
A page starts a run with :func:`start`: the work (a plain function that calls the
core and never Streamlit) runs in a daemon thread, and a :class:`Run` object kept
in ``st.session_state["<page>.run"]`` carries its progress, its live events (the
optimiser's calls), its result or its error. The page draws the progress in an
``st.fragment(run_every=POLL_SECONDS)`` that only polls that object (see
:func:`poll_every`), so the rest of the page, the sidebar and the other pages stay
usable while the thread works; when the run ends the fragment asks for one full
rerun (:func:`needs_full_rerun`) and the page shows the results.

Results survive page switches because the ``Run`` lives in the session, not in
the script. Runs are limited per session (one at a time by default) and over all
sessions (:mod:`app_support.quotas`): :func:`start` refuses one more with a message
naming the limit, and the run in progress when it is this session's. A run is
registered with its session, so that the runs of an ended session are stopped and
their results released.

The preprocessed channels are cached in :func:`shared_cache`, a bounded
:class:`~cellseg_core.evaluation.ChannelCache` behind a lock, shared by every
session's runs.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import streamlit as st

from .safe_text import md

from cellseg_core.evaluation import ChannelCache

from . import quotas, worker

__all__ = ["Run", "Cancelled", "POLL_SECONDS", "ACTIVE", "run_key", "get", "active", "start",
           "clear", "poll_every", "needs_full_rerun", "follow", "shared_cache", "LockedCache",
           "LEARNED_MODELS", "register_model", "learned_models"]

log = logging.getLogger(__name__)

#: How often the progress fragment polls a running run.
POLL_SECONDS = 0.5
#: Session key of the run in progress (any page).
ACTIVE = "runs.active"


class Cancelled(Exception):
    """Raised inside a run's work when the user pressed Stop."""


@dataclass(eq=False)
class Run:
    """One long computation and what the page shows of it.

    Attributes
    ----------
    page : str
        The page that started it (its session key is ``"<page>.run"``).
    label : str
        Shown in the progress bar and in the "already running" message.
    config : dict
        What was asked (dataset, ids, methods...), for the page to show the
        results against the right settings.
    done, total : int
        Progress (any unit the work chooses).
    events : list
        Live records appended by the work (e.g. the optimiser's calls).
    status : {'running', 'done', 'failed', 'cancelled'}
    result : object
        The work's return value once ``status == 'done'``.
    error : str
        The message of a failure (a ``ValueError`` from the core reads as is).
    """

    page: str
    label: str
    config: dict = field(default_factory=dict)
    done: int = 0
    total: int = 0
    text: str = ""
    events: list = field(default_factory=list)
    status: str = "running"
    result: object = None
    error: str = ""
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    acknowledged: bool = False
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    # --- called by the work (any thread) ------------------------------------------------
    def progress(self, done: int, total: int, text: str | None = None) -> None:
        """Record progress; raises :class:`Cancelled` when Stop was pressed."""
        self.done, self.total = int(done), int(total)
        if text is not None:
            self.text = text
        if self._cancel.is_set():
            raise Cancelled()

    # --- read by the page -----------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)

    @property
    def seconds(self) -> float:
        end = self.finished if self.finished is not None else time.perf_counter()
        return end - self.started

    @property
    def cancel_requested(self) -> bool:
        """True once Stop was pressed (work that can stop cleanly checks this)."""
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the work to stop at its next progress report."""
        self._cancel.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread (tests, scripts); True when it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running


def run_key(page: str) -> str:
    """Session key of `page`'s run."""
    return f"{page}.run"


def get(page: str) -> Run | None:
    """The last run of `page` (running or finished), or None."""
    return st.session_state.get(run_key(page))


def active() -> Run | None:
    """The run in progress in this session, whatever page started it, or None."""
    run = st.session_state.get(ACTIVE)
    return run if run is not None and run.running else None


def _work(run: Run, target, args, kwargs) -> None:
    try:
        run.result = target(run, *args, **kwargs)
        run.status = "done"
    except Cancelled:
        run.status = "cancelled"
    except ValueError as err:
        run.error, run.status = str(err), "failed"
    except Exception as err:  # noqa: BLE001  shown to the user, logged with its traceback
        log.exception("run %r failed", run.label)
        run.error, run.status = f"{type(err).__name__}: {err}", "failed"
    finally:
        run.finished = time.perf_counter()


def start(page: str, label: str, target, *args, config: dict | None = None,
          **kwargs) -> Run | None:
    """Start ``target(run, *args, **kwargs)`` in a background thread.

    Runs are limited per session and in total (``CELLSEG_MAX_RUNS_PER_SESSION``,
    ``CELLSEG_MAX_RUNS_TOTAL``, see :mod:`app_support.quotas`): over a limit, a
    warning naming it is shown instead and None is returned, as it is while this
    page's own run is going.

    Parameters
    ----------
    page : str
        Page prefix; the run is kept under ``"<page>.run"`` (replacing a finished one).
    label : str
    target : callable
        Pure work: calls the core, reports with ``run.progress(done, total)`` and
        ``run.events.append(...)``, returns the result. Never calls Streamlit.
    config : dict, optional
        Stored on the run.

    Returns
    -------
    Run or None
    """
    # issue 21 point 5: quotas per session and over every session
    session = worker.session_id()
    mine = get(page)
    refusal = (quotas.run_refusal(session) if mine is None or not mine.running else
               f"A run is already going on this page ({md(mine.label)}, {mine.fraction:.0%} "
               "done): wait for it to finish or stop it first.")
    if refusal is not None:
        st.warning(refusal)
        return None
    run = Run(page=page, label=label, config=dict(config or {}))
    quotas.registry().add(run, session)
    quotas.start_sweeper()
    thread = threading.Thread(target=_work, args=(run, target, args, kwargs),
                              name=f"cellseg-{page}-run", daemon=True)
    run._thread = thread
    st.session_state[run_key(page)] = run
    st.session_state[ACTIVE] = run
    thread.start()
    return run


def clear(page: str) -> None:
    """Forget `page`'s finished run (a running one is kept)."""
    run = get(page)
    if run is not None and not run.running:
        del st.session_state[run_key(page)]


def poll_every(page: str) -> float | None:
    """``run_every`` for the page's progress fragment: poll only while running."""
    run = get(page)
    return POLL_SECONDS if run is not None and run.running else None


def needs_full_rerun(run: Run | None) -> bool:
    """True once, when a run the page has not shown in full yet has ended.

    Call it in the polling fragment: a True answer means ``st.rerun()`` so that the
    whole page (not just the fragment) draws the results.
    """
    if run is None or run.running or run.acknowledged:
        return False
    run.acknowledged = True
    return True


def _progress_area(page: str, stop_label: str) -> None:
    run = get(page)
    if run is None:
        return
    if needs_full_rerun(run):
        st.rerun()
    if run.running:
        st.progress(run.fraction, text=f"{md(run.label)}: {md(run.text or 'starting…')} "
                                       f"({run.seconds:.0f} s)")
        st.button(stop_label, key=f"{page}.stop", on_click=run.cancel)


def follow(page: str, what: str, *, stop_label: str = "Stop",
           cancelled: str | None = None) -> Run | None:
    """Show `page`'s run: live progress while it runs, then its outcome.

    Draws a fragment that polls the run (progress bar and a stop button) and asks
    for one full rerun when it ends. Returns the finished run when it succeeded;
    a failed or stopped run gets its message here and None is returned.

    Parameters
    ----------
    page : str
        The page prefix the run was started under.
    what : str
        What the run is, for the messages ("comparison", "batch", ...).
    stop_label : str
        The stop button's label.
    cancelled : str, optional
        The message for a stopped run (default "The <what> was stopped.").
    """
    run = get(page)
    if run is not None and not run.running:
        run.acknowledged = True
    st.fragment(lambda: _progress_area(page, stop_label), run_every=poll_every(page))()
    if run is None or run.running:
        return None
    if run.status == "failed":
        st.error(f"The {what} failed: {md(run.error)}")
        return None
    if run.status == "cancelled":
        st.info(cancelled or f"The {what} was stopped.")
        return None
    return run


class LockedCache(ChannelCache):
    """A :class:`ChannelCache` whose reads and writes hold a lock (runs share it)."""

    def __init__(self, max_bytes: int = 256 * 2**20):
        super().__init__(max_bytes)
        self._lock = threading.RLock()

    def __contains__(self, key) -> bool:
        with self._lock:
            return super().__contains__(key)

    def __getitem__(self, key):
        with self._lock:
            return super().__getitem__(key)

    def __setitem__(self, key, value):
        with self._lock:
            super().__setitem__(key, value)

    def clear(self):
        with self._lock:
            super().clear()


@st.cache_resource(max_entries=1, show_spinner=False)
def shared_cache() -> LockedCache:
    """The preprocessed-channel cache of every run (256 MiB, least recently used out)."""
    return LockedCache()


# --- learned models: the hook through which a trained classifier joins Compare ----------
#: Session key: name -> object with ``.segment(image) -> Segmentation``.
LEARNED_MODELS = "learned_models"


def register_model(name: str, model) -> None:
    """Offer `model` (anything with ``.segment(image)``) as a method on Compare.

    Raises
    ------
    TypeError
        When `model` has no callable ``segment``.
    """
    if not callable(getattr(model, "segment", None)):
        raise TypeError(f"`model` must have a .segment(image) method, got "
                        f"{type(model).__name__}")
    st.session_state.setdefault(LEARNED_MODELS, {})[str(name)] = model


def register_result(run: Run) -> str:
    """Register a finished training run's model (``run.result["model"]``) under
    ``run.config["name"]``, once per run (later reruns of the page leave it), and
    return the name."""
    name = run.config["name"]
    if not run.config.get("registered"):
        register_model(name, run.result["model"])
        run.config["registered"] = True
    return name


def learned_models() -> dict:
    """Name -> learned model registered in this session (see :func:`register_model`)."""
    return dict(st.session_state.get(LEARNED_MODELS, {}))
