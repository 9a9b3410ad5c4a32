"""The step-walker of the Lessons pages, and their check-yourself widgets.

A lesson is a list of :class:`Step`. Each step has a text in
``assets/lessons/<lesson>/<NN>-<slug>.md`` whose placeholders (``{t_nuc}``,
``{test_dice:.4f}``) are filled from the values the step computed live with the core,
so no number the class can reproduce is written in the Markdown. :func:`walk` draws
the progress indicator, the step's text, its live widget area and figure (the step's
``render`` function), and the previous / next buttons. The step index lives in
``st.session_state["<page>.step"]``; every other key of a lesson starts with its page
prefix too.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
import random
from functools import lru_cache
from pathlib import Path
from typing import Callable

import streamlit as st

__all__ = ["LESSONS_DIR", "Step", "step_key", "lesson_text", "fill", "placeholders", "walk", "value", "widget",
           "choice_question", "order_exercise"]

LESSONS_DIR = Path(__file__).resolve().parent.parent / "assets" / "lessons"


@dataclass(frozen=True)
class Step:
    """One step of a lesson.

    Attributes
    ----------
    slug : str
        The text file's stem, ``"NN-slug"`` (``assets/lessons/<lesson>/<slug>.md``).
    title : str
        Shown in the progress indicator and the step picker.
    render : callable
        ``render() -> dict``: draws the step's widgets and figure and returns the
        values its text's placeholders name.
    """

    slug: str
    title: str
    render: Callable[[], dict]


def step_key(page: str) -> str:
    """Session key of the current step index of the lesson on `page`."""
    return f"{page}.step"


@lru_cache(maxsize=64)
def _read(lesson: str, slug: str) -> str:
    path = (LESSONS_DIR / lesson / f"{slug}.md").resolve()
    if path.parent.parent != LESSONS_DIR or not path.is_file():
        raise ValueError(f"no lesson text {lesson}/{slug}.md in {LESSONS_DIR}")
    return path.read_text(encoding="utf-8")


def placeholders(text: str) -> set:
    """Names of the ``{placeholders}`` in `text`."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def fill(text: str, values: dict) -> str:
    """`text` with its placeholders formatted from `values`.

    Raises
    ------
    ValueError
        Naming the placeholders that `values` lacks.
    """
    missing = sorted(placeholders(text) - set(values))
    if missing:
        raise ValueError(f"the lesson text needs value(s) {missing} that the step did not "
                         "compute")
    return text.format_map(values)


def lesson_text(lesson: str, slug: str, values: dict) -> str:
    """The text of step `slug` of `lesson`, placeholders filled from `values`."""
    return fill(_read(lesson, slug), values)


def value(page: str, name: str, default):
    """The value of lesson widget `name` on `page`, kept while its step is not shown."""
    return st.session_state.get(f"{page}.{name}", default)


def _keep(page: str, name: str) -> None:
    st.session_state[f"{page}.{name}"] = st.session_state[f"{page}.w.{name}"]


def widget(kind, label: str, page: str, name: str, default, **kwargs):
    """Draw ``kind(label, key="<page>.w.<name>", ...)`` showing the kept value of `name`.

    Streamlit drops a widget's state on a run that does not draw it (another step of
    the lesson); the value lives on under ``"<page>.<name>"``, so later steps (the
    cumulative table) use what the class chose and coming back shows it again.
    """
    st.session_state[f"{page}.w.{name}"] = value(page, name, default)
    return kind(label, key=f"{page}.w.{name}", on_change=_keep, args=(page, name), **kwargs)


def _go(page: str, delta: int, n: int) -> None:
    key = step_key(page)
    st.session_state[key] = min(max(int(st.session_state.get(key, 0)) + delta, 0), n - 1)


def _jump(page: str) -> None:
    st.session_state[step_key(page)] = int(st.session_state[f"{page}.jump"])


def walk(lesson: str, steps: list, *, page: str) -> int:
    """Draw the current step of `lesson` with its navigation; returns its index.

    Layout: progress bar and step picker, then the step's text (left) beside its
    live widget area and figure (right, from ``step.render()``), then previous /
    next buttons (keys ``<page>.prev`` and ``<page>.next``). A ``ValueError`` from
    the core or a text lacking a value becomes ``st.error``, not a traceback.
    """
    if not steps:
        raise ValueError("`steps` is empty: a lesson needs at least one step")
    n = len(steps)
    key = step_key(page)
    index = min(max(int(st.session_state.get(key, 0)), 0), n - 1)
    st.session_state[key] = index
    step = steps[index]
    top, pick = st.columns([3, 1])
    top.progress((index + 1) / n, text=f"Step {index + 1} of {n} · {step.title}")
    st.session_state[f"{page}.jump"] = index
    pick.selectbox("Go to step", range(n), key=f"{page}.jump", on_change=_jump, args=(page,),
                   format_func=lambda i: f"{i + 1}. {steps[i].title}",
                   label_visibility="collapsed")
    st.subheader(f"{index + 1}. {step.title}")
    text_area, live = st.columns([2, 3], gap="large")
    with live:
        try:
            values = step.render()
        except ValueError as err:
            st.error(f"This step cannot be computed: {err}")
            values = None
    with text_area:
        if values is not None:
            try:
                st.markdown(lesson_text(lesson, step.slug, values))
            except ValueError as err:
                st.error(str(err))
    prev, _, nxt = st.columns([1, 4, 1])
    prev.button("← Previous", key=f"{page}.prev", disabled=index == 0,
                on_click=_go, args=(page, -1, n), width="stretch")
    nxt.button("Next →", key=f"{page}.next", disabled=index == n - 1, type="primary",
               on_click=_go, args=(page, 1, n), width="stretch")
    return index


def choice_question(key: str, prompt: str, options: list, correct, *,
                    explanation: str = "") -> bool | None:
    """A multiple-choice question with feedback; `correct` is computed by the caller
    from the engine. Returns None until answered, then whether the answer is right."""
    if correct not in options:
        raise ValueError(f"`correct` ({correct!r}) must be one of `options` {options}")
    answer = st.radio(prompt, options, index=None, key=key, horizontal=True)
    if answer is None:
        return None
    if answer == correct:
        st.success(f"Right: {correct}. {explanation}".strip())
        return True
    st.error(f"Not quite: the answer is {correct}. {explanation}".strip())
    return False


def order_exercise(key: str, prompt: str, steps: list, *, seed: int = 0) -> bool | None:
    """"Put the steps in order": pick `steps` (given in the right order) one by one
    from a shuffled list. The feedback names the first step out of place as soon as
    there is one; returns False then, None while right so far, True when complete."""
    shuffled = list(steps)
    random.Random(seed).shuffle(shuffled)
    chosen = st.multiselect(prompt, shuffled, key=key,
                            placeholder="click the steps in the order they run")
    for i, (got, want) in enumerate(zip(chosen, steps), start=1):
        if got != want:
            st.error(f"Not yet: step {i} is “{want}”, not “{got}”.")
            return False
    if len(chosen) < len(steps):
        st.caption(f"{len(chosen)} of {len(steps)} steps placed, right so far.")
        return None
    st.success("Right: " + " → ".join(steps))
    return True
