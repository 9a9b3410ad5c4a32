"""The sources' check-yourself questions, as data, and one way to draw any of them.

Every question of the course chapter and of the fluorescence tutorial lives in
:data:`QUESTIONS` (a :class:`Question` each: a choice or a number, the answer, the
explanation shown after an answer, and for a choice the sources' reason per wrong
option). :func:`render_question` draws one on a page and checks the answer; the lessons
place them where the material is. Answers that depend on live numbers (which step of
the ablation gains most) are built with :func:`live_choice`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import streamlit as st

from .safe_text import md

__all__ = ["Question", "QUESTIONS", "TUTORIAL_PIPELINE", "render_question", "check",
           "live_choice"]


@dataclass(frozen=True)
class Question:
    """One check-yourself question.

    Attributes
    ----------
    id : str
        Stable name (the widget key is ``<page>.q.<id>``).
    prompt : str
    answer : str or float
        The right option (a choice) or the right number.
    explanation : str
        Shown once the question is answered, right or wrong.
    options : tuple of str
        The choices; empty for a number question.
    why : dict
        Option → the sources' reason it is wrong (shown when it is picked).
    tolerance : float
        A number answer within this of `answer` is right.
    source : str
        Where the question comes from.
    """

    id: str
    prompt: str
    answer: object
    explanation: str
    options: tuple = ()
    why: dict = field(default_factory=dict)
    tolerance: float = 0.005
    source: str = ""

    def __post_init__(self):
        if self.options and self.answer not in self.options:
            raise ValueError(f"question {self.id!r}: `answer` {self.answer!r} must be one "
                             f"of `options` {list(self.options)}")
        if not self.options and not isinstance(self.answer, (int, float)):
            raise TypeError(f"question {self.id!r}: a number question needs a number "
                            f"`answer`, got {type(self.answer).__name__}")


def check(question: Question, answer) -> bool | None:
    """Whether `answer` is right (None: not answered)."""
    if answer is None:
        return None
    if question.options:
        return answer == question.answer
    return bool(math.isfinite(float(answer))
                and abs(float(answer) - float(question.answer)) <= question.tolerance)


def render_question(question: Question, page: str) -> bool | None:
    """Draw `question` (a radio for a choice, a number box for a number) under key
    ``<page>.q.<id>``; once answered show whether it is right and the explanation.
    Returns None until answered, then whether the answer is right."""
    key = f"{page}.q.{question.id}"
    if question.options:
        answer = st.radio(question.prompt, list(question.options), index=None, key=key)
    else:
        answer = st.number_input(question.prompt, value=None, step=0.01, format="%.2f",
                                 key=key)
    right = check(question, answer)
    if right is None:
        return None
    shown = (question.answer if question.options
             else f"{question.answer:.2f}")
    if right:
        st.success(f"Right: {md(shown)}. {md(question.explanation)}")
    else:
        reason = question.why.get(answer, "") if question.options else ""
        st.error(f"Not quite: the answer is {md(shown)}. "
                 + (f"{md(reason)} " if reason else "") + md(question.explanation))
    if question.source:
        st.caption(f"From {md(question.source)}.")
    return right


def live_choice(id: str, prompt: str, options, answer, explanation: str, *,
                source: str = "") -> Question:
    """A choice question whose options and answer a page computes live (e.g. from the
    ablation table)."""
    return Question(id, prompt, answer, explanation, options=tuple(options), source=source)


_CHAPTER = "the VocEd course chapter"
_TUTORIAL = "the fluorescence segmentation tutorial"

#: The fluorescence tutorial's own step list for "put the steps in order".
TUTORIAL_PIPELINE = [
    "Place Gaussian blobs at random non-overlapping positions",
    "Add Gaussian noise and clip pixel values to zero",
    "Apply 2-D Gaussian smoothing",
    "Threshold the smoothed image to produce a binary mask",
    "Label connected components with scipy.ndimage.label",
    "Discard components smaller than MIN_CELL_SIZE pixels",
]

_T_BG_RIGHT = ("Stage 1 sent a large share of the cytoplasm to background, on every image "
               "(pale cytoplasm is nearly as bright as the glass)")
_FAILURE_RIGHT = ("holes inside nuclei → fill holes (binary_fill_holes); isolated "
                  "cytoplasm debris → remove small objects (remove_small_objects)")
_MIN_SEP_RIGHT = ("At smaller separations the midpoint intensity between two adjacent cells "
                  "exceeds the threshold, merging them into one component")
_ROLES_RIGHT = ("The threshold is the primary defence; the size filter removes small noise "
                "blobs that slip past a well-chosen threshold")

QUESTIONS = {q.id: q for q in [
    Question(
        "t_bg", "Bayesian optimisation found the optimal t_background ≈ 0.99, far above the "
        "hand-picked 0.85. What does this reveal about Stage 1's systematic error?",
        _T_BG_RIGHT,
        "Raising t_bg moves every pixel between 0.85 and 0.99 from background to "
        "cytoplasm, and the Dice goes up: those pixels are mostly true cytoplasm that "
        "Stage 1 labelled background.",
        options=(_T_BG_RIGHT,
                 "Stage 1 labelled too much background as cytoplasm",
                 "Stage 1's nucleus threshold was far too high",
                 "The images are too bright for any threshold to work"),
        why={"Stage 1 labelled too much background as cytoplasm":
             "That error would push t_bg down, not up.",
             "Stage 1's nucleus threshold was far too high":
             "t_nuc moved only from 0.45 to 0.39; the big change is t_bg."},
        source=_CHAPTER),
    Question(
        "stage3", "Stage 3 added Gaussian blur and morphological clean-up, yet the test "
        "Dice barely improved over Stage 2. What is the fundamental reason?",
        "They act on intensities and mask shapes and cannot create class separation that "
        "the gray values do not have",
        "Nucleus and cytoplasm overlap in gray: blurring does not remove the overlap (it "
        "smears boundaries), and morphology helps only at the margins.",
        options=("The blur sigma and disk radius were badly chosen",
                 "They act on intensities and mask shapes and cannot create class "
                 "separation that the gray values do not have",
                 "The optimiser needed more calls",
                 "Morphology only works on binary images"),
        why={"The blur sigma and disk radius were badly chosen":
             "The course optimised them too; the ceiling stayed.",
             "The optimiser needed more calls":
             "More calls find the same ceiling of a gray threshold."},
        source=_CHAPTER),
    Question(
        "failure_modes", "Lab 03-v2 diagnoses two failure modes of a gray-thresholded "
        "mask. Which operation addresses each?",
        _FAILURE_RIGHT,
        "Lighter patches inside a nucleus fall above t_nuc and leave holes: filling "
        "the holes plugs them without touching anything outside. Debris is small and "
        "unattached: removing pieces under a size drops it and keeps real cytoplasm.",
        options=(_FAILURE_RIGHT,
                 "holes inside nuclei → remove small objects; debris → fill holes",
                 "holes inside nuclei → opening; debris → closing",
                 "both → a stronger Gaussian blur"),
        source=_CHAPTER),
    Question(
        "gain", "The comparison table goes from ≈ 0.71 (Stage 1) to ≈ 0.80 (Stage 4). "
        "Which single stage transition accounts for most of that gain?",
        "Stage 1 → Stage 2 (optimised thresholds)",
        "Recalibrating t_background moves most of the Dice; blur, morphology and the "
        "targeted clean-up each add little on top.",
        options=("Stage 1 → Stage 2 (optimised thresholds)",
                 "Stage 2 → Stage 3 (blur and morphology)",
                 "Stage 3 → Stage 4 (targeted clean-up)",
                 "All three about equally"),
        source=_CHAPTER),
    Question(
        "min_separation", "MIN_SEPARATION is set to 24 pixels rather than a smaller value. "
        "Why?", _MIN_SEP_RIGHT,
        "Two Gaussians 24 px apart have midpoint intensity 2·exp(−24²/(8·6²)) ≈ 0.21, "
        "safely below the threshold of 0.50; closer cells would merge.",
        options=("scipy.ndimage.label cannot separate components closer than 24 pixels",
                 _MIN_SEP_RIGHT,
                 "The Gaussian smoothing filter blurs cells together unless they are at "
                 "least 4σ apart",
                 "24 pixels is the minimum required by the physical image resolution in "
                 "microns"),
        why={"scipy.ndimage.label cannot separate components closer than 24 pixels":
             "label works at pixel level and separates any two components that do not "
             "touch.",
             "The Gaussian smoothing filter blurs cells together unless they are at least "
             "4σ apart":
             "SMOOTH_SIGMA = 2, so 4σ = 8 pixels, much less than 24; blurring is not the "
             "limiting factor.",
             "24 pixels is the minimum required by the physical image resolution in microns":
             "The separation is derived from the threshold and cell brightness, not from "
             "the microscope's calibration."},
        source=_TUTORIAL),
    Question(
        "threshold_vs_size", "Pure noise gives 4 false cells at threshold 0.05 (no size "
        "filter) and 0 at threshold 0.50. What roles do the threshold and MIN_CELL_SIZE "
        "play?", _ROLES_RIGHT,
        "At 0.50 ≈ 24 smoothed-noise standard deviations, noise exceedances are vanishingly "
        "rare; the size filter is a backstop for the few that remain.",
        options=("The size filter is the primary defence; the threshold only speeds up "
                 "computation",
                 "The threshold and the size filter are equally important and "
                 "interchangeable",
                 "The threshold is irrelevant as long as the size filter is strict enough",
                 _ROLES_RIGHT),
        why={"The size filter is the primary defence; the threshold only speeds up "
             "computation":
             "Without an adequate threshold, large noise clusters pass the size filter "
             "too.",
             "The threshold and the size filter are equally important and interchangeable":
             "They address different failure modes (intensity, area) and are not "
             "interchangeable.",
             "The threshold is irrelevant as long as the size filter is strict enough":
             "A very low threshold lets noise pixels cluster into components large "
             "enough to pass."},
        source=_TUTORIAL),
    Question(
        "do_the_math", "Do the math: a cell has peak brightness B = 1.0 and width σ = 6 px. "
        "After smoothing with σs = 2 px the peak is B·σ²/(σ² + σs²). What is it (two "
        "decimals)?", 0.90,
        "1.0 · 36 / (36 + 4) = 36/40 = 0.90.", tolerance=0.005, source=_TUTORIAL),
]}
