"""Quotas on a shared server: background runs, uploads, and what an ended session leaves.

Limits (environment variables, read when they are checked)
------------------------------------------------------------
``CELLSEG_MAX_RUNS_PER_SESSION``  background runs (compare, optimise, train, batch) one
                                  session may have going at once (default 1)
``CELLSEG_MAX_RUNS_TOTAL``        runs going at once over every session (default: the
                                  number of cores, at least 2)
``CELLSEG_MAX_UPLOADS``           files one session may hold uploaded (default 50)
``CELLSEG_MAX_UPLOAD_MB``         their total size in MB (default 1000)
``CELLSEG_SWEEP_SECONDS``         how often ended sessions are looked for (default 15)

A refused run or upload gets a message that names the limit and its variable. Uploads
are held to the limits at the top of every script run (:func:`enforce_upload_limits`,
called by the shared sidebar): the newest files past a limit are removed from
Streamlit's upload store, and the uploader that holds one shows why
(:func:`accepted`, around every ``st.file_uploader``).

Ended sessions
--------------
Streamlit has no session-end hook, and a closed tab's session is kept (for a
reconnect) in a store that forgets it only lazily. A daemon thread (:func:`start_sweeper`)
therefore looks every ``CELLSEG_SWEEP_SECONDS`` for sessions the runtime no longer knows
(neither connected nor resumable) and releases what they held here: their runs are
stopped and their results dropped (:class:`RunRegistry`), their heavy job in the
worker pool is cancelled, and their uploaded files are removed from Streamlit's
upload store. The same pass trims any session's uploads back to the limits.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import weakref

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from . import worker
from .safe_text import md

__all__ = ["MAX_RUNS_PER_SESSION", "MAX_UPLOADS", "MAX_UPLOAD_MB", "SWEEP_SECONDS",
           "max_runs_per_session", "max_runs_total", "max_uploads", "max_upload_bytes",
           "RunRegistry", "registry", "run_refusal", "trim_uploads", "upload_refusal",
           "session_alive", "sweep", "start_sweeper", "enforce_upload_limits", "accepted"]

log = logging.getLogger(__name__)

MAX_RUNS_PER_SESSION = 1
MAX_UPLOADS = 50
MAX_UPLOAD_MB = 1000
SWEEP_SECONDS = 15.0


def max_runs_per_session() -> int:
    """``CELLSEG_MAX_RUNS_PER_SESSION`` (default 1)."""
    return worker.env_number("CELLSEG_MAX_RUNS_PER_SESSION", MAX_RUNS_PER_SESSION, 1)


def max_runs_total() -> int:
    """``CELLSEG_MAX_RUNS_TOTAL`` (default: the number of cores, at least 2)."""
    return worker.env_number("CELLSEG_MAX_RUNS_TOTAL", max(2, os.cpu_count() or 2), 1)


def max_uploads() -> int:
    """``CELLSEG_MAX_UPLOADS``: files one session may hold (default 50)."""
    return worker.env_number("CELLSEG_MAX_UPLOADS", MAX_UPLOADS, 1)


def max_upload_bytes() -> int:
    """``CELLSEG_MAX_UPLOAD_MB`` in bytes: one session's uploads in all (default 1000 MB)."""
    return int(worker.env_number("CELLSEG_MAX_UPLOAD_MB", MAX_UPLOAD_MB, 0.001, float) * 2**20)


# --- runs -------------------------------------------------------------------------------
class RunRegistry:
    """Every background run of the process with its session, for the quotas and for
    releasing the runs of ended sessions.

    The registry holds runs weakly: a run the session has dropped is gone from it
    too. Runs only need ``running``, ``cancel()``, ``result`` and ``events``.

    Examples
    --------
    >>> class Job:
    ...     running, result, events = True, [0] * 1000, []
    ...     def cancel(self):
    ...         self.running = False
    >>> reg, job = RunRegistry(), Job()
    >>> reg.add(job, "session-a")
    >>> len(reg.running()), len(reg.running("session-b"))
    (1, 0)
    >>> reg.release("session-a"), job.running, job.result
    (1, False, None)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.released = 0  # runs released because their session ended

    def add(self, run, session: str) -> None:
        with self._lock:
            self._runs[run] = session

    def running(self, session: str | None = None) -> list:
        """Runs still going (of `session`, or of every session)."""
        with self._lock:
            return [r for r, s in list(self._runs.items())
                    if r.running and (session is None or s == session)]

    def sessions(self) -> set:
        with self._lock:
            return set(self._runs.values())

    def release(self, session: str) -> int:
        """Stop `session`'s runs and drop their results and events; returns how many."""
        with self._lock:
            mine = [r for r, s in list(self._runs.items()) if s == session]
            for run in mine:
                del self._runs[run]
            self.released += len(mine)
        for run in mine:
            if run.running:
                run.cancel()
            run.result = None
            run.events = []
        return len(mine)


