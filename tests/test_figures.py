"""The report's plots (:mod:`mapg_verify.figures`): each one inline SVG, drawn from records, the
same bytes every time."""

import numpy as np

from mapg_verify import figures
from mapg_verify.checks.fingerprint import Fit
from mapg_verify.exact.metagradient import MetaGradient
from mapg_verify.spec.case import BASIS

GRADIENT = MetaGradient(np.array([1.0, -0.5]), np.zeros(2), np.array([0.5, -0.5]), np.array([0.5, 0.0]))
CURVE = [{"samples": n, "relative error": 1 / n**0.5, "predicted": 1 / n**0.5} for n in (10, 100, 1000)]
SWEEP = [
    {"K": k, "alpha factor": f, "relative bias vs model E": 0.1 / k, "relative bias vs model S": 0.0}
    for f in (0.5, 1.0)
    for k in (1, 2, 4)
]


def plots() -> dict[str, str]:
    return {
        "terms": figures.terms({"expected": GRADIENT, "sampled": GRADIENT}),
        "errors": figures.errors({"meta-mapg": CURVE}),
        "bias": figures.bias({"meta-mapg": SWEEP}),
        "variance": figures.variance({"a": {"spread": 100.0, "model": None}, "b": {"spread": 10.0, "model": 50.0}}),
        "fingerprints": figures.fingerprints({"a": Fit(dict.fromkeys(BASIS, 1.0), dict.fromkeys(BASIS), 0.0)}, BASIS),
        "rates": figures.rates({"meta-mapg": 0.01, "naive": 0.0}, 0.01, "false-alarm rate", (0.0, 0.05)),
        "formula": figures.formula(r"\theta^2"),
    }


def test_each_plot_is_inline_svg_and_deterministic():
    first, second = plots(), plots()
    for name, svg in first.items():
        assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>"), name
        assert svg == second[name], f"{name} differs between two draws"


def test_the_terms_panels_are_titled_by_model_letter():
    svg = figures.terms({"expected": GRADIENT, "sampled": GRADIENT})
    assert "model E" in svg and "model S" in svg
