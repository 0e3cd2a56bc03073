"""Same answers, different reasons: label fidelity beside attribution agreement and low-noise fidelity.

A surrogate can predict the teacher's class on clean test data while attending to other
features (its attributions disagree with the teacher's) or while breaking under the slightest
noise.  :func:`reasons_report` puts the three numbers side by side per surrogate and flags a
surrogate whose label fidelity is high but whose reasons or robustness are not.  Works on the
analysis objects or on their metrics.json form (so ``audit`` reads a saved run's numbers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._display import attr_or_key as _get

__all__ = ["reasons_report", "HIGH_FIDELITY", "MIN_SPEARMAN", "MAX_NOISE_DROP"]

#: Label fidelity at or above which a surrogate "gives the same answers".
HIGH_FIDELITY = 0.90
#: Mean Spearman correlation with the teacher's attributions below which its reasons differ, when the
#: run measured no reference (the teacher under noise, random models) to calibrate against.
MIN_SPEARMAN = 0.30
#: With a reference: the reasons differ when the Spearman correlation sits in the lowest quarter of the
#: span from chance (random linear models) to the ceiling (the teacher against itself under small noise),
#: i.e. little above what a random model reaches ...
MIN_CALIBRATED = 0.25
#: ... and the span is wide enough to tell them apart (else no flag: the attributions cannot judge).
MIN_SPAN = 0.2
#: A drop in fidelity at the smallest noise level larger than this makes it fragile.
MAX_NOISE_DROP = 0.10


def _calibrated(sp: Any, ref: Mapping[str, Any]) -> float | None:
    """Where ``sp`` sits from chance (0) to the teacher's own agreement under noise (1); None when the
    reference is missing or too narrow to tell chance from agreement."""
    lo, hi = ref.get("floor"), ref.get("ceiling")
    if sp is None or lo is None or hi is None or not (hi - lo) >= MIN_SPAN:
        return None
    return (float(sp) - float(lo)) / (float(hi) - float(lo))


def reasons_report(fidelity: Mapping[str, float], attribution: Any = None, robustness: Any = None) -> dict[str, dict[str, Any]]:
    """Per surrogate: label fidelity, attribution agreement (with the method) and low-noise fidelity, and flags.

    Parameters
    ----------
    fidelity : dict of surrogate -> label fidelity on the test split
    attribution : AttributionReport or its ``to_json()`` dict, optional
    robustness : RobustnessReport or its ``to_json()`` dict, optional

    Returns
    -------
    dict of surrogate -> ``{"fidelity", "attribution_method", "attribution_spearman",
    "attribution_top_k", "noise_sigma", "noise_fidelity", "flags", "flag"}`` where ``flags`` lists
    ``"reasons"`` and/or ``"robustness"`` and ``flag`` says it in words (None when clean).
    """
    methods = _get(attribution, "methods", {}) or {}
    reference = _get(attribution, "reference", {}) or {}
    agreement = _get(attribution, "agreement", {}) or {}
    spearman_map = _get(attribution, "spearman") if isinstance(attribution, Mapping) else None
    sigmas = list(_get(robustness, "sigmas", []) or [])
    noise = _get(robustness, "noise", {}) or {}
    small = next(((i, s) for i, s in enumerate(sigmas) if s and s > 0), None)
    out: dict[str, dict[str, Any]] = {}
    for name, fid in fidelity.items():
        agree = agreement.get(name) or {}
        sp = agree.get("spearman") if agree else (spearman_map or {}).get(name)
        tk = agree.get("top_k") if agree else None
        ref = reference.get(agree.get("against")) or {}
        calibrated = _calibrated(sp, ref)
        row: dict[str, Any] = {
            "fidelity": fid,
            "attribution_method": methods.get(name),
            "attribution_against": agree.get("against"),
            "attribution_spearman": sp,
            "attribution_floor": ref.get("floor"),
            "attribution_ceiling": ref.get("ceiling"),
            "attribution_calibrated": calibrated,
            "attribution_top_k": tk,
            "attribution_k": agree.get("k") if agree else None,
            "noise_sigma": small[1] if small else None,
            "noise_fidelity": None,
        }
        model_noise = noise.get(name) or {}
        if small is not None and model_noise.get("fidelity") and len(model_noise["fidelity"]) > small[0]:
            row["noise_fidelity"] = model_noise["fidelity"][small[0]]
        flags, words = [], []
        if fid is not None and fid >= HIGH_FIDELITY:
            if ref and calibrated is not None and calibrated < MIN_CALIBRATED:
                flags.append("reasons")
                words.append(
                    f"its attributions agree with the teacher's little more than a random model's do (Spearman "
                    f"{sp:.2f}, where random linear models reach {ref['floor']:.2f} and the teacher under small noise "
                    f"agrees with itself at {ref['ceiling']:.2f}; {row['attribution_method'] or 'attribution'})"
                )
            elif not ref and sp is not None and sp < MIN_SPEARMAN:
                flags.append("reasons")
                words.append(
                    f"its attributions hardly agree with the teacher's (Spearman {sp:.2f} < {MIN_SPEARMAN:.2f}, "
                    f"{row['attribution_method'] or 'attribution'})"
                )
            nf = row["noise_fidelity"]
            if nf is not None and fid - nf > MAX_NOISE_DROP:
                flags.append("robustness")
                words.append(f"its fidelity falls from {fid:.3f} to {nf:.3f} under noise sigma {row['noise_sigma']:g}")
        row["flags"] = flags
        row["flag"] = (
            f"Same answers, different reasons: {name} agrees with the teacher on {fid:.1%} of test samples, but "
            + " and ".join(words) + "."
        ) if flags else None
        out[name] = row
    return out
