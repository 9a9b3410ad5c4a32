"""The app layer of CellSeg Explorer: session state, caches, image sources, figures.

Only the Streamlit pages and ``app.py`` import this package; ``cellseg_core`` never does.
`figures` builds plotly figures without Streamlit, so it can be tested headless.
"""
