"""Model files never run code (issue 21, point 0).

Hostile payloads are built here from pickle opcodes (PROTO 4, SHORT_BINUNICODE,
STACK_GLOBAL or GLOBAL, arguments, REDUCE) and wrapped in a *valid* container (magic,
JSON header, correct SHA-256), so the only defence left is the loader. Each is refused by
the library (``load_model``), the command line (``cellseg segment --model``) and the app
(Explore's model uploader), even with the trust switch on and the admin allowing it, and
the file it would create or truncate is never touched. A legit model round-trips in the
current (skops) format; an old pickled file is refused unless trusted and allowed.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from cellseg_core.cli import main
from cellseg_core.learn import (FORMAT_VERSION, PICKLE_ENV, FeatureSettings, PixelClassifier,
                                load_model)
from cellseg_core.learn import modelfile
from cellseg_core.params import CleanupParams, Params
from tests._support.toys import toy_set as _toy  # the synthetic toy set of the golden files

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
GOLDEN_V2 = DATA / "model_v2_pickle.cellseg-model"
GOLDEN_V2_EXPECTED = DATA / "model_v2_pickle_expected.npz"
GOLDEN_V3 = DATA / "model_v3.cellseg-model"
MAGIC = b"CELLSEG-MODEL\n"


# --- building payloads from opcodes -------------------------------------------------------

def _ops(value) -> bytes:
    """Pickle opcodes that push `value` (str, int, bool, None, list, tuple)."""
    if value is None:
        return b"N"
    if isinstance(value, bool):
        return b"\x88" if value else b"\x89"
    if isinstance(value, int):
        return b"J" + struct.pack("<i", value)  # BININT
    if isinstance(value, str):
        raw = value.encode()
        assert len(raw) < 256
        return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE
    if isinstance(value, list):
        return b"](" + b"".join(map(_ops, value)) + b"e"  # EMPTY_LIST MARK ... APPENDS
    if isinstance(value, tuple):
        return b"(" + b"".join(map(_ops, value)) + b"t"  # MARK ... TUPLE
    raise TypeError(value)


def _global(module: str, name: str, opcode: str = "STACK_GLOBAL") -> bytes:
    if opcode == "GLOBAL":
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    return _ops(module) + _ops(name) + b"\x93"  # STACK_GLOBAL


def _call(module: str, name: str, args: tuple, opcode: str = "STACK_GLOBAL") -> bytes:
    """A whole pickle: ``module.name(*args)`` on load (PROTO 4 ... REDUCE STOP)."""
    return b"\x80\x04" + _global(module, name, opcode) + _ops(args) + b"R."


def _container(kind: str, payload: bytes, version: int, **fields) -> bytes:
    """A well-formed model file around `payload` (the checksum matches)."""
    import sklearn

    header = {"format": "cellseg-model", "format_version": version, "kind": kind,
              "sklearn_version": sklearn.__version__, "numpy_version": np.__version__,
              "cellseg_version": "0.1.0",
              "payload_sha256": hashlib.sha256(payload).hexdigest(),
              "payload_bytes": len(payload),
              "settings": FeatureSettings().to_dict(),
              "config": {"estimator": "boosting", "n_estimators": 5},
              "cleanup": Params().to_dict()["cleanup"], **fields}
    head = json.dumps(header).encode()
    return MAGIC + len(head).to_bytes(8, "little") + head + payload


def _ensemble(member: bytes) -> bytes:
    return _container("ProbabilityEnsemble", member, FORMAT_VERSION,
                      members=[{"kind": "PixelClassifier", "bytes": len(member)}],
                      weights=[1.0])


def _skops_with_schema(schema: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return buf.getvalue()


def _payloads(tmp: Path) -> dict:
    """name -> (model file bytes, paths that must not exist afterwards)."""
    marker = tmp / "MARKER"
    touch = ["sh", "-c", f"touch {marker}"]
    victim = tmp / "victim.bin"  # exists, with content: must stay as it is
    fresh = tmp / "fresh.bin"  # must never be created
    pickles = {
        # The two payloads of the issue: a dotted module under numpy reaches Popen ...
        "extbuild-popen": _call("numpy.testing._private.extbuild", "subprocess.Popen",
                                (touch,)),
        # ... and numpy.memmap(path, "w+") creates or truncates any file.
        "memmap-truncate": _call("numpy._core.memmap", "memmap",
                                 (str(victim), "uint8", "w+", 0, (4,))),
        "memmap-create": _call("numpy._core.memmap", "memmap",
                               (str(fresh), "uint8", "w+", 0, (4,))),
        "memmap-old-path": _call("numpy.core.memmap", "memmap",
                                 (str(fresh), "uint8", "w+", 0, (4,))),
        "memmap-top-level": _call("numpy", "memmap", (str(fresh), "uint8", "w+", 0, (4,))),
        # Attribute chains from allowed names and modules.
        "multiarray-chain": _call("numpy._core.multiarray", "_reconstruct.__globals__.get",
                                  ("__builtins__",)),
        "numeric-os-system": _call("numpy._core.numeric", "os.system", (f"touch {marker}",)),
        "npyio-os-system": _call("numpy.lib.npyio", "os.system", (f"touch {marker}",)),
        "npyio-impl-load": _call("numpy.lib._npyio_impl", "load", (str(victim),)),
        "ctypeslib-cdll": _call("numpy.ctypeslib", "ctypes.CDLL", ("libc.so.6",)),
        "sklearn-function": _call("sklearn.utils._testing", "os.system", (f"touch {marker}",)),
        "sklearn-pyx-prefix": _call("sklearn.tree._tree",
                                    "__pyx_unpickle_Tree.__globals__.get", ("os",)),
        "builtins-eval": _call("builtins", "eval", (f"__import__('os').system('touch {marker}')",)),
        "builtins-getattr": _call("builtins", "getattr", ("x", "upper")),
        "os-system": _call("os", "system", (f"touch {marker}",)),
        "posix-system": _call("posix", "system", (f"touch {marker}",)),
        "subprocess-popen": _call("subprocess", "Popen", (touch,)),
        # GLOBAL (protocol 0-3 opcode) instead of STACK_GLOBAL.
        "global-opcode-popen": _call("numpy.testing._private.extbuild", "subprocess.Popen",
                                     (touch,), opcode="GLOBAL"),
        "global-opcode-system": _call("os", "system", (f"touch {marker}",), opcode="GLOBAL"),
        # An allowed callable around a forbidden one.
        "reconstructor-popen": (b"\x80\x04" + _global("copyreg", "_reconstructor")
                                + b"(" + _global("subprocess", "Popen")
                                + _global("builtins", "object") + b"N" + b"tR."),
    }
    files = {}
    for name, raw in pickles.items():
        # Old format (pickle): refused without trust, and with trust the allow-list.
        files[f"{name}/v2"] = _container("PixelClassifier", raw, 2)
        # Current format: never unpickled at all.
        files[f"{name}/v3"] = _container("PixelClassifier", raw, FORMAT_VERSION)
    files["extbuild-popen/ensemble-member"] = _ensemble(files["extbuild-popen/v2"])
    files["memmap-truncate/ensemble-member"] = _ensemble(files["memmap-truncate/v2"])
    # skops archives that name types a cellseg model never holds.
    files["skops-function"] = _container("PixelClassifier", sio.dumps(os.system),
                                         FORMAT_VERSION)
    files["skops-eval-node"] = _container("PixelClassifier", _skops_with_schema(
        {"__class__": "eval", "__module__": "builtins", "__loader__": "FunctionNode",
         "content": {"module_path": "builtins", "function": "eval"}, "protocol": 2,
         "_skops_version": "0.16.0"}), FORMAT_VERSION)
    from sklearn.linear_model import LogisticRegression  # skops trusts it; we do not

    files["skops-other-estimator"] = _container(
        "PixelClassifier", sio.dumps(LogisticRegression()), FORMAT_VERSION)
    files["skops-not-a-zip"] = _container("PixelClassifier", b"PK\x03\x04garbage",
                                          FORMAT_VERSION)
    return files, {"marker": marker, "victim": victim, "fresh": fresh}


VICTIM_CONTENT = b"precious data, do not truncate\n"


@pytest.fixture
def payloads(tmp_path):
    files, paths = _payloads(tmp_path)
    paths["victim"].write_bytes(VICTIM_CONTENT)
    return files, paths


def _untouched(paths, wait: bool = True) -> None:
    if wait:
        time.sleep(0.3)  # a Popen that ran would have touched the marker by now
    assert not paths["marker"].exists(), "a payload ran a shell command"
    assert not paths["fresh"].exists(), "a payload created a file"
    assert paths["victim"].read_bytes() == VICTIM_CONTENT, "a payload truncated a file"


@pytest.fixture
def allow_pickle(monkeypatch):
    monkeypatch.setenv(PICKLE_ENV, "1")


@pytest.fixture
def forbid_pickle(monkeypatch):
    monkeypatch.delenv(PICKLE_ENV, raising=False)


# --- the library --------------------------------------------------------------------------

def test_every_payload_is_refused_by_load_model(payloads, monkeypatch):
    files, paths = payloads
    assert len(files) > 40
    for name, data in files.items():
        monkeypatch.delenv(PICKLE_ENV, raising=False)
        with pytest.raises(ValueError) as err:
            load_model(data)
        if name.endswith("/v2"):
            assert "old pickle format" in str(err.value), name
        # Trusted, and the admin allows it: the exact allow-list still refuses.
        monkeypatch.setenv(PICKLE_ENV, "1")
        with pytest.raises(ValueError, match="model data") as err:
            load_model(data, trust_pickle=True)
        if name.endswith("/v2"):
            assert "never holds" in str(err.value), (name, str(err.value))
        _untouched(paths, wait=False)
    _untouched(paths)


def test_the_issues_payloads_name_what_they_reach(payloads, allow_pickle):
    files, paths = payloads
    with pytest.raises(ValueError, match="numpy.testing._private.extbuild.subprocess.Popen"):
        load_model(files["extbuild-popen/v2"], trust_pickle=True)
    with pytest.raises(ValueError, match=r"numpy._core.memmap.memmap"):
        load_model(files["memmap-truncate/v2"], trust_pickle=True)
    with pytest.raises(ValueError, match="member 1.*old pickle format"):
        load_model(files["extbuild-popen/ensemble-member"])
    with pytest.raises(ValueError, match="posix.system"):
        load_model(files["skops-function"])
    with pytest.raises(ValueError, match="builtins.eval.*FunctionNode"):
        load_model(files["skops-eval-node"])
    with pytest.raises(ValueError, match="LogisticRegression.*never holds"):
        load_model(files["skops-other-estimator"])
    _untouched(paths)


def test_the_payloads_are_real(payloads, tmp_path):
    """The payloads are live: a plain unpickler runs them (in a child process), so the
    refusals above are the loader's doing."""
    files, paths = payloads
    code = ("import pickle, sys; d = open(sys.argv[1], 'rb').read(); "
            "n = int.from_bytes(d[14:22], 'little'); pickle.loads(d[22 + n:])")
    for name in ("extbuild-popen/v2", "memmap-truncate/v2"):
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(files[name])
        subprocess.run([sys.executable, "-c", code, str(path)], check=False, timeout=60,
                       capture_output=True)
    deadline = time.time() + 10
    while not paths["marker"].exists() and time.time() < deadline:
        time.sleep(0.1)
    assert paths["marker"].exists()
    assert paths["victim"].read_bytes() == b"\0" * 4


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_unet_kind_with_a_pickle_payload_is_refused(tmp_path, allow_pickle):
    pytest.importorskip("torch")
    marker = tmp_path / "MARKER"
    raw = _call("os", "system", (f"touch {marker}",))
    for version in (1, 2, FORMAT_VERSION):
        data = _container("UNetModel", raw, version, mean=[0, 0, 0], std=[1, 1, 1])
        with pytest.raises(ValueError, match="corrupted U-Net model file"):
            load_model(data, trust_pickle=True)
    time.sleep(0.2)
    assert not marker.exists()


