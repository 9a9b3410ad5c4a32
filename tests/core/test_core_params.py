"""The parameter model: validation naming the field, dotted names, JSON, golden file."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cellseg_core.params import (SCHEMA_VERSION, BackgroundMethod, BlurKind, BlurParams, Channel,
                                 CleanupParams, Mode, Params, ThresholdMethod, ThresholdParams,
                                 WatershedParams)
from cellseg_core.presets import DESCRIPTIONS, PRESETS, get_preset, preset_names

DATA = Path(__file__).resolve().parents[1] / "data"


# --- range checks: each names its field -------------------------------------------------
@pytest.mark.parametrize("name, value", [
    ("blur.sigma", -0.1),
    ("blur.sigma", float("nan")),
    ("blur.sigma", float("inf")),
    ("blur.size", 0),
    ("blur.size", 102),
    ("threshold.t_nuc", -0.01),
    ("threshold.t_nuc", float("nan")),
    ("threshold.t_bg", 1.01),
    ("threshold.t_object", float("nan")),
    ("threshold.block_size", 50),
    ("threshold.block_size", 1),
    ("threshold.offset", float("inf")),
    ("cleanup.opening_radius", -1),
    ("cleanup.opening_radius", 51),
    ("cleanup.closing_radius", -1),
    ("cleanup.min_nucleus_size", -1),
    ("cleanup.min_cytoplasm_size", -5),
    ("watershed.min_distance", 0),
    ("watershed.footprint", 0),
])
def test_range_checks_name_the_field(name, value):
    with pytest.raises(ValueError, match=f"`{name}`"):
        Params().with_values({name: value})


@pytest.mark.parametrize("t_nuc, t_bg", [(0.5, 0.5), (0.6, 0.4), (1.0, 0.0)])
def test_t_nuc_must_be_below_t_bg(t_nuc, t_bg):
    with pytest.raises(ValueError, match=r"`threshold.t_nuc` must be < t_bg"):
        Params().with_values({"threshold.t_nuc": t_nuc, "threshold.t_bg": t_bg})
    with pytest.raises(ValueError, match="t_nuc"):
        ThresholdParams(t_nuc=t_nuc, t_bg=t_bg)


def test_edges_of_ranges_are_accepted():
    p = Params().with_values({"threshold.t_nuc": 0.0, "threshold.t_bg": 1.0, "blur.sigma": 0.0,
                              "blur.size": 101, "cleanup.closing_radius": 50,
                              "threshold.block_size": 3})
    assert p.threshold.t_nuc == 0.0 and p.threshold.t_bg == 1.0 and p.blur.size == 101


# --- types, unknown keys, schema version ------------------------------------------------
@pytest.mark.parametrize("data, match", [
    ({"blur": {"sigma": "2"}}, "`blur.sigma` must be a number"),
    ({"blur": {"sigma": True}}, "`blur.sigma` must be a number"),
    ({"blur": {"size": 3.5}}, "`blur.size` must be an integer"),
    ({"blur": {"size": "3"}}, "`blur.size` must be an integer"),
    ({"blur": {"size": True}}, "`blur.size` must be an integer"),
    ({"blur": {"size": float("inf")}}, "`blur.size`"),
    ({"blur": {"size": float("nan")}}, "`blur.size`"),
    ({"cleanup": {"fill_holes": 1}}, "`cleanup.fill_holes` must be true or false"),
    ({"cleanup": {"fill_holes": "yes"}}, "`cleanup.fill_holes` must be true or false"),
    ({"mode": "brightfield"}, r"`mode` must be one of \['cytology', 'fluorescence'\]"),
    ({"channel": "purple"}, "`channel` must be one of"),
    ({"blur": {"kind": "bilateral"}}, "`blur.kind` must be one of"),
    ({"threshold": {"method": "magic"}}, "`threshold.method` must be one of"),
    ({"threshold": {"background": "dark"}}, "`threshold.background` must be one of"),
    ({"blur": 3}, "`blur` must be an object"),
    ({"colour": "red"}, "unknown parameter 'colour'"),
    ({"blur": {"radius": 2}}, "unknown parameter 'blur.radius'"),
    ({"schema_version": SCHEMA_VERSION + 1}, "newer than this version"),
    ({"schema_version": 0}, "`schema_version` must be a positive integer"),
    ({"schema_version": "1"}, "`schema_version` must be a positive integer"),
    ({"schema_version": True}, "`schema_version` must be a positive integer"),
])
def test_from_dict_rejects(data, match):
    with pytest.raises(ValueError, match=match):
        Params.from_dict(data)


@pytest.mark.parametrize("text, match", [
    ("", "not valid JSON"),
    ("{", "not valid JSON"),
    (b"\xff\xfe\x00", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"blur": {"size": Infinity}}', "`blur.size`"),
])
def test_from_json_rejects(text, match):
    with pytest.raises(ValueError, match=match):
        Params.from_json(text)


def test_unknown_dotted_names():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['threshold.tnuc'\]"):
        Params().with_values({"threshold.tnuc": 0.3})
    with pytest.raises(ValueError, match="unknown parameter 'nope'"):
        Params().get("nope")


def test_integral_float_accepted_for_int_fields():
    p = Params.from_dict({"blur": {"size": 5.0}})
    assert p.blur.size == 5 and type(p.blur.size) is int
    assert type(Params.from_dict({"threshold": {"t_nuc": 0}}).threshold.t_nuc) is float


# --- dotted view, round trips, hashing ----------------------------------------------------
def test_flat_get_with_values():
    p = Params()
    flat = p.flat()
    assert flat["threshold.t_nuc"] == 0.45 and flat["mode"] == "cytology"
    assert flat["blur.kind"] == "none"  # enums flatten to their JSON value
    # schema 3: threshold + percentile, cleanup + scheme and connectivity
    assert len(flat) == 2 + 3 + 8 + 7 + 3 + 2
    assert p.get("cleanup.fill_holes") is False
    q = p.with_values({"threshold.t_nuc": 0.4, "blur.kind": "gaussian", "mode": "fluorescence"})
    assert q.threshold.t_nuc == 0.4 and q.blur.kind is BlurKind.GAUSSIAN
    assert q.mode is Mode.FLUORESCENCE
    assert p.threshold.t_nuc == 0.45            # p unchanged (frozen)
    assert Params.from_flat(q.flat()) == q


def test_params_are_frozen_and_hashable():
    p = Params()
    with pytest.raises(AttributeError):
        p.mode = Mode.FLUORESCENCE
    same = Params().with_values({})
    assert p == same and hash(p) == hash(same)
    assert len({p, same, p.with_values({"threshold.t_nuc": 0.3})}) == 2


@pytest.mark.parametrize("name", ["lab01", "lab02", "lab03v2", "auto-cytology",
                                  "auto-fluorescence", "auto-nuclei"])
def test_json_round_trip_of_every_preset(name):
    p = get_preset(name)
    text = p.to_json()
    assert json.loads(text)["schema_version"] == SCHEMA_VERSION
    back = Params.from_json(text)
    assert back == p and hash(back) == hash(p)
    assert Params.from_json(p.to_json(indent=None).encode()) == p
    assert Params.from_dict(p.to_dict()) == p


def test_partial_dict_takes_defaults():
    p = Params.from_dict({"threshold": {"t_nuc": 0.3}})
    assert p == Params().with_values({"threshold.t_nuc": 0.3})
    assert Params.from_dict({}) == Params()


def test_golden_params_v1_file_keeps_loading():
    """A schema_version 1 file saved by cellseg 0.1: must load to the same Params forever."""
    text = (DATA / "params_v1.json").read_text()
    assert json.loads(text)["schema_version"] == 1
    p = Params.from_json(text)
    expected = Params(
        mode=Mode.CYTOLOGY,
        channel=Channel.HEMATOXYLIN,
        blur=BlurParams(kind=BlurKind.MEDIAN, sigma=1.0, size=5),
        threshold=ThresholdParams(method=ThresholdMethod.MANUAL,
                                  background=BackgroundMethod.SAME, t_nuc=0.3904, t_bg=0.99,
                                  t_object=0.5, block_size=51, offset=0.0),
        cleanup=CleanupParams(opening_radius=1, closing_radius=0, min_nucleus_size=200,
                              min_cytoplasm_size=200, fill_holes=True),
        watershed=WatershedParams(enabled=True, min_distance=7, footprint=3),
    )
    assert p == expected
    # Saved as lab03v2 in 0.1, whose clean-up was the nested one: since issue 20 `lab03v2`
    # is the course's exact code (scheme "course") and the nested variant is lab03v2-plus.
    assert p.cleanup.scheme == "nested" and p.cleanup.connectivity == 4
    assert p == get_preset("lab03v2-plus").with_values({
        "channel": "hematoxylin", "blur.kind": "median", "blur.size": 5,
        "cleanup.opening_radius": 1, "watershed.enabled": True, "watershed.min_distance": 7})


# --- presets ------------------------------------------------------------------------------
def test_preset_names_are_a_contract():
    for name in ("lab01", "lab02", "lab03v2", "auto-cytology", "auto-fluorescence",
                 "auto-nuclei"):
        assert name in preset_names() and name in DESCRIPTIONS and DESCRIPTIONS[name]
    assert set(PRESETS) == set(DESCRIPTIONS)


def test_course_presets_values():
    lab01 = get_preset("lab01")
    assert lab01 == Params().with_values({"threshold.t_nuc": 0.45, "threshold.t_bg": 0.85})
    assert lab01.channel is Channel.GRAY and lab01.blur.kind is BlurKind.NONE
    assert lab01.cleanup == CleanupParams() and not lab01.watershed.enabled
    lab02 = get_preset("lab02")
    assert (lab02.threshold.t_nuc, lab02.threshold.t_bg) == (0.3904, 0.99)
    assert lab02.cleanup == CleanupParams()
    lab03 = get_preset("lab03v2")
    assert lab03.threshold == lab02.threshold
    assert lab03.cleanup.fill_holes and lab03.cleanup.min_nucleus_size > 0
    assert lab03.cleanup.min_cytoplasm_size > 0
    fl = get_preset("auto-fluorescence")
    assert fl.mode is Mode.FLUORESCENCE and fl.watershed.enabled
    assert fl.threshold.method is not ThresholdMethod.MANUAL
    assert fl.blur.kind is not BlurKind.NONE and fl.cleanup.min_nucleus_size > 0
    assert get_preset("auto-cytology").threshold.method is not ThresholdMethod.MANUAL


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError, match="unknown preset 'lab04'.*lab01"):
        get_preset("lab04")


def test_import_does_not_import_streamlit():
    code = ("import sys, cellseg_core, cellseg_core.pipeline, cellseg_core.presets, "
            "cellseg_core.metrics, cellseg_core.measure, cellseg_core.io; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('streamlit', 'plotly', 'altair')); print(bad); sys.exit(1 if bad else 0)")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_3_cleanup_scheme_and_connectivity():
    """Issue 20: `cleanup.scheme` and `cleanup.connectivity`, older files load with the
    values they meant (nested, 4)."""
    p = Params().with_values({"cleanup.scheme": "course", "cleanup.connectivity": 8})
    assert Params.from_json(p.to_json()) == p
    assert p.to_dict()["cleanup"]["connectivity"] == 8
    v2 = Params.from_dict({"schema_version": 2, "cleanup": {"min_nucleus_size": 5}})
    assert v2.cleanup.scheme == "nested" and v2.cleanup.connectivity == 4
    for bad, match in ((6, "must be 4 or 8"), (9, "must be between 4 and 8"),
                       (True, "must be an integer")):
        with pytest.raises(ValueError, match=match):
            Params().with_values({"cleanup.connectivity": bad})
    with pytest.raises(ValueError, match=r"`cleanup.scheme` must be one of \['nested', 'course'\]"):
        Params().with_values({"cleanup.scheme": "lab"})