_REGISTRY = RunRegistry()


def registry() -> RunRegistry:
    """The process's :class:`RunRegistry`."""
    return _REGISTRY


def run_refusal(session: str, reg: RunRegistry | None = None) -> str | None:
    """Why `session` may not start a run now (a message naming the limit), or None.

    Examples
    --------
    >>> run_refusal("nobody", RunRegistry()) is None
    True
    """
    reg = reg or _REGISTRY
    mine, every = reg.running(session), reg.running()
    per_session, total = max_runs_per_session(), max_runs_total()
    if len(mine) >= per_session:
        busy = mine[0]
        page = getattr(busy, "page", "")
        what = (f"{md(busy.label)}, started on the {page.capitalize()} page, "
                f"{busy.fraction:.0%} done" if hasattr(busy, "fraction") else "")
        return (f"A run is already going ({what}): this server allows {per_session} "
                f"run{'s' if per_session > 1 else ''} per session at a time "
                f"(CELLSEG_MAX_RUNS_PER_SESSION = {per_session}). Wait for it to finish "
                "or stop it first.")
    if len(every) >= total:
        return (f"The server is busy: {len(every)} runs are going for all users, the most "
                f"it allows at once (CELLSEG_MAX_RUNS_TOTAL = {total}). Try again when one "
                "has finished.")
    return None


# --- uploads ----------------------------------------------------------------------------
def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 2**10:,.0f} kB"


def trim_uploads(files: list[tuple[str, str, int]], *, max_files: int | None = None,
                 max_bytes: int | None = None) -> tuple[list[str], str | None]:
    """Which uploads to drop so the rest fit the limits, oldest kept first.

    Parameters
    ----------
    files : list of (file_id, name, size in bytes)
        A session's uploads in the order they arrived.

    Returns
    -------
    drop : list of file_id
    message : str or None
        Names the dropped files and the limit they passed.

    Examples
    --------
    >>> trim_uploads([("a", "a.png", 600), ("b", "b.png", 600)], max_files=5,
    ...              max_bytes=1000)[0]
    ['b']
    """
    max_files = max_uploads() if max_files is None else max_files
    max_bytes = max_upload_bytes() if max_bytes is None else max_bytes
    kept = total = 0
    drop, names, by_count = [], [], False
    for file_id, name, size in files:
        if kept + 1 > max_files or total + size > max_bytes:
            by_count = by_count or kept + 1 > max_files
            drop.append(file_id)
            names.append(name)
            continue
        kept += 1
        total += size
    if not drop:
        return [], None
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    limit = (f"at most {max_files} files per session (CELLSEG_MAX_UPLOADS = {max_files})"
             if by_count else
             f"at most {_mb(max_bytes)} of uploads per session (CELLSEG_MAX_UPLOAD_MB = "
             f"{max_bytes / 2**20:g})")
    return drop, (f"Upload refused: {shown} would pass this server's limit of {limit}. "
                  "Remove files you no longer need and upload again.")


def _session_files(manager, session: str) -> list[tuple[str, str, int]]:
    storage = getattr(manager, "file_storage", {}).get(session) or {}
    return [(fid, rec.name, len(rec.data)) for fid, rec in list(storage.items())]


_REFUSED: dict[str, dict[str, str]] = {}  # session -> refused file id -> message
_REFUSED_LOCK = threading.Lock()


def upload_refusal(manager, session: str) -> str | None:
    """Drop `session`'s uploads beyond the limits from Streamlit's upload store
    (`manager`) and remember why; the message naming the limit, or None when they fit."""
    drop, message = trim_uploads(_session_files(manager, session))
    for file_id in drop:
        manager.remove_file(session, file_id)
    if drop:
        with _REFUSED_LOCK:
            refused = _REFUSED.setdefault(session, {})
            refused.update(dict.fromkeys(drop, message))
            for old in list(refused)[:-100]:  # bounded
                del refused[old]
    return message


def enforce_upload_limits() -> str | None:
    """In a script run: hold this session's uploads to the limits before any uploader
    reads them; returns the refusal message (None when they fit). Starts the sweeper."""
    start_sweeper()
    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or getattr(ctx, "uploaded_file_mgr", None) is None:
        return None
    return upload_refusal(ctx.uploaded_file_mgr, ctx.session_id)


