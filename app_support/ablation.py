"""The chapter's ablation as a table: blur, opening, closing and small-piece removal
switched on one at a time over a test split (:func:`cellseg_core.experiments.ablation`),
with the check-yourself question of which step gains most, answered from the table."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from cellseg_core.params import Params

from . import cache, quiz

__all__ = ["ablation_table", "ablation_question", "render_ablation"]

_COLUMNS = {"step": "step", "mean_dice": "mean Dice", "gain": "gain over the base",
            "dice_nucleus": "Dice nucleus", "dice_cytoplasm": "Dice cytoplasm"}


def ablation_table(table: pd.DataFrame) -> pd.DataFrame:
    """The ablation's rows as shown: renamed columns, in reading order."""
    return table[list(_COLUMNS)].rename(columns=_COLUMNS)


def ablation_question(table: pd.DataFrame) -> quiz.Question:
    """"Which step alone gains most?", the answer read off `table`'s single-step rows."""
    single = table[table["step"].str.startswith("+ ")]
    best = single.loc[single["gain"].idxmax()]
    options = [s[2:] for s in single["step"]]
    return quiz.live_choice(
        "ablation", "Which step, switched on alone, gains most over the base?", options,
        best["step"][2:],
        f"{best['step'][2:]}: {best['gain']:+.4f} mean Dice alone; no single step comes "
        f"near what the optimised thresholds gave (the whole table spans "
        f"{table['mean_dice'].max() - table['mean_dice'].min():.4f}).",
        source="the chapter's Lab 03 group exercise (ablation)")


def render_ablation(ds, ids, base: Params, page: str) -> pd.DataFrame:
    """Draw the ablation table of `base` on `ids` of `ds` and its question."""
    table = cache.ablation(ds, ids, base)
    st.dataframe(ablation_table(table).style.format(precision=4), hide_index=True,
                 key=f"{page}.ablation")
    st.caption(f"Each step alone on {len(ids)} test images of {ds.name}, at the course's "
               "settings (blur σ 1.5, disk radius 3, pieces under 200 px), with the course's "
               "clean-up (removed pieces become background).")
    quiz.render_question(ablation_question(table), page)
    return table
