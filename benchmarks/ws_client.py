"""A lightweight Streamlit client: the browser's side of ``/_stcore/stream`` in Python.

It speaks the same protocol as the Streamlit frontend (binary ``BackMsg`` up,
``ForwardMsg`` down, both protobufs from ``streamlit.proto``), so a load test can put
many sessions on a server without paying for a browser per session. What it mirrors
of the frontend (checked against the frames Chromium sends, see
``tests/hosting/test_load_client.py``):

* the first message is a ``rerun_script`` carrying the page's query string (without
  ``?``) and a ``context_info`` (timezone, locale, URL, colour scheme);
* it keeps the query string the server pushes (``page_info_changed``), the current page
  hash (``navigation.page_script_hash``) and a widget-state map filled from the widget
  elements it receives, the way the frontend registers each widget's value on mount
  (``set_value`` elements overwrite; a full run drops widgets it did not draw);
* it caches cacheable messages by hash, sends those hashes as
  ``cached_message_hashes`` and resolves ``ref_hash`` answers from that cache;
* a widget change is a ``rerun_script`` with every widget state it holds, the changed
  one replaced, and the widget's ``fragment_id`` when the widget lives in an
  ``st.fragment`` (the server then reruns only that fragment, as for a browser).

Only the widget kinds the app draws are valued (slider, number input, checkbox/toggle,
selectbox, radio, file uploader); buttons and charts send nothing until used, as in
the frontend.
"""
from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

#: Streamlit's prefix of internal widget ids (a v2 component's trigger widgets use it).
INTERNAL_KEY_PREFIX = "$$STREAMLIT_INTERNAL_KEY"

__all__ = ["RunResult", "StreamlitClient", "FINISHED"]

#: ``ForwardMsg.script_finished`` values that end a run the client waits for.
FINISHED = {
    ForwardMsg.FINISHED_SUCCESSFULLY: "finished",
    ForwardMsg.FINISHED_WITH_COMPILE_ERROR: "compile error",
    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY: "fragment finished",
}


@dataclass
class RunResult:
    """What one script run sent back.

    Attributes
    ----------
    seconds : float
        From sending the request until ``script_finished`` arrived.
    status : str
        ``"finished"``, ``"fragment finished"`` or ``"compile error"``.
    elements : dict
        Delta path (tuple) -> ``Element`` proto for every element of this run.
    metrics : dict
        Label -> shown value text, for this run's ``st.metric`` elements and the
        numbers of its markdown tables (a row of names over a row of values, as
        Explore shows them).
    exceptions : list of str
        Messages of ``st.exception`` / uncaught-exception elements.
    errors : list of str
        Bodies of ``st.error`` alerts.
    n_messages, n_bytes : int
        ForwardMsgs received and their serialized size.
    """

    seconds: float = 0.0
    status: str = ""
    elements: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    exceptions: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    n_messages: int = 0
    n_bytes: int = 0


