"""Fixtures of the app tests: the test module's page (its ``PAGE``, run for at most
``TIMEOUT`` seconds a script run) in Streamlit's AppTest, on VocEd or on the demo data."""
from __future__ import annotations

import pytest

from tests._support.apptest import page_app


@pytest.fixture
def app_voced(request, voced, monkeypatch):
    """The page with ``CELLSEG_DATA`` set to the VocEd folder."""
    return page_app(monkeypatch, request.module.PAGE, voced, timeout=request.module.TIMEOUT)


@pytest.fixture
def app_demo(request, monkeypatch):
    """The page on the built-in demo datasets only."""
    return page_app(monkeypatch, request.module.PAGE, timeout=request.module.TIMEOUT)