def refusal(upload) -> str | None:
    """Why `upload` (one uploaded file) is refused in this session, or None. For uploads
    read in a widget callback, which runs before the script's own limit check: the
    limits are applied here first."""
    enforce_upload_limits()
    with _REFUSED_LOCK:
        return _REFUSED.get(worker.session_id(), {}).get(getattr(upload, "file_id", None))


def accepted(value):
    """What ``st.file_uploader`` returned, less this session's refused files; an error
    where the uploader is says why. None (or a shorter list) when files were refused.

    Streamlit reads an uploader's files before the script runs, so a file removed from
    the upload store in this run is still in `value`: this is where it goes.
    """
    files = value if isinstance(value, list) else [] if value is None else [value]
    with _REFUSED_LOCK:
        refused = dict(_REFUSED.get(worker.session_id(), {}))
    bad = [f for f in files if getattr(f, "file_id", None) in refused]
    if not bad:
        return value
    st.error(md(refused[bad[0].file_id]))
    kept = [f for f in files if f not in bad]
    return kept if isinstance(value, list) else None


# --- ended sessions -----------------------------------------------------------------------
def _runtime():
    """The server's Streamlit runtime; None in bare mode and under AppTest (whose
    runtime is a mock: it has no sessions to sweep)."""
    runtime = Runtime.instance() if Runtime.exists() else None
    return runtime if issubclass(type(runtime), Runtime) else None


def session_alive(session: str, runtime=None) -> bool:
    """True while the runtime knows `session`: connected, or kept for a reconnect.
    True as well when there is no runtime to ask (tests, bare mode)."""
    runtime = runtime or _runtime()
    manager = getattr(runtime, "_session_mgr", None)
    if manager is None:
        return True
    try:
        return manager.get_session_info(session) is not None
    except Exception:  # noqa: BLE001  an internal API that moved: keep everything
        log.exception("cannot ask the session manager about %s", session)
        return True


def sweep(runtime=None) -> dict:
    """One pass: release what ended sessions held, trim uploads to the limits.

    Returns counts: ``{"runs": released runs, "jobs": cancelled heavy jobs,
    "upload_sessions": sessions whose uploads were dropped, "trimmed": sessions
    trimmed to the limits}``.
    """
    runtime = runtime or _runtime()
    out = {"runs": 0, "jobs": 0, "upload_sessions": 0, "trimmed": 0}
    if runtime is None:
        return out
    pool_sessions = worker._POOL.sessions() if worker._POOL is not None else []
    for session in _REGISTRY.sessions() | set(pool_sessions):
        if session.startswith(worker.OUTSIDE_SCRIPT) or not session:
            continue  # a caller outside any script run (a thread of its own)
        if not session_alive(session, runtime):
            out["runs"] += _REGISTRY.release(session)
            out["jobs"] += worker.cancel_session(session)
    manager = getattr(runtime, "uploaded_file_mgr", None)
    for session in list(getattr(manager, "file_storage", {})):
        if not session_alive(session, runtime):
            manager.remove_session_files(session)
            out["upload_sessions"] += 1
        elif upload_refusal(manager, session):
            out["trimmed"] += 1
    with _REFUSED_LOCK:
        for session in [s for s in _REFUSED if not session_alive(s, runtime)]:
            del _REFUSED[session]
    if any(out.values()):
        log.info("sweep: %s", out)
    return out


_SWEEPER: threading.Thread | None = None
_SWEEPER_LOCK = threading.Lock()


def _sweep_forever() -> None:
    while True:
        try:
            pause = worker.env_number("CELLSEG_SWEEP_SECONDS", SWEEP_SECONDS, 0.1, float)
        except ValueError:
            log.exception("bad CELLSEG_SWEEP_SECONDS; sweeping every %s s", SWEEP_SECONDS)
            pause = SWEEP_SECONDS
        time.sleep(pause)
        try:
            sweep()
        except Exception:  # noqa: BLE001  a sweep must never end the thread
            log.exception("sweep failed")


def start_sweeper() -> bool:
    """Start the sweeping thread once per process (only under a Streamlit runtime);
    True when it runs."""
    global _SWEEPER
    with _SWEEPER_LOCK:
        if _SWEEPER is None and _runtime() is not None:
            _SWEEPER = threading.Thread(target=_sweep_forever, name="cellseg-sweeper",
                                        daemon=True)
            _SWEEPER.start()
        return _SWEEPER is not None
