"""The bad-input corpus (tests/_support/bad_inputs.py) through the engine, the CLI and the app,
plus the hardening checks of issue 9: the pixel limit, no pickles, path traversal,
escaped file names, bounded caches and the Dockerfile.
"""
from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cellseg_core.io import MAX_PIXELS, read_image, read_mask
from cellseg_core.params import Params
from tests._support.bad_inputs import (MASK_SHAPE, _PICKLE_SENTINEL, _cases, bomb_png_bytes,
                                       good_image, good_png_bytes, make_corpus)

REPO = Path(__file__).resolve().parents[2]
_NAMES = [entry[0] for entry in _cases()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return {c.name: c for c in make_corpus(tmp_path_factory.mktemp("corpus"))}


def test_corpus_has_every_kind_asked_for(corpus):
    assert len(corpus) >= 30
    kinds = {c.kind for c in corpus.values()}
    assert kinds == {"image", "mask", "params"}
    assert sum(c.ok for c in corpus.values()) >= 10          # valid odd inputs
    assert sum(not c.ok for c in corpus.values()) >= 20      # refused ones
    assert (corpus["empty"].path.stat().st_size, corpus["bomb_png"].path.stat().st_size < 10_000) \
        == (0, True)


# --- engine -------------------------------------------------------------------------------
def _engine(case):
    if case.kind == "image":
        return read_image(case.path)
    if case.kind == "mask":
        return read_mask(case.path, shape=MASK_SHAPE)
    return Params.from_json(case.data)


@pytest.mark.parametrize("name", _NAMES)
def test_engine(corpus, name):
    case = corpus[name]
    if case.ok:
        out = _engine(case)
        if case.kind == "image":
            assert out.dtype == np.float32 and out.ndim in (2, 3)
            assert np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
        elif case.kind == "mask":
            assert out.shape == MASK_SHAPE and set(np.unique(out)) <= {0, 1, 2}
    else:
        with pytest.raises(ValueError, match=re.compile(case.expect, re.I | re.S)):
            _engine(case)
        if case.kind != "params":  # the message names the file
            with pytest.raises(ValueError, match=re.escape(case.path.name[:20])):
                _engine(case)


def test_valid_odd_images_have_the_right_values(corpus):
    gray = good_image()[..., 0] / 255
    assert read_image(corpus["gray16_tiff"].path) == pytest.approx(gray, abs=1e-6)
    assert read_image(corpus["gray16_png"].path) == pytest.approx(gray, abs=1e-6)
    assert read_image(corpus["float32_tiff"].path) == pytest.approx(gray / gray.max(), abs=1e-6)
    assert read_image(corpus["rgba_png"].path) == pytest.approx(good_image() / 255, abs=1e-6)
    assert read_image(corpus["one_pixel"].path).shape == (1, 1)
    assert read_image(corpus["strip_1x100000"].path).shape == (1, 100000)
    cmyk = read_image(corpus["cmyk_jpeg"].path)
    assert cmyk.shape == (48, 64, 3) and np.abs(cmyk - good_image() / 255).mean() < 0.05


def test_object_npy_is_never_unpickled(corpus):
    os.environ.pop(_PICKLE_SENTINEL, None)
    with pytest.raises(ValueError, match="[Oo]bject"):
        read_image(corpus["object_npy"].path)
    assert _PICKLE_SENTINEL not in os.environ


# --- 3: pixel limit and np.load -------------------------------------------------------------
def test_pillow_bomb_guard_is_on_with_our_limit():
    from PIL import Image

    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS == 100_000_000


def test_pixel_limit_is_configurable():
    code = ("import io, numpy as np; from PIL import Image; from cellseg_core import io as cio; "
            "b = io.BytesIO(); Image.fromarray(np.zeros((30, 40), np.uint8)).save(b, 'PNG'); "
            "print(cio.MAX_PIXELS, Image.MAX_IMAGE_PIXELS)\n"
            "try:\n    cio.read_image(b.getvalue())\nexcept ValueError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "CELLSEG_MAX_PIXELS": "1000"}, timeout=60)
    lines = out.stdout.splitlines()
    assert lines[0] == "1000 1000", out.stderr
    assert "1,200 pixels is more than the limit of 1,000" in lines[1]


def test_bomb_png_is_refused_before_decoding():
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(ValueError, match="CELLSEG_MAX_PIXELS"):
        read_image(bomb_png_bytes())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50e6  # the 1.6 GB it claims was never allocated


def _python_sources():
    for folder in ("cellseg_core", "app_support", "pages", "benchmarks"):
        yield from sorted((REPO / folder).rglob("*.py"))
    yield REPO / "app.py"


def test_np_load_always_refuses_pickles():
    """Every np.load call in the code passes allow_pickle=False explicitly."""
    calls = 0
    for path in _python_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "load" and getattr(node.func.value, "id", "") == "np":
                calls += 1
                kw = {k.arg: k.value for k in node.keywords}
                assert "allow_pickle" in kw and getattr(kw["allow_pickle"], "value", None) is False, \
                    f"{path.name}:{node.lineno} np.load without allow_pickle=False"
    assert calls >= 1


# --- CLI ---------------------------------------------------------------------------------
def _cli(argv):
    from cellseg_core.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv])
    return code, err.getvalue()


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow)
                                  if n == "strip_1x100000" else n for n in _NAMES])
