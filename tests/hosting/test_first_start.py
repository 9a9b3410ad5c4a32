"""First start on a fresh clone (issue 22 point 9): no alarming warning in the server's
output. Static file serving is on (Explore's charts load plotly.js from ``static/``),
and Streamlit warns at start when that folder is missing, so the folder ships with the
code: a copy of only the files git tracks starts without a warning."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from _common import REPO, server_log, start_streamlit, stop_streamlit


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                             check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot tell which files a clone holds")
    return [p for p in out.decode().split("\0") if p]


def test_the_static_folder_ships_with_the_code():
    assert "static/README.md" in _tracked()
    assert not [p for p in _tracked() if p.startswith("static/plotly")]  # copied, not committed


@pytest.mark.slow
def test_a_fresh_clone_starts_without_a_warning(tmp_path):
    clone = tmp_path / "clone"
    for path in _tracked():
        if path.split("/")[0] in {"app.py", "app_support", "pages", "assets", ".streamlit",
                                  "static", "cellseg_core"}:
            (clone / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / path, clone / path)
    proc, _ = start_streamlit({"PYTHONPATH": str(clone)}, script=str(clone / "app.py"))
    try:
        log = server_log(proc)
    finally:
        stop_streamlit(proc)
    assert "You can now view your Streamlit app" in log, log
    assert "WARNING" not in log.upper().replace("WARNINGS", ""), log


def test_the_browser_keeps_cached_messages_longer_than_a_burst_of_fragment_runs():
    """Issue 21 point 7: at Streamlit's default (2 runs) a slow full rerun could refer to
    a figure the browser had already dropped after a few fragment runs ("Cached
    ForwardMsg MISS", a frozen page). The project's config raises the age; the server
    sends it to the browser in every new session."""
    import tomllib

    from streamlit import config

    settings = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert settings["global"]["maxCachedMessageAge"] >= 20
    config.get_config_options(force_reparse=True, options_from_flags={})
    assert config.get_option("global.maxCachedMessageAge") == settings["global"][
        "maxCachedMessageAge"]
