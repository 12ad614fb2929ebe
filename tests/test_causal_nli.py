"""causal_nli: parser, oracle (hand-computed equivalence classes), generator, verifier, check."""

from __future__ import annotations

import csv
import string
from collections import Counter
from pathlib import Path

import pytest

from tasks.causal_nli import (
    KINDS,
    InconsistentPremise,
    ParseError,
    breakdown,
    entailed,
    equivalence_class,
    f1_valid,
    generate,
    label_input,
    parse_answer,
    parse_hypothesis,
    parse_input,
    parse_premise,
    verify,
    write_csv,
)
from tasks.causal_nli.check import GENERATOR_ERROR, check_file
from tasks.causal_nli.generator import premise_of
from tasks.causal_nli.language import format_premise
from tasks.causal_nli.oracle import dag_text

SAMPLE = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "corr2cause_train_sample_5k.csv"
)


def intro(n: int) -> str:
    names = list(string.ascii_uppercase[:n])
    listed = ", ".join(names[:-1]) + " and " + names[-1]
    return (
        f"Suppose there is a closed system of {n} variables, {listed}. "
        f"All the statistical relations among these {n} variables are as follows: "
    )


# A -> B -> C (and, Markov equivalent, A <- B <- C and A <- B -> C)
CHAIN = intro(3) + (
    "A correlates with B. A correlates with C. B correlates with C. However, A and C are independent given B."
)
# A -> C <- B
COLLIDER = intro(3) + "A correlates with C. B correlates with C. However, A is independent of B."
# A -> C, A -> D, B -> C, B -> D: two v-structures orient every edge
DOUBLE_V = intro(4) + (
    "A correlates with C. A correlates with D. B correlates with C. B correlates with D. "
    "C correlates with D. However, A is independent of B. C and D are independent given A and B."
)


def valid(premise: str, hypothesis: str) -> bool:
    return label_input(f"Premise: {premise}\nHypothesis: {hypothesis}")


def members(premise: str) -> set[str]:
    return {dag_text(d) for d in equivalence_class(parse_premise(premise))}


# ---------------------------------------------------------------- parser


def test_parse_premise_reads_every_statement_form():
    p = parse_premise(
        intro(5)
        + "A correlates with B. However, A is independent of C. A and D are independent given B. "
        "A and E are independent given B and C. C and E are independent given A, B and D."
    )
    assert p.variables == ("A", "B", "C", "D", "E")
    assert p.correlations == {frozenset("AB")}
    assert p.independences == {
        (frozenset("AC"), frozenset()),
        (frozenset("AD"), frozenset("B")),
        (frozenset("AE"), frozenset("BC")),
        (frozenset("CE"), frozenset("ABD")),
    }
    two = parse_premise(intro(2) + "A is independent of B.")  # no correlation, no "However"
    assert two.variables == ("A", "B") and two.correlations == frozenset()


@pytest.mark.parametrize(
    ("sentence", "kind", "relation", "x", "y"),
    [
        ("A directly causes C.", "parent", "parent", "A", "C"),
        ("C directly causes A.", "child", "parent", "C", "A"),
        ("B causes something else which causes C.", "non-parent ancestor", "mediated", "B", "C"),
        ("C causes something else which causes A.", "non-parent ancestor", "mediated", "C", "A"),
        ("C is a cause for B, but not a direct one.", "non-child descendant", "mediated", "C", "B"),
        (
            "There exists at least one collider (i.e., common effect) of A and B.",
            "has_collider",
            "collider",
            "A",
            "B",
        ),
        (
            "There exists at least one confounder (i.e., common cause) of C and A.",
            "has_confounder",
            "confounder",
            "C",
            "A",
        ),
        # the original generator's paraphrased templates
        ("B directly affects A.", "child", "parent", "B", "A"),
        ("A influences C through some mediator(s).", "non-parent ancestor", "mediated", "A", "C"),
        ("C influences A through some mediator(s).", "non-child descendant", "mediated", "C", "A"),
        ("A and B together cause some other variable(s).", "has_collider", "collider", "A", "B"),
        ("Some variable(s) cause(s) both A and C.", "has_confounder", "confounder", "A", "C"),
    ],
)
def test_parse_hypothesis_every_phrasing(sentence, kind, relation, x, y):
    h = parse_hypothesis(sentence, ("A", "B", "C"))
    assert (h.kind, h.relation, h.x, h.y) == (kind, relation, x, y)


def test_parse_errors_are_value_errors():
    with pytest.raises(ParseError, match="unknown premise sentence"):
        parse_premise(intro(2) + "A loves B.")
    with pytest.raises(ParseError, match="not among"):
        parse_hypothesis("A directly causes Q.", ("A", "B"))
    with pytest.raises(ParseError, match="unknown hypothesis"):
        parse_hypothesis("A is older than B.", ("A", "B"))
    with pytest.raises(ParseError, match="Hypothesis"):
        parse_input("Premise: " + CHAIN)