def test_cli(corpus, name, tmp_path):
    from PIL import Image

    case = corpus[name]
    out = tmp_path / "out"
    good = tmp_path / "good.png"
    good.write_bytes(good_png_bytes())
    if case.kind == "image":
        code, err = _cli(["segment", case.path, good, "--out", out, "--preset", "lab02"])
        n_images = 2
    elif case.kind == "mask":
        ds = tmp_path / "ds"
        (ds / "images").mkdir(parents=True)
        (ds / "masks").mkdir()
        for stem in ("a", "b"):
            Image.fromarray(good_image(MASK_SHAPE)).save(ds / "images" / f"{stem}.png")
        (ds / "masks" / "a.png").write_bytes(case.data)
        code, err = _cli(["segment", ds, "--out", out, "--preset", "lab02"])
        n_images = 2
    else:
        code, err = _cli(["segment", good, "--out", out, "--params", case.path])
        n_images = 1
    assert "Traceback" not in err
    if case.ok:
        assert code == 0, err
        images = __import__("pandas").read_csv(out / "images.csv")
        assert list(images["status"]) == ["ok"] * n_images
        assert len(list((out / "labels").iterdir())) == n_images
        return
    assert re.search(case.expect, err, re.I | re.S), err
    if case.kind == "params":
        assert code == 2 and case.path.name in err
        return
    assert code == 1
    shown = case.path.name if case.kind == "image" else "masks/a.png"
    assert re.search(rf"FAILED .*{re.escape(shown[:20])}", err), err
    # The other image was still processed.
    ok_stem = "good" if case.kind == "image" else "b"
    assert (out / "labels" / f"{ok_stem}.tif").is_file()
    images = __import__("pandas").read_csv(out / "images.csv")
    assert (images["status"] == "ok").sum() == 1 and len(images) == 2


# --- app upload ------------------------------------------------------------------------------
def _app_run(at):
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at, label):
    """The Explore page's number `label` as shown (a list: empty when not shown)."""
    from tests._support.apptest import numbers_shown

    shown = numbers_shown(at)
    return [shown[label]] if label in shown else []


def _app_name(case) -> str:
    # A browser sends file names as UTF-8 text: the non-UTF-8 name arrives decoded.
    return os.fsencode(case.path.name).decode("utf-8", "replace")


@pytest.fixture
def apptest():
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from tests._support.apptest import upload_harness

    return AppTest.from_string(upload_harness("explore.py"), default_timeout=60)


@pytest.mark.parametrize("name", [n for n in _NAMES if not n.startswith("params_")])
def test_app_upload(corpus, name, apptest):
    case = corpus[name]
    at = apptest
    if case.kind == "image":
        at.session_state["test.upload"] = (_app_name(case), case.data)
    else:
        buf = io.BytesIO()
        from PIL import Image

        Image.fromarray(good_image(MASK_SHAPE)).save(buf, format="PNG")
        at.session_state["test.upload"] = ("cells.png", buf.getvalue())
        at.session_state["test.upload_mask"] = (case.path.name, case.data)
    _app_run(at)
    errors = [e.value for e in at.error]
    if case.ok:
        assert not errors, errors
        assert _metric(at, "Nuclei"), "the image was not segmented"
        if case.kind == "mask":
            assert _metric(at, "Mean Dice")
    else:
        assert len(errors) == 1, errors
        prefix = "Cannot use this image" if case.kind == "image" else "Cannot use this mask"
        assert errors[0].startswith(prefix)
        shown = re.sub(r"\\(.)", r"\1", errors[0])  # the markdown escapes removed
        assert re.search(case.expect, shown, re.I | re.S), shown
        if case.kind == "mask":
            assert _metric(at, "Nuclei")  # the image is still segmented
    # The app keeps serving: a good image in the same session works.
    at.session_state["test.upload"] = ("next.png", good_png_bytes())
    at.session_state["test.upload_mask"] = None
    _app_run(at)
    assert not at.error
    assert _metric(at, "Nuclei") == ["1"]