# --- the command line ---------------------------------------------------------------------

def _image_file(tmp_path) -> Path:
    from PIL import Image

    path = tmp_path / "cell.png"
    Image.fromarray(np.full((24, 24, 3), 200, np.uint8)).save(path)
    return path


def test_every_payload_is_refused_by_the_cli(payloads, tmp_path, capsys, monkeypatch):
    files, paths = payloads
    img = _image_file(tmp_path)
    for k, (name, data) in enumerate(files.items()):
        model = tmp_path / f"m{k}.cellseg-model"
        model.write_bytes(data)
        out = tmp_path / f"out{k}"
        for trusted in (False, True):
            if trusted:
                monkeypatch.setenv(PICKLE_ENV, "1")
            else:
                monkeypatch.delenv(PICKLE_ENV, raising=False)
            argv = ["segment", str(img), "--model", str(model), "--out", str(out)]
            code = main(argv + (["--trust-pickle"] if trusted else []))
            err = capsys.readouterr().err
            assert code == 2, (name, err)
            assert f"cellseg segment: error: {model}" in err, (name, err)
            assert "Traceback" not in err
            assert not (out / "labels").exists()
        _untouched(paths, wait=False)
    _untouched(paths)


def test_cli_in_a_fresh_process_refuses_the_popen_payload(payloads, tmp_path):
    files, paths = payloads
    model = tmp_path / "evil.cellseg-model"
    model.write_bytes(files["extbuild-popen/v2"])
    env = {**os.environ, PICKLE_ENV: "1", "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", "import sys; from cellseg_core.cli import main; "
                          "sys.exit(main(sys.argv[1:]))", "segment",
                          str(_image_file(tmp_path)), "--model", str(model), "--out",
                          str(tmp_path / "out"), "--trust-pickle"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "never holds" in run.stderr and "Traceback" not in run.stderr
    _untouched(paths)


# --- the app ------------------------------------------------------------------------------

def _explore_app():
    from streamlit.testing.v1 import AppTest

    script = f"""
import runpy
from app_support import sources
sources.shared_sidebar()
runpy.run_path({str(REPO / "pages" / "explore.py")!r}, run_name="__main__")
"""
    at = AppTest.from_string(script, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _upload(at, name: str, data: bytes):
    at.file_uploader(key="explore.model_file").set_value((name, data,
                                                          "application/octet-stream"))
    at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _trust_box(at):
    return [c for c in at.checkbox if c.key == "explore.trust_pickle"]


@pytest.mark.slow
def test_every_payload_is_refused_by_the_app_even_when_trusted(payloads, monkeypatch):
    pytest.importorskip("streamlit")
    from app_support import runs

    monkeypatch.delenv("CELLSEG_DATA", raising=False)
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)
    monkeypatch.setenv(PICKLE_ENV, "1")  # the worst case: the admin allows trust ...
    files, paths = payloads
    at = _explore_app()
    _trust_box(at)[0].check()  # ... and the user ticks the box
    for k, (name, data) in enumerate(files.items()):
        at = _upload(at, f"m{k}.cellseg-model", data)
        assert at.error and f"m{k}.cellseg-model is not a usable model file" in \
            re.sub(r"\\(.)", r"\1", at.error[0].value), name  # shown escaped: unescape
        assert not at.session_state[runs.LEARNED_MODELS] if runs.LEARNED_MODELS in \
            at.session_state else True
        _untouched(paths, wait=False)
    _untouched(paths)


def test_the_app_shows_the_trust_box_only_when_the_admin_allows(monkeypatch, forbid_pickle):
    pytest.importorskip("streamlit")
    monkeypatch.delenv("CELLSEG_DATA", raising=False)
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)
    at = _explore_app()
    assert not _trust_box(at)
    at = _upload(at, "old.cellseg-model", GOLDEN_V2.read_bytes())
    assert "old pickle format" in at.error[0].value
    assert at.session_state["explore.model"] != "file:old"
    # The admin allows it: the box appears; ticked, the old file loads.
    monkeypatch.setenv(PICKLE_ENV, "1")
    at = at.run()
    assert _trust_box(at) and not _trust_box(at)[0].value
    _trust_box(at)[0].check()
    at = at.run()
    assert not at.exception and not at.error
    assert at.session_state["explore.model"] == "file:old"