def test_format_premise_round_trips_original_statement_order():
    # pairs by position; given-sets compared as sorted index lists ([B, C] before [C])
    text = intro(4) + (
        "A correlates with C. B correlates with C. However, A is independent of B. "
        "A and D are independent given B and C. A and D are independent given C. B is independent of D."
    )
    assert format_premise(parse_premise(text)) == text


# ---------------------------------------------------------------- oracle


def test_chain_class_has_three_dags_and_nothing_directed_is_entailed():
    assert members(CHAIN) == {"A->B, B->C", "B->A, C->B", "B->A, B->C"}
    assert not valid(CHAIN, "A directly causes B.")
    assert not valid(CHAIN, "B directly causes A.")
    assert not valid(CHAIN, "A causes something else which causes C.")
    assert not valid(
        CHAIN, "There exists at least one confounder (i.e., common cause) of A and C."
    )  # fork only
    assert not valid(CHAIN, "There exists at least one collider (i.e., common effect) of A and C.")


def test_fork_and_chain_are_markov_equivalent():
    fork, chain = frozenset({("B", "A"), ("B", "C")}), frozenset({("A", "B"), ("B", "C")})
    assert premise_of(("A", "B", "C"), fork) == premise_of(("A", "B", "C"), chain)
    assert format_premise(premise_of(("A", "B", "C"), fork)) == CHAIN


def test_collider_is_fully_oriented():
    assert members(COLLIDER) == {"A->C, B->C"}
    assert valid(COLLIDER, "A directly causes C.")
    assert valid(COLLIDER, "B directly causes C.")
    assert not valid(COLLIDER, "C directly causes A.")
    assert valid(COLLIDER, "There exists at least one collider (i.e., common effect) of A and B.")
    assert not valid(
        COLLIDER, "There exists at least one confounder (i.e., common cause) of A and B."
    )
    assert not valid(COLLIDER, "A causes something else which causes C.")  # direct only


def test_confounder_and_child_kinds_can_be_valid():
    assert members(DOUBLE_V) == {"A->C, A->D, B->C, B->D"}
    assert valid(DOUBLE_V, "There exists at least one confounder (i.e., common cause) of D and C.")
    assert valid(DOUBLE_V, "There exists at least one collider (i.e., common effect) of A and B.")
    assert not valid(DOUBLE_V, "D directly causes C.")
    # B -> A <- C with B, C named after A: a valid "child" hypothesis
    child = intro(3) + "A correlates with B. A correlates with C. However, B is independent of C."
    assert valid(child, "B directly causes A.")


# A -> C <- B, C -> D, A -> D: Meek rules orient C -> D and then A -> D
MEDIATED = intro(4) + (
    "A correlates with C. A correlates with D. B correlates with C. B correlates with D. C correlates with D. "
    "However, A is independent of B. B and D are independent given A and C."
)
# A -> C <- B, C -> D -> E: all compelled
LONG = intro(5) + (
    "A correlates with C. A correlates with D. A correlates with E. B correlates with C. B correlates with D. "
    "B correlates with E. C correlates with D. C correlates with E. D correlates with E. However, "
    "A is independent of B. "
    "A and D are independent given B and C. A and D are independent given B, C and E. "
    "A and D are independent given C. A and D are independent given C and E. "
    "A and E are independent given B and C. A and E are independent given B, C and D. "
    "A and E are independent given B and D. A and E are independent given C. "
    "A and E are independent given C and D. A and E are independent given D. "
    "B and D are independent given A and C. B and D are independent given A, C and E. "
    "B and D are independent given C. B and D are independent given C and E. "
    "B and E are independent given A and C. B and E are independent given A, C and D. "
    "B and E are independent given A and D. B and E are independent given C. "
    "B and E are independent given C and D. B and E are independent given D. "
    "C and E are independent given A, B and D. C and E are independent given A and D. "
    "C and E are independent given B and D. C and E are independent given D."
)


def test_mediated_path_counts_even_beside_a_direct_edge():
    assert members(MEDIATED) == {"A->C, A->D, B->C, C->D"}
    assert valid(MEDIATED, "A directly causes D.")
    # Corr2Cause's reading: a path through a mediator exists (A -> C -> D), direct edge or not
    assert valid(MEDIATED, "A causes something else which causes D.")
    assert valid(MEDIATED, "A is a cause for D, but not a direct one.")
    assert not valid(MEDIATED, "C causes something else which causes D.")


