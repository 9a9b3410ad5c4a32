# CellSeg Explorer: the Streamlit app in a small image.
#   docker build -t cellseg-explorer .
#   docker run -p 8501:8501 -v /data/voced:/data/voced:ro -e CELLSEG_DATA=/data/voced cellseg-explorer
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    CELLSEG_MAX_PIXELS=100000000

# A user without a login shell or root rights runs the app.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin cellseg
WORKDIR /app

# Dependencies first (cached while only the code changes). requirements.txt ends
# with "-e .", which needs the package's metadata and code.
COPY --chown=cellseg:cellseg requirements.txt pyproject.toml README.md ./
COPY --chown=cellseg:cellseg cellseg_core ./cellseg_core
RUN pip install -r requirements.txt

COPY --chown=cellseg:cellseg app.py ./
COPY --chown=cellseg:cellseg app_support ./app_support
COPY --chown=cellseg:cellseg pages ./pages
COPY --chown=cellseg:cellseg assets ./assets
COPY --chown=cellseg:cellseg .streamlit ./.streamlit
# plotly.js for the charts redrawn in place (app_support/live_plot.py), put in static/
# now: the app's user may not write to /app.
RUN python -c "from app_support.live_plot import _plotly_js_name; assert _plotly_js_name()"

USER cellseg
EXPOSE 8501

# slim has no curl: ask the health endpoint with the standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4).status == 200 else 1)"

CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true"]