# --- legit files --------------------------------------------------------------------------

@pytest.mark.parametrize("estimator, auto_context", [
    ("boosting", False), ("boosting", True), ("forest", False), ("forest", True),
    ("extra-trees", False), ("extra-trees", True)])
@pytest.mark.slow
def test_legit_models_round_trip_without_pickle(estimator, auto_context, tmp_path, monkeypatch):
    images, masks = _toy(3, 40)
    model = PixelClassifier(FeatureSettings(scale=1, sigma_max=2), estimator=estimator,
                            n_estimators=4, auto_context=auto_context, context_sigma_max=2,
                            cleanup=CleanupParams()).fit(images, masks, rng=1)
    path = model.save(tmp_path / "m.cellseg-model")
    data = path.read_bytes()
    header = json.loads(data[22:22 + int.from_bytes(data[14:22], "little")])
    assert header["format_version"] == FORMAT_VERSION == 3
    assert header["payload_format"] == "skops"
    monkeypatch.setattr(pickle, "loads", None)  # not a single pickle is read
    monkeypatch.setattr(pickle, "Unpickler", None)
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.settings == model.settings
    test = _toy(1, 40, seed=9)[0][0]
    np.testing.assert_array_equal(loaded.predict_proba(test), model.predict_proba(test))
    np.testing.assert_array_equal(loaded.segment(test).labels, model.segment(test).labels)


