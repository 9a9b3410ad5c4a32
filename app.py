"""CellSeg Explorer: the Streamlit entry point (a minimal page until the app pages land)."""
import streamlit as st

from cellseg_core.presets import DESCRIPTIONS

st.set_page_config(page_title="CellSeg Explorer", layout="wide")
st.title("CellSeg Explorer")
st.write("Segmentation of microscopy images of cells. Built-in presets:")
st.table({"preset": list(DESCRIPTIONS), "what it does": list(DESCRIPTIONS.values())})