_PARAMS_SCRIPT = """
import io
import streamlit as st
from app_support import controls, state

class Upload(io.BytesIO):
    name = "params.json"

state.current_params()
st.session_state["explore.params_upload"] = Upload(st.session_state["data"])
controls._on_params_upload("explore")
if "explore.params_upload_error" in st.session_state:
    st.error(st.session_state["explore.params_upload_error"])
"""


@pytest.mark.parametrize("name", [n for n in _NAMES if n.startswith("params_")])
def test_app_params_upload(corpus, name):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from app_support import state
    from cellseg_core.presets import get_preset

    case = corpus[name]
    at = AppTest.from_string(_PARAMS_SCRIPT, default_timeout=30)
    at.session_state["data"] = case.data
    _app_run(at)
    if case.ok:
        assert not at.error
        assert at.session_state[state.PARAMS] == Params.from_json(case.data)
    else:
        assert len(at.error) == 1
        shown = re.sub(r"\\(.)", r"\1", at.error[0].value)  # the markdown escapes removed
        assert re.search(case.expect, shown, re.I | re.S), shown
        assert at.session_state[state.PARAMS] == get_preset(state.DEFAULT_PRESET)


# --- 5: file names are shown escaped --------------------------------------------------------
def test_html_and_markdown_file_names_are_shown_literally(apptest):
    from app_support.safe_text import md

    evil = "<img src=x onerror=alert(1)>**bold**[link](http://x):red[r]$x$.png"
    at = apptest
    at.session_state["test.upload"] = (evil, good_png_bytes())
    _app_run(at)
    shown = [m.value for m in at.markdown if "onerror" in m.value]
    assert shown and all(md(evil) in s for s in shown), shown
    # Escaped: every markdown/HTML character is preceded by a backslash.
    assert re.sub(r"\\(.)", r"\1", md(evil)) == evil
    assert not re.search(r"(?<!\\)[<>*\[\]$:]", md(evil))
    # A broken file with such a name: the error shows the name escaped as well.
    at.session_state["test.upload"] = (evil, b"not an image")
    _app_run(at)
    assert len(at.error) == 1 and md(evil) in at.error[0].value


#: The one st.html call allowed: the layout style sheet, a file of the project (no user
#: text reaches it), in ``app_support/layout.py``.
_STYLE_SHEET_CALL = 'st.html(f"<style>{read_asset(LAYOUT_CSS)}</style>")'


def test_no_unsafe_allow_html_anywhere():
    """No call passes unsafe_allow_html (nor st.html) anywhere in the app, but the
    layout's own style sheet, which holds CSS only."""
    for path in _python_sources():
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call):
                assert not any(k.arg == "unsafe_allow_html" for k in node.keywords), \
                    f"{path.name}:{node.lineno}"
                if getattr(node.func, "attr", "") == "html":
                    assert (path.name, ast.get_source_segment(text, node)) == \
                        ("layout.py", _STYLE_SHEET_CALL), f"{path.name}:{node.lineno}"
    css = (REPO / "assets" / "layout.css").read_text(encoding="utf-8").lower()
    assert "<" not in css and "javascript:" not in css and "url(" not in css


def test_uploads_are_held_in_memory():
    """The upload path reads bytes from the uploader and never writes a file."""
    text = (REPO / "app_support" / "sources.py").read_text(encoding="utf-8")
    body = text[text.index("def _upload_source"):text.index("def _synthetic_source")]
    assert "getvalue()" in body
    for word in ("open(", "write_bytes", "tempfile", "NamedTemporaryFile", ".save("):
        assert word not in body and word not in text, word


