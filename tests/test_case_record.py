"""A case's record for the report (:func:`mapg_verify.report.case_record`), drawn from its typed
result as the results file holds it."""

from pathlib import Path

from mapg_verify import pipeline
from mapg_verify.casefile.reader import load_case
from mapg_verify.report import case_record, records
from mapg_verify.results import from_json, to_json

GOLD = Path(__file__).resolve().parent / "gold"


def test_the_record_of_the_gold_case(tiny_result):
    record = case_record(from_json(to_json(tiny_result)))
    assert [e["name"] for e in record["estimators"]] == ["meta-mapg", "sampled-exact"]
    sampled = record["estimators"][1]
    assert sampled["claim"] == "model-S" and sampled["claim_mode"] == "exact"
    assert (sampled["verdict"], sampled["verdict_reason"]) == ("pass", "its claim (model-S) held")
    assert float(sampled["bias_s"]) < 1e-9 < float(sampled["bias_e"])
    assert sampled["needed"].startswith("model E: ") and ", model S: " in sampled["needed"]
    assert sampled["needed"].split(", ")[-1].startswith("samples for 0.1 relative spread: ")
    assert sampled["statistic"] != "-" and sampled["p_value"] != "-"
    assert set(record["figures"]) == {
        "exact terms",
        "Monte-Carlo error against samples",
        "bias against the inner batch size",
        "fingerprint (95% intervals)",
    }
    assert [c["name"] for c in record["checks"]] == [c.name for c in tiny_result.checks]
    assert [term for model, term, _ in record["truth"] if model == "sampled"] == ["total", "current", "own", "peer"]
    assert [name for name, _ in record["lola"]] == ["exact", "first_order", "taylor"]


def test_a_case_that_failed_is_drawn_with_its_error():
    failed = pipeline.failed(load_case(GOLD / "tiny.toml"), "RuntimeError", "RuntimeError: boom")
    record = case_record(from_json(to_json(failed)))
    assert record["agent_values"] == record["truth"] == record["lola"] == record["estimators"] == []
    assert record["verdict"] == "fail" and [c["summary"] for c in record["checks"]] == ["RuntimeError: boom"]
    page = records({"run": {"seed": 0}}, [record])
    assert page["verdict"] == "fail" and page["counts"] == {
        "cases": 1,
        "checks": 1,
        "failed": 1,
        "untested": 0,
        "info": 0,
    }
