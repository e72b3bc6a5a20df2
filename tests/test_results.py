"""The results' records and their JSON (:mod:`mapg_verify.results`): one writer, one reader, and
the JSON they exchange is what ``results.json`` holds."""

import json
from pathlib import Path

import numpy as np
import pytest

from mapg_verify import pipeline
from mapg_verify.casefile.reader import load_case
from mapg_verify.results import dumps, from_json, loads, plain, to_json

GOLD = Path(__file__).resolve().parent / "gold"


@pytest.fixture
def tiny(tiny_result):
    return tiny_result


def test_the_document_is_what_the_results_file_reads_back(tiny):
    document = to_json(tiny)
    assert json.loads(dumps(document)) == document
    assert list(json.loads(dumps(document))) == list(document)  # the same key order too


def test_a_result_survives_its_json(tiny):
    again = from_json(to_json(tiny))
    assert to_json(again) == to_json(tiny)

    def seen(result):
        return [(check.name, check.verdict, check.summary) for check in result.checks]

    assert seen(again) == seen(tiny)
    for model, gradient in tiny.truth.truth.items():
        np.testing.assert_array_equal(again.truth.truth[model].own, gradient.own)
    np.testing.assert_array_equal(again.truth.estimators["meta-mapg"].total, tiny.truth.estimators["meta-mapg"].total)
    report = again.estimators["meta-mapg"]
    assert report.name == "meta-mapg" and report.monte_carlo["samples"] == 400
    assert {check.kind for check in report.checks} >= {"implementation", "bias", "fingerprint", "claim"}
    assert again.truth.oracles.kind == "oracles" and again.truth.oracles.subject == ""


def test_a_failed_case_has_no_truth_and_names_no_paper():
    failed = pipeline.failed(load_case(GOLD / "tiny.toml"), "RuntimeError", "RuntimeError: boom", 1.5)
    document = to_json(failed)
    assert "paper" not in document and "oracles" not in document["exact"] and document["exact"]["values"] == []
    assert "timings" not in document  # they go to the results file's own section
    again = from_json(document)
    assert again.truth is None and [c.verdict for c in again.checks] == ["fail"]
    assert to_json(again) == document


def test_plain_is_json_without_the_text():
    value = {2.5: (np.float64(1.5), np.int64(3)), 10: np.arange(2), False: [None], 1.5: {"z": np.bool_(True), "a": 2}}
    written = json.loads(json.dumps(value, sort_keys=True, default=lambda v: v.tolist() if hasattr(v, "tolist") else v))
    assert plain(value) == written and list(plain(value)) == list(written)  # keys sorted as numbers, then written
    assert json.loads(dumps(value)) == written and list(json.loads(dumps(value))) == list(written)
    assert type(plain(value)["2.5"][1]) is int and plain(value)["1.5"]["z"] is True
    with pytest.raises(ValueError):
        plain({"x": [float("nan")]})
    with pytest.raises(TypeError):
        plain({"x": object()})


def test_loads_refuses_what_is_not_json():
    assert loads('{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    with pytest.raises(ValueError, match="NaN is not JSON"):
        loads('{"a": NaN}')
