"""CellSeg Explorer: the Streamlit entry point and router.

``streamlit run app.py``. Every page is listed in :data:`PAGES` (once
``st.navigation`` runs, ``pages/`` is not discovered automatically), the lessons in
:data:`LESSONS`, each list a section of the menu; the sidebar's
image source is drawn here, once, for all pages (:func:`sources.shared_sidebar`
keeps the chosen image in ``st.session_state[state.SOURCE_CURRENT]``).
"""
import streamlit as st

from app_support import layout, sources

st.set_page_config(page_title="CellSeg Explorer", page_icon="🔬", layout="wide")

#: Explore, the default page, served at ``/``. Its own name, ``/explore``, is an alias
#: (below): Streamlit keeps a default page's inferred path for its identity only, so it
#: gets a path nobody asks for.
EXPLORE = st.Page("pages/explore.py", title="Explore", icon="🔍", default=True,
                  url_path="explore-default")


def _open_explore() -> None:
    """``/explore`` (the page's name, and its URL before it became the default page):
    open Explore at ``/``, the link's query (dataset, image, parameters) kept, where
    Streamlit would answer "Page not found" first."""
    st.switch_page(EXPLORE, query_params=st.query_params.to_dict())


#: The app's pages, in menu order. Add new pages here.
PAGES = [
    EXPLORE,
    st.Page("pages/compare.py", title="Compare", icon="📊"),
    st.Page("pages/optimise.py", title="Optimise", icon="🎯"),
    st.Page("pages/count.py", title="Count", icon="🔢"),
    st.Page("pages/batch.py", title="Batch", icon="📦"),
    st.Page("pages/train.py", title="Train", icon="🧠"),
]
#: Guided lessons for teachers (step-walker in app_support/lessons.py).
LESSONS = [
    st.Page("pages/lesson_nc_ratio.py", title="N/C ratio of urothelial cells", icon="🎓"),
    st.Page("pages/lesson_counting.py", title="Counting cells in fluorescence", icon="🎓"),
    st.Page("pages/lesson_supervision.py", title="Why supervision pays", icon="🎓"),
]

#: Paths that old links use, not in the menu.
ALIASES = [st.Page(_open_explore, title="Explore", url_path="explore", visibility="hidden")]

page = st.navigation({"Tools": PAGES + ALIASES, "Lessons": LESSONS})
layout.render_layout_css()  # narrow screens (issue 22 point 8)
sources.shared_sidebar()
page.run()
