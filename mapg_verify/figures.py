"""The report's figures: records in, inline SVG text out (matplotlib, no files, no network).

SVG is written with text as text (``svg.fonttype = none``), a fixed hash salt and no date, so
the same records give the same bytes.
"""

from __future__ import annotations

import io
import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from mapg_verify.checks.fingerprint import Fit
from mapg_verify.exact.metagradient import MetaGradient
from mapg_verify.spec.case import MODEL_LETTER

matplotlib.use("Agg")


STYLE = {
    "svg.fonttype": "none",
    "svg.hashsalt": "mapg_verify",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
}


TERMS = ("current", "own", "peer")
COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def _svg(figure, tight: bool = False) -> str:
    """The figure as an inline ``<svg>`` element."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight" if tight else None)
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def formula(latex: str) -> str:
    """A LaTeX formula (matplotlib's mathtext subset) typeset as SVG."""
    with plt.rc_context(STYLE):
        figure = plt.figure(figsize=(0.01, 0.01))
        figure.text(0, 0, f"${latex}$", fontsize=11)
        return _svg(figure, tight=True)


def terms(truth: dict[str, MetaGradient]) -> str:
    """Bars of ``current``, ``own`` and ``peer`` per parameter of ``theta^i``, one panel per model."""
    models = list(truth)
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(
            1, len(models), figsize=(3.4 * len(models), 2.4), squeeze=False, layout="constrained"
        )
        for axis, model in zip(axes[0], models, strict=True):
            width = len(truth[model].total)
            index = np.arange(width)
            for offset, (term, colour) in enumerate(zip(TERMS, COLOURS, strict=False)):
                axis.bar(index + (offset - 1) * 0.27, getattr(truth[model], term), 0.27, label=term, color=colour)
            axis.plot(index, truth[model].total, "k_", markersize=14, label="total")
            axis.axhline(0, color="0.6", linewidth=0.6)
            axis.set_title(f"model {MODEL_LETTER[model]}")
            axis.set_xlabel("parameter of theta^i")
            axis.set_xticks(index)
        axes[0][0].legend(frameon=False, fontsize=7)
        return _svg(figure)


def errors(curves: dict) -> str:
    """Relative error of the Monte-Carlo mean against the exact expectation versus the number of
    samples, log-log, with each estimator's predicted ``sqrt(tr(Sigma) / N) / |E|`` as its guide."""
    with plt.rc_context(STYLE):
        figure, axis = plt.subplots(figsize=(4.6, 3.0), layout="constrained")
        for (name, curve), colour in zip(curves.items(), COLOURS * 4, strict=False):
            samples = np.array([point["samples"] for point in curve])
            values = np.array([point["relative error"] for point in curve])
            axis.loglog(samples, values, "o-", color=colour, markersize=3, label=name)
            predicted = [point["predicted"] for point in curve]
            axis.loglog(samples, predicted, ":", color=colour, linewidth=0.8)
        _plain_ticks(axis, "both")
        axis.set_xlabel("samples N")
        axis.set_ylabel("relative error of the mean")
        axis.set_title("dotted: the 1/sqrt(N) prediction sqrt(tr Sigma / N) / |E|")
        axis.legend(frameon=False, fontsize=7)
        return _svg(figure)


def _plain_ticks(axis, which: str) -> None:
    """Log-axis labels as plain numbers (mathtext labels are slow to typeset), no minor labels."""
    formatter = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
    for part in (axis.xaxis, axis.yaxis) if which == "both" else (axis.yaxis,):
        part.set_major_formatter(formatter)
        part.set_minor_formatter(matplotlib.ticker.NullFormatter())


def bias(sweeps: dict) -> str:
    """Relative bias against model E (solid) and model S (dashed) versus ``K``, at the case's rates."""
    with plt.rc_context(STYLE):
        figure, axis = plt.subplots(figsize=(4.6, 3.0), layout="constrained")
        for (name, rows), colour in zip(sweeps.items(), COLOURS * 4, strict=False):
            rows = [row for row in rows if row["alpha factor"] == 1.0]
            batches = [row["K"] for row in rows]
            axis.plot(batches, [row["relative bias vs model E"] for row in rows], "o-", color=colour, label=name)
            axis.plot(batches, [row["relative bias vs model S"] for row in rows], "s--", color=colour, markersize=3)
        axis.set_xscale("log", base=2)
        shown = sorted({row["K"] for rows in sweeps.values() for row in rows})
        axis.set_xticks(shown, [str(k) for k in shown])
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axis.set_xlabel("inner batch size K")
        axis.set_ylabel("relative bias")
        axis.set_title("solid: vs model E, dashed: vs model S")
        axis.legend(frameon=False, fontsize=7)
        return _svg(figure)


def correlation(curves: dict) -> str:
    """The papers' protocol: correlation with the exact derivative (left) and relative error (right,
    log) against the batch size, mean line and the band of 95% of single estimates, per estimator."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(1, 2, figsize=(7.2, 2.9), layout="constrained")
        for (name, curve), colour in zip(curves.items(), COLOURS * 4, strict=False):
            for axis, key in zip(axes, ("correlation", "relative error"), strict=True):
                points = curve[key]
                axis.plot(curve["batch"], [p["mean"] for p in points], "o-", color=colour, markersize=3, label=name)
                axis.fill_between(
                    curve["batch"], [p["low"] for p in points], [p["high"] for p in points], color=colour, alpha=0.15
                )
        shown = sorted({b for curve in curves.values() for b in curve["batch"]})
        for axis, label in zip(axes, ("correlation with the exact derivative", "relative error"), strict=True):
            axis.set_xscale("log", base=2)
            axis.set_xticks(shown, [str(b) for b in shown])
            axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            axis.set_xlabel("batch size (trajectories per estimate)")
            axis.set_ylabel(label)
        axes[1].set_yscale("log")
        _plain_ticks(axes[1], "y")
        axes[0].legend(frameon=False, fontsize=7)
        return _svg(figure)


def campaign_bias(rows: dict) -> str:
    """Relative bias against model S (left) and model E (right) across a campaign's games, per
    estimator: boxes of the quartiles, whiskers to the extremes (log scale; 0 drawn at 1e-16)."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(1, 2, figsize=(7.2, 0.5 + 0.35 * len(rows)), layout="constrained", sharey=True)
        for axis, model in zip(axes, ("S", "E"), strict=True):
            boxes = []
            for name, row in rows.items():
                q = row[f"bias vs model {model}"] or dict.fromkeys(("min", "25%", "median", "75%", "max"), np.nan)
                lift = {key: max(q[key], 1e-16) for key in ("min", "25%", "median", "75%", "max")}
                boxes.append({"label": name, "whislo": lift["min"], "q1": lift["25%"], "med": lift["median"],
                              "q3": lift["75%"], "whishi": lift["max"], "fliers": []})  # fmt: skip
            axis.bxp(boxes, orientation="horizontal", showfliers=False)
            axis.set_xscale("log")
            axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            axis.set_xlabel(f"relative bias vs model {model}")
        return _svg(figure)


def variance(rows: dict) -> str:
    """Samples for the target relative error, per estimator variant (log scale): against model S
    (bias included; a missing bar is "never") and about the estimator's own expectation."""
    with plt.rc_context(STYLE):
        names = list(rows)
        figure, axis = plt.subplots(figsize=(5.2, 0.35 * len(names) + 1.0), layout="constrained")
        place = np.arange(len(names))
        for offset, (key, label, colour) in enumerate(
            [("spread", "about its own mean", COLOURS[0]), ("model", "against model S", COLOURS[1])]
        ):
            values = [rows[name][key] or np.nan for name in names]
            axis.barh(place + 0.4 * offset - 0.2, values, height=0.38, color=colour, label=label)
        axis.set_yticks(place, names, fontsize=7)
        axis.invert_yaxis()
        axis.set_xscale("log")
        axis.set_xlabel("replicates for the target relative error")
        axis.set_title("no bar against model S: never (the bias alone exceeds the target)", fontsize=7)
        axis.legend(frameon=False, fontsize=7)
        return _svg(figure)


def fingerprints(fits: dict[str, Fit], basis: tuple[str, ...]) -> str:
    """Each estimator's fitted coefficients on the exact terms, with 95% intervals."""
    with plt.rc_context(STYLE):  # horizontal bars: the terms' names read along the axis, the legend beside
        figure, axis = plt.subplots(figsize=(6.4, 0.6 + 0.45 * len(basis)), layout="constrained")
        step = 0.8 / max(len(fits), 1)
        for offset, ((name, fit), colour) in enumerate(zip(fits.items(), COLOURS * 4, strict=False)):
            values = [np.nan if fit.coefficients[t] is None else fit.coefficients[t] for t in basis]
            half = [0.0 if fit.half_widths[t] is None else fit.half_widths[t] for t in basis]
            half = [h if math.isfinite(h) else 0.0 for h in half]
            position = np.arange(len(basis)) - 0.4 + step * (offset + 0.5)
            axis.barh(position, values, step, xerr=half, color=colour, label=name, capsize=2)
        axis.axvline(0, color="0.6", linewidth=0.6)
        axis.axvline(1, color="0.6", linewidth=0.6, linestyle=":")
        axis.set_yticks(np.arange(len(basis)), basis)
        axis.invert_yaxis()
        axis.set_xlabel("coefficient")
        axis.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return _svg(figure)


def rates(values: dict, reference: float, label: str, band: tuple[float, float] | None = None) -> str:
    """Horizontal bars of rates (false alarms or rejections) with the reference line and a band."""
    with plt.rc_context(STYLE):
        figure, axis = plt.subplots(figsize=(4.6, 0.4 + 0.3 * len(values)), layout="constrained")
        names = list(values)
        axis.barh(np.arange(len(names)), [values[n] for n in names], color=COLOURS[0])
        if band:
            axis.axvspan(*band, color="0.85", zorder=0)
        axis.axvline(reference, color="k", linewidth=0.8)
        axis.set_yticks(np.arange(len(names)), names)
        axis.set_xlabel(label)
        return _svg(figure)


def paths(trajectories: dict) -> str:
    """Learning paths in the plane of the two scalar parameters, each from the same start."""
    with plt.rc_context(STYLE):
        figure, axis = plt.subplots(figsize=(4.2, 4.0), layout="constrained")
        for (name, path), colour in zip(trajectories.items(), COLOURS, strict=False):
            points = np.array(path)
            axis.plot(points[:, 0], points[:, 1], color=colour, linewidth=1.0, label=name)
        start = np.array(next(iter(trajectories.values()))[0])
        axis.plot(*start, "ko", markersize=4)
        axis.plot(0, 0, "k*", markersize=8)
        axis.set_aspect("equal", adjustable="datalim")
        axis.set_xlabel("theta^0 (x)")
        axis.set_ylabel("theta^1 (y)")
        axis.legend(frameon=False, fontsize=7)
        return _svg(figure)


def distances(series: dict) -> str:
    """Distance to the equilibrium against iterations, log scale."""
    with plt.rc_context(STYLE):
        figure, axis = plt.subplots(figsize=(4.6, 3.0), layout="constrained")
        for (name, values), colour in zip(series.items(), COLOURS, strict=False):
            axis.semilogy(values, color=colour, label=name)
        _plain_ticks(axis, "y")
        axis.set_xlabel("iteration")
        axis.set_ylabel("distance to the equilibrium")
        axis.legend(frameon=False, fontsize=7)
        return _svg(figure)


def adaptation(curves: dict) -> str:
    """Average reward per step against adaptation steps: mean line and 95% band per method."""
    with plt.rc_context(STYLE):
        figure, axis = plt.subplots(figsize=(4.8, 3.2), layout="constrained")
        for (name, band), colour in zip(curves.items(), COLOURS, strict=False):
            steps = np.arange(len(band["mean"]))
            axis.plot(steps, band["mean"], "o-", color=colour, markersize=3, label=name)
            axis.fill_between(steps, band["low"], band["high"], color=colour, alpha=0.2, linewidth=0)
        axis.axhline(-1, color="0.6", linewidth=0.6, linestyle=":")
        axis.axhline(-2, color="0.6", linewidth=0.6, linestyle=":")
        axis.set_xlabel("adaptation step at meta-test")
        axis.set_ylabel("average reward per step")
        axis.legend(frameon=False, fontsize=7)
        return _svg(figure)


def audit(series: dict) -> str:
    """Per agent (columns): the logged figures and the exact expectation with its band of two
    standard deviations of a batch mean (top), and the residuals with the same band (bottom)."""
    logged, exact, sd = (np.asarray(series[key], dtype=float) for key in ("logged", "exact", "sd"))
    points = np.arange(len(logged))
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(
            2, logged.shape[1], figsize=(3.8 * logged.shape[1], 4.6), squeeze=False, sharex=True, layout="constrained"
        )
        for k in range(logged.shape[1]):
            top, bottom = axes[0][k], axes[1][k]
            top.fill_between(points, exact[:, k] - 2 * sd[:, k], exact[:, k] + 2 * sd[:, k], color="0.85", linewidth=0)
            top.plot(points, exact[:, k], color="k", linewidth=1.0, label="exact")
            top.plot(points, logged[:, k], ".", color=COLOURS[0], markersize=2.5, label="logged")
            top.set_title(f"agent {k}")
            bottom.fill_between(points, -2 * sd[:, k], 2 * sd[:, k], color="0.85", linewidth=0)
            bottom.axhline(0, color="k", linewidth=0.6)
            bottom.plot(points, logged[:, k] - exact[:, k], ".", color=COLOURS[3], markersize=2.5)
            bottom.set_xlabel("logged point")
        axes[0][0].set_ylabel("metric")
        axes[1][0].set_ylabel("logged - exact")
        axes[0][0].legend(frameon=False, fontsize=7)
        return _svg(figure)
