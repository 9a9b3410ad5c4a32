"""Built-in parameter sets by name; the names are a contract users' scripts rely on."""
from __future__ import annotations

from .params import Params

__all__ = ["PRESETS", "DESCRIPTIONS", "get_preset", "preset_names"]

_LAB02 = {"threshold.t_nuc": 0.3904, "threshold.t_bg": 0.99}
_LAB03V2 = {**_LAB02, "cleanup.min_nucleus_size": 200, "cleanup.min_cytoplasm_size": 200,
            "cleanup.fill_holes": True}

#: The fixed fluorescence pipeline the automatic presets fall back to with auto.kind off.
_FLUORESCENCE = {"mode": "fluorescence", "blur.kind": "gaussian", "blur.sigma": 2.0,
                 "threshold.method": "otsu", "cleanup.min_nucleus_size": 30,
                 "cleanup.fill_holes": True, "watershed.enabled": True,
                 "watershed.min_distance": 6, "watershed.footprint": 3}

_VALUES = {
    "lab01": ({"threshold.t_nuc": 0.45, "threshold.t_bg": 0.85},
              "Course Lab 01: gray, hand-picked thresholds 0.45 / 0.85, nothing else."),
    "lab02": (_LAB02,
              "Course Lab 02: gray, Bayesian-optimised thresholds 0.3904 / 0.99."),
    "lab03v2": ({**_LAB03V2, "cleanup.scheme": "course"},
                "Course Lab 03-v2, exactly as the course's code: Lab 02 thresholds, then "
                "nucleus and cytoplasm pieces under 200 px removed (they become "
                "background) and holes in nuclei filled."),
    "lab03v2-plus": (_LAB03V2,
                     "Lab 03-v2 with our nested clean-up: a nucleus piece under 200 px "
                     "becomes cytoplasm (it is still inside a cell) instead of background, "
                     "and cytoplasm pieces are measured with those pieces in them."),
    "auto-cytology": ({"threshold.method": "li", "threshold.background": "peak",
                       "cleanup.min_nucleus_size": 200, "cleanup.min_cytoplasm_size": 200,
                       "cleanup.fill_holes": True, "auto.kind": "detect"},
                      "No tuning, for bright-field cytology (H&E, Pap): cells are darker than "
                      "the bright glass peak, the nucleus is the darker part of the cell "
                      "(Li's method), nucleus pieces under half a typical nucleus (its "
                      "size read off the image; at least 200 px) removed. On immunostains "
                      "(brown DAB) the nuclei are found on hematoxylin alone; on "
                      "fluorescence, as auto-nuclei."),
    "auto-fluorescence": ({**_FLUORESCENCE, "auto.kind": "fluorescence"},
                          "Fluorescence nuclei (DAPI, Hoechst), no tuning: the automatic "
                          "nucleus method with the kind set to fluorescence; every size from "
                          "the nucleus diameter read off the image. (With auto.kind off: "
                          "sigma 2, Otsu, 30 px, watershed 6.)"),
    "auto-nuclei": ({**_FLUORESCENCE, "auto.kind": "detect"},
                    "Nuclei on any image, no tuning: the kind of image (fluorescence, "
                    "stained or gray bright-field) is detected, the nucleus channel chosen "
                    "for it (hematoxylin alone for stains), the nucleus diameter read off "
                    "the image and every size derived from it; labels 0/2. (With "
                    "auto.kind off: as auto-fluorescence.)"),
}

#: Preset name → Params.
PRESETS = {name: Params().with_values(values) for name, (values, _) in _VALUES.items()}
#: Preset name → one-line description.
DESCRIPTIONS = {name: text for name, (_, text) in _VALUES.items()}


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> Params:
    """The built-in params called `name`; unknown names list the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; valid: {preset_names()}") from None
