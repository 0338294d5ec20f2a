"""Instructor only (never released): the graded tests reject every mutant and accept every
correct alternative, for the three graded modules, through one harness (mutation.py).

Mutant sets: ``mutants/<module>_a.py`` (replacement functions) and ``mutants/<module>_b.py``
(replacement solution blocks, written independently of set A from the docstrings and the
solution). Correct alternatives: ``mutants/<module>_alternatives.py``. Kill rates:
``python tests/instructor/mutation.py``.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mutation as M  # noqa: E402

MODULES = ("size_estimate", "quantize", "prune")
MUTANT_FILES = M.variant_files("mutants")
ALTERNATIVE_FILES = M.variant_files("alternatives")

ACCEPTED_SURVIVORS: dict[str, dict[str, str]] = {}
"""Mutant file -> {mutant name: why no graded test can or should reject it}. Empty: every
mutant of every set is killed."""

MIN_KILL_RATE = 0.95

_USAGE: dict[str, dict[str, set[str]]] = {}


def _usage(module: str) -> dict[str, set[str]]:
    if module not in _USAGE:
        _USAGE[module] = M.usage(module)
    return _USAGE[module]


def test_apply_variant_replaces_exactly_one_block_and_refuses_bad_targets():
    source = (M.SRC / "quantize.py").read_text()
    variant = M.Variant("x", "FakeQuantizeSTE.backward",
                        "return grad_output, None, None, None, None")
    patched = M.apply_variant(source, variant)
    assert patched.count("return grad_output, None, None, None, None") == 1
    assert patched.count(M.BEGIN) == source.count(M.BEGIN)
    assert "(inside,) = ctx.saved_tensors" not in patched
    with pytest.raises(ValueError, match="no function"):
        M.apply_variant(source, M.Variant("x", "no_such_function", "pass"))
    with pytest.raises(ValueError, match="no solution block of its own"):
        M.apply_variant(source, M.Variant("x", "fake_quantize", "pass"))
    with pytest.raises(ValueError, match="occurs 0 times"):
        M.apply_variant(source, M.Variant("x", replace=(("no such text", ""),)))


@pytest.mark.parametrize("module", MODULES)
def test_solution_passes_every_graded_test_and_each_block_is_reached(module):
    outcome = M.run_graded(module, None, stop_at_first_failure=False)
    assert not outcome.failed and len(outcome.passed) >= 10
    unreached = [t for t in M.solution_targets(module) if not _usage(module).get(t)]
    assert not unreached, f"no graded test reaches {unreached}"


@pytest.mark.parametrize("module", MODULES)
def test_student_release_fails_every_graded_test(module):
    outcome = M.run_graded(module, None, stop_at_first_failure=False,
                           source=M.stub_source(module))
    assert outcome.failed and not outcome.passed, f"pass on the stub: {outcome.passed}"


def test_every_module_has_two_mutant_sets_and_alternatives():
    for module in MODULES:
        sets = [p.name for p in MUTANT_FILES if M.load_variants(p).MODULE == module]
        assert sorted(sets) == [f"{module}_a.py", f"{module}_b.py"], sets
        assert any(M.load_variants(p).MODULE == module for p in ALTERNATIVE_FILES), module
        b = M.load_variants(M.VARIANT_DIR / f"{module}_b.py").VARIANTS
        assert len(b) >= 30, f"{module}_b.py has {len(b)} mutants"


@pytest.mark.parametrize("path", MUTANT_FILES, ids=[p.stem for p in MUTANT_FILES])
def test_graded_tests_kill_the_mutants(path):
    module = M.load_variants(path).MODULE
    report = M.kill_report(path, _usage(module))
    print(f"\n{path.name}: killed {report['killed']}/{report['total']}")
    accepted = ACCEPTED_SURVIVORS.get(path.name, {})
    assert set(report["survivors"]) <= set(accepted), \
        f"survivors in {path.name}: {sorted(set(report['survivors']) - set(accepted))}"
    assert report["killed"] >= MIN_KILL_RATE * report["total"]


@pytest.mark.parametrize("path", ALTERNATIVE_FILES, ids=[p.stem for p in ALTERNATIVE_FILES])
def test_graded_tests_accept_the_correct_alternatives(path):
    mod = M.load_variants(path)
    rejected = {}
    for variant in mod.VARIANTS:
        outcome = M.run_graded(mod.MODULE, variant, stop_at_first_failure=False,
                               only=M._tests_for(variant, _usage(mod.MODULE)))
        assert outcome.passed, f"{variant.name}: no graded test reaches it"
        if outcome.failed:
            rejected[variant.name] = outcome.failed
    assert not rejected, f"correct alternatives rejected: {rejected}"


def _points(module: str) -> dict[str, float]:
    text = (M.GRADED / f"test_{module}.py").read_text()
    totals = {"public": 0.0, "hidden": 0.0}
    hidden = False
    for line in text.splitlines():
        if line.strip() == "### BEGIN HIDDEN TESTS":
            hidden = True
        elif line.strip() == "### END HIDDEN TESTS":
            hidden = False
        elif line.startswith("@pytest.mark.graded(") and "extra_credit=True" not in line:
            points = float(line.split("points=")[1].split(",")[0].split(")")[0])
            totals["hidden" if hidden else "public"] += points
    return totals


@pytest.mark.parametrize("module", MODULES)
def test_public_tests_carry_most_points_and_hidden_tests_some(module):
    totals = _points(module)
    share = totals["hidden"] / (totals["public"] + totals["hidden"])
    assert 0.1 <= share <= 0.4, f"{module}: {totals}"
