"""Issue 20 point 6: offline, every sample the app lists opens, and nothing that
scikit-image would download (pooch) is listed."""
from __future__ import annotations

import socket

import numpy as np
import pytest

pytest.importorskip("streamlit")

from app_support import sources  # noqa: E402
from tests._support.apptest import page_app, run  # noqa: E402


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection refused, as on a machine without network."""
    def refuse(*args, **kwargs):
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_every_listed_sample_loads_offline(no_network):
    sources.available_samples.clear()
    sources._sample.clear()
    listed = sources.available_samples()
    assert listed == list(sources.SAMPLES)     # all of them load here, none downloads
    kinds = {sources.SAMPLES[label][1] for label in listed}
    assert kinds == {"cytology", "fluorescence"}
    for label in listed:
        loader, _ = sources.SAMPLES[label]
        image = sources._sample(loader)
        assert image.ndim in (2, 3) and image.dtype == np.float32
        assert 0.0 <= float(image.min()) and float(image.max()) > 0


def test_downloaded_samples_are_not_offered():
    for name in ("human_mitosis", "cells3d", "kidney", "lily", "skin", "brain"):
        assert not sources.bundled(name)
    assert all(sources.bundled(loader) for loader, _ in sources.SAMPLES.values())
    with pytest.raises(ValueError, match="not bundled"):
        sources._sample("human_mitosis")


def test_sample_source_in_the_sidebar_offline(no_network, monkeypatch):
    at = page_app(monkeypatch, "explore.py", timeout=120)
    at = run(at)
    at.sidebar.radio(key=state_kind()).set_value("Sample")
    at = run(at)
    box = at.sidebar.selectbox(key=sources.K_SAMPLE)
    assert list(box.options) == list(sources.SAMPLES)
    for label in sources.SAMPLES:
        at = run(box.set_value(label))
        box = at.sidebar.selectbox(key=sources.K_SAMPLE)


def state_kind() -> str:
    from app_support import state

    return state.SOURCE_KIND