def test_common_cause_and_effect_must_not_run_through_the_other_variable():
    premise = premise_of(
        tuple("ABCDE"), frozenset({("A", "C"), ("B", "C"), ("C", "D"), ("D", "E")})
    )
    assert format_premise(premise) == LONG
    assert members(LONG) == {"A->C, B->C, C->D, D->E"}
    # C is an ancestor of D and E, but only through D: no confounder of D and E
    assert not valid(LONG, "There exists at least one confounder (i.e., common cause) of D and E.")
    # D is a descendant of A and of C, but A reaches it only through C: no collider of A and C
    assert not valid(LONG, "There exists at least one collider (i.e., common effect) of A and C.")
    assert valid(LONG, "There exists at least one collider (i.e., common effect) of A and B.")
    assert valid(LONG, "B causes something else which causes E.")
    assert valid(LONG, "E is a cause for B, but not a direct one.") is False


def test_premise_no_dag_satisfies_raises():
    bad = intro(3) + (
        "A correlates with C. B correlates with C. However, A is independent of B. A and B are independent given C."
    )
    with pytest.raises(InconsistentPremise):
        equivalence_class(parse_premise(bad))


def test_generated_labels_are_the_oracle_on_the_text():
    rows = generate(12, seed=5, num_variables=(3, 4, 5))
    for row in rows:
        assert row["label"] == int(entailed(*parse_input(row["input"])))


# ---------------------------------------------------------------- generator


def test_generator_is_deterministic_and_seed_dependent():
    sizes = {"num_variables": (3, 4)}
    a, b, c = (
        generate(24, seed=11, **sizes),
        generate(24, seed=11, **sizes),
        generate(24, seed=12, **sizes),
    )
    assert a == b
    assert [r["input"] for r in a] != [r["input"] for r in c]
    assert len({r["input"] for r in a}) == 24


def test_generator_covers_kinds_and_sizes_and_balances_labels():
    rows = generate(60, seed=3)
    assert {r["num_variables"] for r in rows} == {2, 3, 4, 5, 6}
    # every kind has 5 valid and 5 invalid rows, although nothing is valid with 2 variables
    per_kind = Counter((r["template"], r["label"]) for r in rows)
    assert per_kind == {(kind, label): 5 for kind in KINDS for label in (0, 1)}
    assert not any(r["label"] for r in rows if r["num_variables"] == 2)
    # every row parses back to the kind and size it was generated as
    for r in rows:
        premise, hyp = parse_input(r["input"])
        assert (hyp.kind, len(premise.variables)) == (r["template"], r["num_variables"])
    natural = generate(60, seed=3, balance=False)
    assert sum(r["label"] for r in natural) / len(natural) < 0.3


def test_topological_names_make_child_hypotheses_never_valid():
    # the generating DAG is in its class and, named in topological order, only has edges
    # from earlier to later names: "later causes earlier" can hold in no class
    rows = generate(40, seed=8, num_variables=(4, 5), balance=False, topological_names=True)
    for row in rows:
        premise, hyp = parse_input(row["input"])
        if hyp.relation in ("parent", "mediated"):
            later_first = premise.variables.index(hyp.x) > premise.variables.index(hyp.y)
            assert not (later_first and row["label"])
    assert any(r["label"] and r["template"] == "parent" for r in rows)


# ---------------------------------------------------------------- verifier and metrics


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        ("Yes, the hypothesis is valid.", "valid"),
        (
            "<think>A and C are independent given B, so no... wait, yes? no.</think> Answer: invalid",
            "invalid",
        ),
        ("I cannot tell", None),
        ("I cannot tell whether it is valid or invalid.", None),
        ("No. B is not a parent of C in every graph of the class.", "invalid"),
        ("The hypothesis is not necessarily valid.", "invalid"),
        ("**Answer:** Valid", "valid"),
        ("Let me think.\nA -> C <- B is a collider.\nTherefore the hypothesis is valid.", "valid"),
        ("It isn't valid.", "invalid"),
        ("\\boxed{invalid}", "invalid"),
        ("True", "valid"),
        ("<think>never closed, valid", None),
    ],
)
def test_parse_answer_on_realistic_outputs(completion, answer):
    assert parse_answer(completion) == answer


def test_verify_accepts_every_reference_form():
    for reference in ("valid", 1, True, "1", "True"):
        assert verify("Valid.", reference).value == 1.0
    for reference in ("invalid", 0, False, "0"):
        assert verify("Valid.", reference).value == 0.0
    s = verify("I cannot tell", "invalid")
    assert s.value == 0.0 and s.answer is None and "no valid/invalid" in s.reason
    with pytest.raises(ValueError, match="reference"):
        verify("valid", "maybe")


