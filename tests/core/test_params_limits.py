"""The parameter model's limits (issue 21 point 10, issue 22 point 6): one table that the
checks and the app's controls both read; every bound finite; messages stay short."""
from __future__ import annotations

import dataclasses
import math

import pytest

from cellseg_core.params import CONTROL_RANGES, LIMITS, Params
from cellseg_core.presets import PRESETS


def _numeric_names() -> set:
    """Every dotted name of Params whose value is an int or a float (not a bool)."""
    return {name for name, value in Params().flat().items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def test_every_numeric_parameter_has_finite_limits_and_a_control_range():
    assert set(LIMITS) == _numeric_names() == set(CONTROL_RANGES)
    for name, (low, high) in LIMITS.items():
        assert math.isfinite(low) and math.isfinite(high) and low < high, name
        # an int field has int bounds, a float field float bounds
        assert type(low) is type(high) is type(Params().get(name)), name


@pytest.mark.parametrize("name", sorted(CONTROL_RANGES))
def test_control_ranges_lie_inside_the_limits(name):
    low, high = LIMITS[name]
    c_low, c_high, step = CONTROL_RANGES[name]
    assert low <= c_low and (c_high is None or c_high <= high), name
    assert 0 < step <= (high - low), name
    if c_high is not None:
        # the control's ends are values the engine takes
        for value in (c_low, c_high):
            _set(name, value)


def _set(name, value) -> Params:
    base = Params()
    if name == "threshold.t_nuc":  # t_nuc < t_bg
        return base.with_values({"threshold.t_bg": 1.0, name: min(value, 0.99)})
    if name == "threshold.t_bg":
        return base.with_values({"threshold.t_nuc": 0.0, name: max(value, 0.01)})
    if name == "threshold.block_size" and value % 2 == 0:
        value += 1
    return base.with_values({name: value})


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_the_limits_are_what_the_engine_accepts(name):
    low, high = LIMITS[name]
    assert _set(name, low).get(name) in (low, low + 1, 0.01)  # block_size: odd
    assert _set(name, high).get(name) in (high, 0.99)
    tiny = 1 if isinstance(low, int) else 1e-9 * max(1.0, abs(high))
    for outside in (low - tiny, high + tiny, 10 ** 308 if isinstance(low, int) else 1e308):
        with pytest.raises(ValueError, match=rf"`{name}` must be between"):
            Params().with_values({name: outside})


def test_a_blur_of_sigma_100000_is_refused_with_the_range():
    with pytest.raises(ValueError) as err:
        Params.from_dict({"blur": {"kind": "gaussian", "sigma": 100000}})
    assert str(err.value) == "`blur.sigma` must be between 0 and 50, got 100000.0"


def test_presets_lie_inside_the_controls_ranges():
    """A preset never needs a control to widen."""
    for preset, params in PRESETS.items():
        for name, (low, high, _) in CONTROL_RANGES.items():
            value = params.get(name)
            assert low <= value and (high is None or value <= high), (preset, name, value)


@pytest.mark.parametrize("data", [
    {"mode": "x" * 100_000},
    {"blur": {"sigma": "9" * 100_000}},
    {"threshold": {"t" * 100_000: 1}},
    {"y" * 100_000: 1},
    {"schema_version": "z" * 100_000},
    {"blur": "w" * 100_000},
])
def test_messages_quote_a_huge_value_cut_short(data):
    with pytest.raises(ValueError) as err:
        Params.from_dict(data)
    assert len(str(err.value)) < 600 and "100,0" in str(err.value)


def test_unknown_names_are_listed_cut_short():
    with pytest.raises(ValueError) as err:
        Params().with_values({"n" * 100_000: 1, **{f"x{i}": 1 for i in range(50)}})
    assert len(str(err.value)) < 1000


def test_limits_are_checked_by_every_section():
    """Each section's own constructor refuses out-of-range values (not only with_values)."""
    for section in ("blur", "threshold", "cleanup", "watershed"):
        cls = type(getattr(Params(), section))
        for f in dataclasses.fields(cls):
            name = f"{section}.{f.name}"
            if name in LIMITS:
                with pytest.raises(ValueError, match=f"`{name}`"):
                    cls(**{f.name: LIMITS[name][1] * 2 + 1})