# --- 4: path traversal ----------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["../../etc/passwd", "..", "/etc/passwd", "images/000",
                                 "..\\..\\x", "C:\\x", "000\x00", "", 7, None])
def test_resolve_id_refuses_paths(voced, bad):
    from cellseg_core.data import open_dataset, resolve_id

    ds = open_dataset(voced)
    with pytest.raises(ValueError, match="id"):
        resolve_id(ds, bad)
    assert resolve_id(ds, "000") == "000"


def test_url_with_traversal_id_is_a_warning_and_reads_nothing(voced, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    import builtins
    from app_support import state

    opened = []
    real_open = builtins.open
    real_read = Path.read_bytes

    def spy_open(file, *a, **k):
        opened.append(str(file))
        return real_open(file, *a, **k)

    def spy_read(self):
        opened.append(str(self))
        return real_read(self)

    monkeypatch.setenv("CELLSEG_DATA", str(voced))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.query_params.update({"dataset": "voced", "image": "../../etc/passwd"})
    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(Path, "read_bytes", spy_read)
    _app_run(at)
    monkeypatch.undo()
    warnings = [w.value for w in at.warning]
    assert any("not found" in w and "passwd" in w for w in warnings), warnings
    assert not [f for f in opened if "passwd" in f]
    assert at.session_state[state.SOURCE_ID] != "../../etc/passwd"
    # An absolute path and an unknown dataset root are refused the same way.
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.query_params.update({"dataset": "/etc", "image": "/etc/passwd"})
    _app_run(at)
    assert any("not found" in w.value for w in at.warning)
    assert at.session_state[state.SOURCE_DATASET] in ("demo-cytology", "voced")


def test_dataset_picker_offers_only_configured_roots(voced, tmp_path, monkeypatch):
    from cellseg_core.data import available_datasets

    monkeypatch.setenv("CELLSEG_DATA", str(voced))
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)
    names = available_datasets()
    assert sorted(names) == ["demo-cytology", "demo-fluorescence", "voced"]
    # No free-text path widget in the sidebar.
    text = (REPO / "app_support" / "sources.py").read_text(encoding="utf-8")
    assert "text_input" not in text


# --- 6: caches are bounded --------------------------------------------------------------------
def _cache_decorators():
    for path in [*_python_sources()]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for dec in node.decorator_list:
                    target = dec.func if isinstance(dec, ast.Call) else dec
                    if isinstance(target, ast.Attribute) and \
                            target.attr in ("cache_data", "cache_resource"):
                        yield path.name, node.name, dec


def test_every_streamlit_cache_is_bounded():
    found = list(_cache_decorators())
    assert len(found) >= 10
    for file, func, dec in found:
        keywords = {k.arg for k in getattr(dec, "keywords", [])}
        assert keywords & {"max_entries", "ttl"}, f"{file}:{func} has an unbounded cache"


def _cache_len(func) -> int:
    """Entries held by a Streamlit cached function (global scope), via its memory cache."""
    from streamlit.runtime.caching import cache_data_api, cache_resource_api

    for manager in (cache_data_api._data_caches, cache_resource_api._resource_caches):
        store = manager._function_caches.get(None, {}).get(func._function_key)
        if store is not None:
            return len(store._mem_cache if hasattr(store, "_mem_cache")
                       else store.storage._mem_cache)
    raise KeyError(f"no cache for {func._info.func.__name__}")


def test_cache_size_stays_at_max_entries():
    """40 distinct images through the app's caches: each keeps at most max_entries."""
    pytest.importorskip("streamlit")
    from app_support import cache, sources

    image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    png = good_png_bytes()
    for i in range(40):
        cache.image_uri(f"bound{i}", image, 1)
        cache.segmentation(f"bound{i}", image, Params())
        cache.histograms(f"bound{i}", image, Params())
        sources._read_upload(f"bound{i}", png, f"x{i}.png")
    assert _cache_len(cache._image_uri) == 16
    assert _cache_len(cache._segmentation) == 16
    assert _cache_len(cache._preprocessed) == 8
    assert _cache_len(cache._histograms) == 16
    assert _cache_len(sources._read_upload) == 8