def table_numbers(markdown: str) -> dict:
    """Name -> value of the tables in `markdown` whose rows are names, ---, values."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in markdown.splitlines() if line.startswith("|")]
    return {name: value for names, values in zip(rows[::3], rows[2::3])
            for name, value in zip(names, values)}


def _widget_state(kind: str, el) -> WidgetState | None:
    """The state the frontend registers for widget element `el` of type `kind`."""
    state = WidgetState(id=el.id)
    if kind == "slider":
        state.double_array_value.data.extend(el.value if el.set_value else el.default)
    elif kind == "number_input":
        value = el.value if el.set_value else el.default
        if el.data_type == type(el).INT:
            state.int_value = int(value)
        else:
            state.double_value = value
    elif kind == "checkbox":
        state.bool_value = el.value if el.set_value else el.default
    elif kind in ("selectbox", "radio"):
        if el.set_value and el.HasField("raw_value"):
            state.string_value = el.raw_value
        elif el.HasField("default") and 0 <= el.default < len(el.options):
            state.string_value = el.options[el.default]
        else:
            return None  # nothing chosen: the frontend sends no value
    elif kind == "file_uploader":
        state.file_uploader_state_value.SetInParent()
    else:
        return None
    return state


class StreamlitClient:
    """One Streamlit session over a websocket (127.0.0.1 by default).

    Parameters
    ----------
    base_url : str
        ``http://HOST:PORT`` of the server.
    timeout : float
        Seconds allowed for connecting and for each run (a ``TimeoutError`` beyond).

    Examples
    --------
    >>> async def one(url):                                     # doctest: +SKIP
    ...     async with StreamlitClient(url) as client:
    ...         await client.open("dataset=voced&image=007")
    ...         wid = client.find_widget("slider", key="explore.p.threshold.t_nuc")
    ...         run = await client.set_widget(wid, [0.395])
    ...         return run.metrics["Mean Dice"]
    """

    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"`base_url` must start with http:// or https://, got {base_url!r}")
        if timeout <= 0:
            raise ValueError(f"`timeout` must be > 0, got {timeout}")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.query_string = ""
        self.page_script_hash = ""
        self.widgets: dict[str, WidgetState] = {}
        self.elements: dict[tuple, object] = {}  # delta path -> Element (the screen)
        self.widget_kinds: dict[str, tuple[str, object, str]] = {}  # id -> (kind, el, fragment)
        self.charts: dict[str, tuple[str, dict, str]] = {}  # live chart -> (id, data, fragment)
        self._cache: dict[str, ForwardMsg] = {}
        self._ws = None

    # --- connection -------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the websocket (subprotocol ``streamlit``, as the frontend).

        Uses the ``websockets`` package, which Streamlit itself depends on.
        """
        from websockets.asyncio.client import connect

        url = "ws" + self.base_url[4:] + "/_stcore/stream"
        self._ws = await connect(url, subprotocols=["streamlit"], max_size=None,
                                 open_timeout=self.timeout, close_timeout=2)

    async def close(self) -> None:
        """Close the websocket (the server then ends the session)."""
        if self._ws is not None:
            ws, self._ws = self._ws, None
            await ws.close()

    async def __aenter__(self) -> "StreamlitClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # --- protocol ---------------------------------------------------------------------
    def _context(self, msg) -> None:
        info = msg.context_info
        info.timezone, info.timezone_offset, info.locale = "UTC", 0, "en-US"
        info.url = self.base_url + "/"
        info.is_embedded, info.color_scheme = False, "light"

    def rerun_message(self, fragment_id: str = "") -> BackMsg:
        """The ``rerun_script`` BackMsg the frontend would send now."""
        msg = BackMsg()
        rerun = msg.rerun_script
        rerun.query_string = self.query_string
        rerun.widget_states.SetInParent()
        rerun.widget_states.widgets.extend(self.widgets.values())
        rerun.page_script_hash = self.page_script_hash
        if fragment_id:
            rerun.fragment_id = fragment_id
        rerun.cached_message_hashes.extend(self._cache)
        self._context(rerun)
        return msg

    async def _send(self, msg: BackMsg) -> None:
        await self._ws.send(msg.SerializeToString())

    async def _receive_run(self, start: float) -> RunResult:
        """Read ForwardMsgs until this run's ``script_finished``."""
        result = RunResult()
        deadline = start + self.timeout
        seen: set[str] = set()
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"no script_finished within {self.timeout:.0f} s")
            data = await asyncio.wait_for(self._ws.recv(), left)
            if isinstance(data, str):
                raise ConnectionError("the server sent a text frame (expected protobuf bytes)")
            result.n_messages += 1
            result.n_bytes += len(data)
            msg = ForwardMsg()
            msg.ParseFromString(data)
            if msg.HasField("ref_hash"):
                cached = self._cache.get(msg.ref_hash)
                if cached is None:
                    raise RuntimeError(f"ref_hash {msg.ref_hash} is not in the client cache")
                metadata = msg.metadata
                msg = ForwardMsg()
                msg.CopyFrom(cached)
                msg.metadata.CopyFrom(metadata)
            elif msg.metadata.cacheable and msg.hash:
                self._cache[msg.hash] = msg
            kind = msg.WhichOneof("type")
            if kind == "delta":
                self._on_delta(msg, result, seen)
            elif kind == "page_info_changed":
                self.query_string = msg.page_info_changed.query_string
            elif kind == "navigation":
                if msg.navigation.page_script_hash:
                    self.page_script_hash = msg.navigation.page_script_hash
            elif kind == "new_session":
                if msg.new_session.page_script_hash and not self.page_script_hash:
                    self.page_script_hash = msg.new_session.page_script_hash
            elif kind == "script_finished":
                status = msg.script_finished
                if status not in FINISHED:  # FINISHED_EARLY_FOR_RERUN: a rerun follows
                    continue
                result.status = FINISHED[status]
                if status == ForwardMsg.FINISHED_SUCCESSFULLY:  # full run: forget the rest
                    for wid in set(self.widgets) - seen:
                        del self.widgets[wid]
                result.seconds = time.perf_counter() - start
                return result

    def _on_delta(self, msg: ForwardMsg, result: RunResult, seen: set) -> None:
        delta = msg.delta
        if delta.WhichOneof("type") != "new_element":
            return
        path = tuple(msg.metadata.delta_path)
        el = delta.new_element
        kind = el.WhichOneof("type")
        result.elements[path] = el
        self.elements[path] = el
        body = getattr(el, kind)
        if kind == "metric":
            result.metrics[body.label] = body.body
        elif kind == "markdown":
            result.metrics.update(table_numbers(body.body))
        elif kind == "exception":
            result.exceptions.append(f"{body.type}: {body.message}"[:300])
        elif kind == "alert" and body.format == body.ERROR:
            result.errors.append(body.body[:300])
        if kind == "bidi_component":  # app_support.live_plot charts, by name
            data = json.loads(body.json) if body.json else {}
            if isinstance(data, dict) and "name" in data:
                self.charts[data["name"]] = (body.id, data, delta.fragment_id)
            return
        wid = getattr(body, "id", "") if kind != "plotly_chart" else ""
        if not wid:
            return
        self.widget_kinds[wid] = (kind, body, delta.fragment_id)
        state = _widget_state(kind, body)
        if state is None:
            return
        seen.add(wid)
        if wid not in self.widgets or getattr(body, "set_value", False):
            self.widgets[wid] = state

    # --- what a user does -------------------------------------------------------------
    async def open(self, query_string: str = "") -> RunResult:
        """Load the app with `query_string` (``"a=1&b=2"``) and wait for the run."""
        self.query_string = query_string.lstrip("?")
        msg = BackMsg()
        msg.rerun_script.query_string = self.query_string
        msg.rerun_script.widget_states.SetInParent()
        self._context(msg.rerun_script)
        start = time.perf_counter()
        await self._send(msg)
        return await self._receive_run(start)

    def find_widget(self, kind: str, *, key: str | None = None, label: str | None = None) -> str:
        """Id of the `kind` widget whose user key is `key` (or whose label starts with `label`).

        Raises
        ------
        LookupError
            When no widget on screen matches.
        """
        for wid, (k, body, _) in self.widget_kinds.items():
            if k != kind:
                continue
            if key is not None and wid.endswith("-" + key):
                return wid
            if label is not None and body.label.startswith(label):
                return wid
        raise LookupError(f"no {kind} widget with key={key!r} label={label!r} on screen "
                          f"(have {sorted(self.widget_kinds)})")

    def widget(self, wid: str):
        """The last element proto received for widget `wid`."""
        return self.widget_kinds[wid][1]

    def pending_report(self, chart: str) -> str | None:
        """What the live chart named `chart` asks to report once drawn (its
        ``notify``), or None."""
        found = self.charts.get(chart)
        return found[1].get("notify") if found else None

    async def report_drawn(self, chart: str) -> RunResult:
        """Do what the browser does once the live chart `chart` has drawn its figure:
        set its ``drawn`` trigger to the chart's ``notify`` and wait for the rerun."""
        cid, data, fragment_id = self.charts[chart]
        trigger = WidgetState(id=f"{INTERNAL_KEY_PREFIX}_{cid}__events")
        trigger.json_trigger_value = json.dumps([{"event": "drawn", "value": data["notify"]}])
        msg = self.rerun_message(fragment_id)
        msg.rerun_script.widget_states.widgets.append(trigger)
        start = time.perf_counter()
        await self._send(msg)
        return await self._receive_run(start)

    async def set_widget(self, wid: str, value) -> RunResult:
        """Change widget `wid` to `value` (a list for a slider) and wait for the rerun.

        The rerun carries the fragment id of the widget when it is inside a fragment.
        """
        kind, body, fragment_id = self.widget_kinds[wid]
        state = WidgetState(id=wid)
        if kind == "slider":
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            state.double_array_value.data.extend(float(v) for v in values)
        elif kind == "number_input":
            if body.data_type == type(body).INT:
                state.int_value = int(value)
            else:
                state.double_value = float(value)
        elif kind == "checkbox":
            state.bool_value = bool(value)
        elif kind in ("selectbox", "radio"):
            state.string_value = str(value)
        else:
            raise ValueError(f"`wid` is a {kind}, which set_widget cannot change")
        self.widgets[wid] = state
        msg = self.rerun_message(fragment_id)
        start = time.perf_counter()
        await self._send(msg)
        return await self._receive_run(start)

    @staticmethod
    def next_step(body, value: float) -> float:
        """The slider value one ArrowRight press above `value` (snapped to the step grid)."""
        step = body.step
        n = math.floor((value - body.min) / step + 1e-9) + 1
        return round(min(body.min + n * step, body.max), 10)