def test_zip_bomb_payload_is_refused_unread(monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", b" " * (64 << 20))  # 64 MB from about 64 KB
    data = _container("PixelClassifier", buf.getvalue(), FORMAT_VERSION)
    monkeypatch.setattr(zipfile.ZipFile, "read", None)  # nothing is unpacked
    with pytest.raises(ValueError, match="zip bomb"):
        load_model(data)


@pytest.mark.parametrize("version", [1, 2])
def test_old_pickled_file_needs_trust_and_the_admin(version, tmp_path, monkeypatch):
    """An old-format file (written here as formats 1 and 2 wrote them: the pickled
    estimator) is refused without trust, refused with trust while the admin forbids it,
    and loads, predicting the same, with trust when allowed."""
    images, masks = _toy(3, 40)
    model = PixelClassifier(FeatureSettings(scale=1, sigma_max=2), n_estimators=4,
                            cleanup=CleanupParams()).fit(images, masks, rng=1)
    header = {"settings": model.settings.to_dict(), "config": model.config,
              "cleanup": Params(cleanup=model.cleanup).to_dict()["cleanup"]}
    old = _container("PixelClassifier", pickle.dumps(model.model_, protocol=5), version,
                     **header)
    monkeypatch.delenv(PICKLE_ENV, raising=False)
    with pytest.raises(ValueError, match="old pickle format.*re-save it.*--trust-pickle"):
        load_model(old)
    with pytest.raises(ValueError, match=f"admin turned off.*{PICKLE_ENV}"):
        load_model(old, trust_pickle=True)
    monkeypatch.setenv(PICKLE_ENV, "1")
    with pytest.raises(ValueError, match="old pickle format"):
        load_model(old)  # allowed by the admin, but not trusted by the caller
    loaded = load_model(old, trust_pickle=True)
    np.testing.assert_array_equal(loaded.predict_proba(images[0]), model.predict_proba(images[0]))
    # Saving converts it to the current format, which needs no trust.
    monkeypatch.delenv(PICKLE_ENV)
    again = load_model(loaded.save(tmp_path / "converted.cellseg-model"))
    np.testing.assert_array_equal(again.predict_proba(images[0]), model.predict_proba(images[0]))


def test_golden_v2_file_written_before_the_switch(monkeypatch, tmp_path):
    expected = np.load(GOLDEN_V2_EXPECTED, allow_pickle=False)
    monkeypatch.delenv(PICKLE_ENV, raising=False)
    with pytest.raises(ValueError, match="format version 2"):
        load_model(GOLDEN_V2)
    monkeypatch.setenv(PICKLE_ENV, "1")
    model = load_model(GOLDEN_V2, trust_pickle=True)
    np.testing.assert_array_equal(model.predict_proba(expected["image"]), expected["proba"])
    np.testing.assert_array_equal(model.segment(expected["image"]).labels, expected["labels"])
    # The CLI with --trust-pickle reads it too.
    out = tmp_path / "out"
    img = _image_file(tmp_path)
    assert main(["segment", str(img), "--model", str(GOLDEN_V2), "--out", str(out),
                 "--trust-pickle"]) == 0
    assert (out / "labels" / "cell.tif").is_file()


def test_golden_v3_file_predicts_as_written(forbid_pickle, monkeypatch):
    """tests/data/model_v3.cellseg-model: the golden v2 model re-saved in format 3 (a
    file that later refactors must keep reading unchanged)."""
    monkeypatch.setattr(pickle, "Unpickler", None)
    expected = np.load(GOLDEN_V2_EXPECTED, allow_pickle=False)
    data = GOLDEN_V3.read_bytes()
    header = json.loads(data[22:22 + int.from_bytes(data[14:22], "little")])
    assert header["format_version"] == 3 and header["payload_format"] == "skops"
    model = load_model(GOLDEN_V3)
    np.testing.assert_array_equal(model.predict_proba(expected["image"]), expected["proba"])
    np.testing.assert_array_equal(model.segment(expected["image"]).labels, expected["labels"])


def test_the_pickle_allow_list_is_exact():
    # No module prefixes, no dotted names, no "any class under sklearn".
    for module, name in modelfile._PICKLE_GLOBALS:
        assert "." not in name and not name.endswith("*")
    assert ("numpy.testing._private.extbuild", "subprocess.Popen") not in modelfile._PICKLE_GLOBALS
    unpickler = modelfile._RestrictedUnpickler(io.BytesIO(b""))
    for module, name in [("numpy._core.memmap", "memmap"), ("sklearn.utils", "Bunch"),
                         ("numpy", "ndarray.__new__")]:
        with pytest.raises(pickle.UnpicklingError, match="never holds"):
            unpickler.find_class(module, name)