def test_f1_and_breakdown_hand_computed():
    # tp=1 fp=1 fn=1 (one valid unparsed) -> f1 = 2/(2+1+1) = 0.5
    pairs = [(1, 1), (0, 1), (1, -1), (0, 0)]
    assert f1_valid(pairs) == 0.5
    rows = [{"kind": "parent", "num_variables": 3, "gold": g, "pred": p} for g, p in pairs[:2]] + [
        {"doc": {"kind": "child", "num_variables": 4}, "f1": pair, "acc": 0.0} for pair in pairs[2:]
    ]
    out = breakdown(rows)
    assert out["all"] == {"n": 4, "acc": 0.5, "f1": 0.5}
    assert out["kind"]["parent"] == {"n": 2, "acc": 0.5, "f1": 2 / 3}
    assert out["num_variables"][4] == {"n": 2, "acc": 0.5, "f1": 0.0}
    harness_row = {
        "meta": '{"kind": "parent", "num_variables": 2}',
        "target": "valid",
        "answer": "valid",
    }
    assert breakdown([harness_row])["all"] == {"n": 1, "acc": 1.0, "f1": 1.0}


# ---------------------------------------------------------------- check_file


def test_check_file_agrees_with_generated_labels(tmp_path):
    path = write_csv(generate(18, seed=9, num_variables=(3, 4, 5)), tmp_path / "gen.csv")
    report = check_file(path)
    assert (report.agreement, report.n, report.failures) == (1.0, 18, 0)
    assert report.last_line() == "agreement=1.0000 n=18"


def test_check_file_counts_disagreements_and_failures(tmp_path, capsys):
    rows = generate(10, seed=9, num_variables=(3, 4))
    rows[0]["label"] = 1 - rows[0]["label"]
    rows[1]["input"] = rows[1]["input"].replace("Hypothesis:", "Conjecture:")
    path = write_csv(rows, tmp_path / "bad.csv")
    report = check_file(path, show=True)
    assert (report.n, report.agree, report.failures) == (10, 8, 1)
    assert report.last_line() == "agreement=0.8000 n=10"
    printed = capsys.readouterr().out
    assert "row 0" in printed and "row 1" in printed and "FAILED" in printed


def test_check_file_missing_column_is_one_line(tmp_path):
    path = tmp_path / "nolabel.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["input", "num_variables"], ["Premise: x\nHypothesis: y", "2"]])
    with pytest.raises(ValueError) as err:
        check_file(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "'label'" in message


@pytest.mark.skipif(not SAMPLE.is_file(), reason="real Corr2Cause sample not on this machine")
def test_real_sample_agreement_and_every_disagreement_is_a_generator_error():
    report = check_file(SAMPLE)
    assert report.n == 2500 and report.failures == 0
    assert report.agreement >= 0.98
    # measured 2461/2500; each of the 39 is reproduced by replaying the original generator
    assert report.agree == 2461
    assert all(d["diagnosis"] == GENERATOR_ERROR for d in report.disagreements)


# ---------------------------------------------------------------- lm-eval hooks (no model)


def test_lm_eval_hooks_on_a_corr2cause_file(tmp_path, monkeypatch):
    from tasks.causal_nli import utils

    rows = generate(6, seed=21, num_variables=(3,))
    monkeypatch.setenv(utils.FILE_ENV, str(write_csv(rows, tmp_path / "c2c.csv")))
    splits = utils.load_corr2cause(n_fewshot_items=6, version=1.0, pretrained="ignored")
    docs = list(splits["test"])
    assert [d["input"] for d in docs] == [r["input"] for r in rows]
    assert [d["kind"] for d in docs] == [r["template"] for r in rows]
    assert {d["num_variables"] for d in docs} == {3}
    assert not {d["input"] for d in splits["train"]} & {d["input"] for d in docs}  # no leak
    doc = docs[0]
    assert utils.doc_to_text(doc).startswith("Premise: Suppose there is a closed system of 3")
    assert utils.doc_to_target(doc) == doc["label"] in ("valid", "invalid")
    right = "Valid." if doc["label"] == "valid" else "Invalid."
    gold = int(doc["label"] == "valid")
    assert utils.process_results(doc, [right]) == {"acc": 1.0, "f1": (gold, gold)}
    assert utils.process_results(doc, ["I cannot tell"]) == {"acc": 0.0, "f1": (gold, -1)}
    assert utils.sample_fields(doc, right) == {
        "answer": doc["label"],
        "correct": True,
        "score": 1.0,
    }


def test_corr2cause_loader_without_data_is_one_line(monkeypatch):
    from tasks.causal_nli import utils

    monkeypatch.delenv(utils.FILE_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match=utils.FILE_ENV) as err:
        utils.load_corr2cause()
    assert "\n" not in str(err.value)