# --- 7: Dockerfile -------------------------------------------------------------------------
def _dockerfile_instructions() -> list[str]:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n\s*", " ", text)  # line continuations
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_dockerfile_has_the_required_instructions():
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    lines = _dockerfile_instructions()
    instr = [line.split()[0].upper() for line in lines]
    assert lines[0].startswith("FROM python:3.11-slim")
    assert "USER" in instr and not any(line == "USER root" for line in lines[instr.index("USER"):])
    assert any(re.match(r"RUN .*pip install .*-r requirements.txt", line) for line in lines)
    assert "EXPOSE 8501" in lines
    health = next(line for line in lines if line.startswith("HEALTHCHECK"))
    assert "http://localhost:8501/_stcore/health" in text and "urllib" in text and "curl" not in health
    cmd = next(line for line in lines if line.startswith("CMD"))
    for part in ("streamlit", "app.py", "--server.address=0.0.0.0", "--server.port=8501",
                 "--server.headless=true"):
        assert part in cmd
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", "tests", "**/__pycache__"} <= set(ignore)


@pytest.mark.slow
def test_dockerfile_rehearsal_serves_the_app_from_only_what_it_copies(tmp_path):
    """No Docker engine runs here (nor in CI), so rehearse the image: copy only what
    the Dockerfile's COPY lines name (minus .dockerignore), start its CMD with its
    ENV from that folder, pass its HEALTHCHECK command, and open the app through a
    websocket client: no exception, the Explore page on the demo data. What this
    cannot check: the base image and ``pip install`` inside it."""
    import asyncio
    import fnmatch
    import json
    import shlex
    import shutil
    import time

    from _common import free_port
    from ws_client import StreamlitClient

    lines = _dockerfile_instructions()
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").split()

    def ignored(_dir, names):
        return [n for n in names if any(fnmatch.fnmatch(n, p.removeprefix("**/"))
                                        for p in ignore)]

    app = tmp_path / "app"
    app.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLSEG_")}
    for line in lines:
        word, _, rest = line.partition(" ")
        if word == "ENV":
            env.update(part.split("=", 1) for part in shlex.split(rest))
        elif word == "COPY":
            parts = [p for p in rest.split() if not p.startswith("--")]
            dest = app / parts[-1]
            for source in parts[:-1]:
                src = REPO / source
                target = dest / src.name if parts[-1].endswith("/") else dest
                if src.is_dir():
                    shutil.copytree(src, target, ignore=ignored)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, target)
    assert (app / "app.py").is_file() and (app / "pages").is_dir()

    port = free_port()
    cmd = json.loads(next(line for line in lines if line.startswith("CMD"))[3:])
    assert cmd[0] == "streamlit"
    cmd = [sys.executable, "-m", *[c.replace("8501", str(port)) for c in cmd]]
    cmd = [c.replace("0.0.0.0", "127.0.0.1") for c in cmd]  # no outside listener in a test
    health = shlex.split(next(line for line in lines if line.startswith("HEALTHCHECK"))
                         .split(" CMD ", 1)[1].replace("8501", str(port)))
    assert health[0] == "python"
    health[0] = sys.executable
    proc = subprocess.Popen(cmd, cwd=app, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while subprocess.run(health, capture_output=True).returncode != 0:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            assert time.monotonic() < deadline, "the HEALTHCHECK command never passed"
            time.sleep(0.5)

        async def open_app():
            async with StreamlitClient(f"http://127.0.0.1:{port}", timeout=60) as client:
                return await client.open("")

        run = asyncio.run(open_app())
        assert not run.exceptions and not run.errors
        headings = [el.heading.body for el in run.elements.values()
                    if el.WhichOneof("type") == "heading"]
        assert "Explore" in headings, headings
        assert "Mean Dice" in run.metrics  # the demo image and its mask, segmented
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- 9: a 4096² upload is shown downsampled and segmented at full size -------------------
@pytest.mark.slow
def test_4096_upload_is_downsampled_for_display_and_segmented_in_full(apptest):
    from PIL import Image

    image = np.full((4096, 4096), 255, np.uint8)
    image[2001:2008, 3001:3008] = 0  # a 49-pixel nucleus: a 4x stride would see 4 pixels
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    at = apptest
    at.session_state["test.upload"] = ("big.png", buf.getvalue())
    at.default_timeout = 180
    _app_run(at)
    assert any("4096×4096 px image: shown at 1/4 scale" in i.value for i in at.info)
    assert _metric(at, "Nucleus (px)") == ["49"]
    assert not at.error
