"""The promotion gate: may a freshly trained challenger replace the tenant's champion?

A challenger is promoted only if it meets the targets and is not worse than the current champion on
the same recent holdout beyond a small tolerance. For ROAS the targets are relative, because a ROAS
error means little without the account's noise beside it: the forecast must be a mean (its bias on the
holdout within ROAS_TARGETS["bias_max"]), its interval must cover about 80% of realised days, and it
must not lose to the best naive forecast a marketer already has (today's ROAS, trailing 7/14/30 days)
on the same rows. A conversion challenger must rank (AUC) and be calibrated: its mean probability near the
observed rate, and its log loss not worse than the champion's (a conversion shift breaks the calibration, not the
ranking). Pure decision logic;
the training step runs it and reports it as the blocking `promotion_gate` asset check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Absolute targets a model must meet on its holdout.
ROAS_TARGETS = {"bias_max": 0.10, "coverage_range": (0.7, 0.9)}
# How much worse than the best naive forecast (MAE, same holdout) a ROAS challenger may be: on noisy
# accounts the realised MAE of a good mean forecast and of a trailing average differ by about 1%.
ROAS_NAIVE_TOLERANCE = 0.02  # relative
CONVERSION_TARGETS = {"auc_min": 0.85, "calibration_gap_max": 0.05}  # |mean probability - base rate|
# How much worse than the champion a challenger may be and still be promoted.
ROAS_MAE_TOLERANCE = 0.02  # relative
CONVERSION_AUC_TOLERANCE = 0.005  # absolute
# A conversion challenger must also not lose to the champion on log loss (the calibration a conversion shift
# breaks, which AUC cannot see) beyond this relative tolerance.
CONVERSION_LOG_LOSS_TOLERANCE = 0.02


@dataclass
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        verdict = "promoted" if self.promote else "not promoted"
        return f"{verdict}: " + "; ".join(self.reasons)


def decide(model_type: str, challenger: dict, champion: dict | None) -> GateDecision:
    """Decision for a challenger's holdout metrics against the targets and the champion's (same holdout)."""
    failures, notes = [], []
    if model_type == "roas":
        if not abs(challenger["bias"]) <= ROAS_TARGETS["bias_max"]:
            if champion is not None and abs(champion.get("bias", 0.0)) > abs(challenger["bias"]):
                # after a change in the account both lag it; the less biased one is the better mean
                notes.append(
                    f"mean bias {challenger['bias']:+.1%} beyond ±{ROAS_TARGETS['bias_max']:.0%}, "
                    f"but the champion's is {champion['bias']:+.1%}"
                )
            else:
                failures.append(f"mean bias {challenger['bias']:+.1%} beyond ±{ROAS_TARGETS['bias_max']:.0%}")
        naive_limit = challenger["naive_mae"] * (1 + ROAS_NAIVE_TOLERANCE)
        if not challenger["mae"] <= naive_limit:
            failures.append(
                f"MAE {challenger['mae']:.3f} loses to the naive {challenger['naive']} forecast's "
                f"{challenger['naive_mae']:.3f} (+{ROAS_NAIVE_TOLERANCE:.0%})"
            )
        else:
            notes.append(
                f"MAE {challenger['mae']:.3f} vs naive {challenger['naive']} {challenger['naive_mae']:.3f}"
            )
        low, high = ROAS_TARGETS["coverage_range"]
        if not low <= challenger["coverage_80"] <= high:
            failures.append(f"80% interval coverage {challenger['coverage_80']:.2f} outside {low}-{high}")
        if champion is not None:
            limit = champion["mae"] * (1 + ROAS_MAE_TOLERANCE)
            if challenger["mae"] > limit:
                failures.append(
                    f"MAE {challenger['mae']:.3f} worse than champion's {champion['mae']:.3f} (+{ROAS_MAE_TOLERANCE:.0%})"
                )
            else:
                notes.append(f"MAE {challenger['mae']:.3f} vs champion's {champion['mae']:.3f}")
    elif model_type == "conversion":
        if not challenger["auc"] > CONVERSION_TARGETS["auc_min"]:
            failures.append(f"AUC {challenger['auc']:.3f} <= {CONVERSION_TARGETS['auc_min']}")
        _judge_calibration(challenger, champion, failures, notes)
        if champion is not None:
            if challenger["auc"] < champion["auc"] - CONVERSION_AUC_TOLERANCE:
                failures.append(f"AUC {challenger['auc']:.3f} worse than champion's {champion['auc']:.3f}")
            else:
                notes.append(f"AUC {challenger['auc']:.3f} vs champion's {champion['auc']:.3f}")
            if "log_loss" in champion:
                limit = champion["log_loss"] * (1 + CONVERSION_LOG_LOSS_TOLERANCE)
                if challenger["log_loss"] > limit:
                    failures.append(
                        f"log loss {challenger['log_loss']:.4f} worse than champion's {champion['log_loss']:.4f} "
                        f"(+{CONVERSION_LOG_LOSS_TOLERANCE:.0%})"
                    )
                else:
                    notes.append(
                        f"log loss {challenger['log_loss']:.4f} vs champion's {champion['log_loss']:.4f}"
                    )
    else:
        raise ValueError(f"unknown model type {model_type!r}")
    if failures:
        return GateDecision(False, failures)
    if champion is None:
        notes.append("the first champion")
    return GateDecision(True, ["meets the targets", *notes])


def _calibration_gap(metrics: dict) -> float | None:
    if "mean_probability" not in metrics or "base_rate" not in metrics:
        return None  # metrics of an older version
    return metrics["mean_probability"] - metrics["base_rate"]


def _judge_calibration(challenger: dict, champion: dict | None, failures: list, notes: list) -> None:
    """The conversion challenger's calibration in the large on the holdout: its mean probability within
    calibration_gap_max of the observed rate, unless the champion's gap on the same rows is wider still."""
    gap = _calibration_gap(challenger)
    if gap is None:
        return
    limit = CONVERSION_TARGETS["calibration_gap_max"]
    text = f"mean probability {challenger['mean_probability']:.3f} vs observed rate {challenger['base_rate']:.3f}"
    if abs(gap) <= limit:
        notes.append(text)
        return
    other = _calibration_gap(champion) if champion is not None else None
    if other is not None and abs(other) > abs(gap):
        notes.append(f"{text} (beyond ±{limit}), but the champion's gap is {other:+.3f}")
    else:
        failures.append(f"{text}: calibration gap {gap:+.3f} beyond ±{limit}")
