"""What `lambda-affinity calibrate` says about a fit: the notes, the model file,
the JSON and the table (sim.calibrate fits). Pure."""

from __future__ import annotations

from typing import Any

from ..platform import ModelConfig, model_file
from .calibrate import CONSISTENT, FEW_REQUESTS, FEW_USERS, Calibration, Verdict, describe

LABELS = {"placement": "placement", "busy_overhead_s": "busy overhead", "keep_alive_s": "keep-alive"}


def model_mapping(model: ModelConfig) -> dict:
    """The fitted keys, as `model:` in an emulator config or `simulate --model`."""
    return {
        "policy": model.policy,
        "routers": model.routers,
        "router_policy": model.router_policy,
        "busy_overhead_s": model.busy_overhead_s,
        "keep_alive_s": model.keep_alive_s,
        "init_delay_s": model.init_delay_s,
    }


def show(parameter: str, value: Any) -> str:
    """A parameter's value as the notes and the table write it."""
    if parameter == "placement":
        policy, routers = value
        return f"{policy} x{routers}" if policy == "partitioned" else policy
    if parameter == "busy_overhead_s":
        return f"{value * 1000:g} ms"
    return f"{value:g} s"


def _verdict_note(v: Verdict, band: float) -> str | None:
    if len(v.consistent) <= 1 and v.told:
        return None
    name = LABELS[v.parameter]
    values = ", ".join(show(v.parameter, x) for x in sorted(v.consistent))
    what = f"the trace cannot tell apart {name}: {values} (all within distance {band:.3g})"
    if not v.told:
        if v.best == v.prior:
            return f"{what}: it stays {show(v.parameter, v.prior)} (the default)"
        return (
            f"{what}: it stays {show(v.parameter, v.prior)} (the default), not the closest "
            f"{show(v.parameter, v.best)}, which this trace does not tell from it"
        )
    return f"{what}: fitted {show(v.parameter, v.best)}; the default {show(v.parameter, v.prior)} is ruled out"


def notes(result: Calibration) -> list[str]:
    m, fits = result.measurement, result.fits
    out = list(m.warnings)
    best = fits[0]
    if best.distance > CONSISTENT:
        out.append(
            f"no candidate is consistent with the measurement (best distance {best.distance:.2f} > "
            f"{CONSISTENT:g}): the model may lack what this platform does, or --latency/--service differ "
            "from the measured conditions"
        )
    band = max(CONSISTENT, best.distance)
    for v in result.verdicts:
        note = _verdict_note(v, band)
        if note:
            out.append(note)
    if m.users < FEW_USERS:
        out.append(
            f"only {m.users} users: per-user rates of so few users vary a lot run to run; "
            f"measure with at least {FEW_USERS}"
        )
    if m.requests < FEW_REQUESTS:
        out.append(f"only {m.requests} valid replies: run longer or with more users for a sharper fit")
    if len(result.keep_alives) == 1:
        out.append(
            f"the trace spans {m.span_s:.0f} s, too short to tell the keep-alive: it stays "
            f"{result.keep_alives[0]:g} s (the default)"
        )
    if m.init_delay_s is None:
        out.append("no cold and warm durations to compare: init_delay_s stays the default")
    return out


def _json_value(parameter: str, value: Any) -> Any:
    return {"policy": value[0], "routers": value[1]} if parameter == "placement" else value


def parameters_json(result: Calibration) -> dict:
    """Per searched parameter: the fitted value, the closest, the prior, the values consistent with the
    measurement around the best fit, and whether the trace tells the prior from the best."""
    return {
        v.parameter: {
            "fitted": _json_value(v.parameter, v.value),
            "closest": _json_value(v.parameter, v.best),
            "prior": _json_value(v.parameter, v.prior),
            "consistent": [_json_value(v.parameter, x) for x in sorted(v.consistent)],
            "told": v.told,
        }
        for v in result.verdicts
    }


def to_yaml(result: Calibration) -> str:
    """The fit as a model file (platform.model_file): what `calibrate --out` writes."""
    m, best = result.measurement, result.best
    head = [
        f"lambda-affinity calibrate: fitted to {', '.join(m.paths)}",
        f"{m.users} users, {m.requests} valid replies, {m.span_s:.0f} s; distance {best.distance:.2f} "
        f"(RMS of z-scores; <= {CONSISTENT:g} is consistent with the measurement)",
        "Use it as `lambda-affinity simulate --model FILE`, as an emulator config, or with --affinity-emulator-config.",
    ]
    head += [f"note: {n}" for n in notes(result)]
    return model_file.to_text(model_mapping(result.model), head)


def to_json(result: Calibration) -> dict:
    m = result.measurement
    return {
        "model": model_mapping(result.model),
        "parameters": parameters_json(result),
        "measured": {
            **vars(m.figures),
            "users": m.users,
            "requests": m.requests,
            "invalid": m.invalid,
            "span_s": m.span_s,
            "init_delay_s": m.init_delay_s,
            "min_keep_alive_s": m.min_keep_alive_s,
        },
        "candidates": [
            {
                "model": model_mapping(f.model),
                "distance": f.distance,
                "replays": f.replays,
                "rows": f.rows,
                "screened": f.screened,
                "predicted": f.predicted,
                "sd": f.sd,
                "z": f.z,
            }
            for f in result.fits
        ],
        "notes": notes(result),
    }


def render(result: Calibration, limit: int = 12) -> str:
    m, fig = result.measurement, result.measurement.figures
    warm = "n/a" if fig.warm_cache_rate is None else f"{fig.warm_cache_rate:.3f}"
    lines = [
        f"Measured: {m.users} users, {m.requests} valid replies, {m.invalid} invalid, {m.span_s:.1f} s; "
        f"max-share mean {fig.mean_max_share:.3f} (p10 {fig.p10_max_share:.3f}, p90 {fig.p90_max_share:.3f}), "
        f"warm-cache {warm}, {fig.environments} environments, {fig.cold_starts} cold starts",
        f"{'candidate':44s} {'distance':>8s} {'max-share':>9s} {'warm':>6s} {'envs':>7s} {'cold':>7s}",
    ]
    for f in result.fits[:limit]:
        p = f.predicted
        w = p.get("warm_cache_rate")
        lines.append(
            f"{f.label():44s} {f.distance:8.2f} {p['mean_max_share']:9.3f} "
            f"{'n/a' if w is None else format(w, '.3f'):>6s} {p['environments']:7.1f} {p['cold_starts']:7.1f}"
        )
    if len(result.fits) > limit:
        lines.append(f"... {len(result.fits) - limit} more candidates (--json lists them all)")
    lines.append(f"fitted: {describe(result.model)}, init delay {result.model.init_delay_s:g} s")
    for v in result.verdicts:
        told = "told apart" if v.told else "cannot tell: the prior kept"
        span = ", ".join(show(v.parameter, x) for x in sorted(v.consistent)) or "none"
        lines.append(f"{LABELS[v.parameter]}: {show(v.parameter, v.value)} ({told}; consistent: {span})")
    lines += [f"note: {n}" for n in notes(result)]
    return "\n".join(lines)
