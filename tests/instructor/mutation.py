"""One mutation harness for the three graded modules (size_estimate, quantize, prune).

A ``Variant`` is a way to fill in one solution block of a graded module: a mutant (a
plausible wrong answer, which the graded tests must reject) or a correct alternative (a
different right answer, which they must accept). ``code`` replaces the lines between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` inside ``target`` (a function name or
``Class.method``); ``replace`` pairs are exact source substitutions for the rare variant
that needs more than one block (each ``old`` must occur exactly once in the module).

``run_graded`` builds the variant's module from the instructor's source, puts it in
``sys.modules`` as ``kwslab.<module>`` (so ``from kwslab.<module> import f`` in the graded
tests binds the variant), and runs ``tests/graded/test_<module>.py`` in this process with
``pytest.main`` (hidden tests included). A mutant stops at its first failing test.

Variant files (``tests/instructor/mutants/*.py``) hold a module-level ``MODULE`` (the graded
module's name), ``KIND`` ("mutants" or "alternatives") and ``VARIANTS`` (a list of Variant).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import signal
import sys
import textwrap
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "kwslab"
GRADED = REPO / "tests" / "graded"
VARIANT_DIR = Path(__file__).resolve().parent / "mutants"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
TIMEOUT_S = 20
"""A variant running longer than this (an endless loop) counts as failing the tests."""


@dataclass(frozen=True)
class Variant:
    name: str
    """Short id, unique within its file."""
    target: str | None = None
    """Function or ``Class.method`` whose solution block ``code`` replaces."""
    code: str = ""
    """Replacement for the solution block (any indentation; it is re-indented)."""
    replace: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """Exact (old, new) substitutions in the module source, applied after ``code``."""
    why: str = ""
    """The mistake (mutant) or the other route (alternative), in a few words."""


def _block_span(lines: list[str], target: str) -> tuple[int, int, str]:
    """(first line of the block body, its END line, indentation) of target's solution block."""
    *owners, func = target.split(".")
    start = 0
    for owner in owners:
        start = next(i for i in range(start, len(lines))
                     if lines[i].lstrip().startswith(f"class {owner}(")
                     or lines[i].lstrip().startswith(f"class {owner}:"))
    try:
        start = next(i for i in range(start, len(lines))
                     if lines[i].lstrip().startswith(f"def {func}("))
    except StopIteration:
        raise ValueError(f"no function {target!r} in the module") from None
    begin = next(i for i in range(start, len(lines)) if lines[i].strip() == BEGIN)
    end = next(i for i in range(begin, len(lines)) if lines[i].strip() == END)
    nxt = [i for i in range(start + 1, begin) if lines[i].lstrip().startswith(("def ", "class "))
           and len(lines[i]) - len(lines[i].lstrip()) <= len(lines[start]) - len(lines[start].lstrip())]
    if nxt:
        raise ValueError(f"{target!r} has no solution block of its own")
    indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
    return begin + 1, end, indent


def apply_variant(source: str, variant: Variant) -> str:
    """The module source with variant's block and substitutions in place."""
    if variant.target is not None:
        lines = source.splitlines(keepends=True)
        first, end, indent = _block_span(lines, variant.target)
        body = textwrap.indent(textwrap.dedent(variant.code).strip("\n") + "\n", indent)
        source = "".join(lines[:first]) + body + "".join(lines[end:])
    for old, new in variant.replace:
        count = source.count(old)
        if count != 1:
            raise ValueError(f"{variant.name}: {old!r} occurs {count} times, need exactly 1")
        source = source.replace(old, new)
    return source


def load_module(module: str, source: str) -> types.ModuleType:
    """Execute source as module ``kwslab.<module>`` and register it in sys.modules."""
    import kwslab

    name = f"kwslab.{module}"
    mod = types.ModuleType(name)
    mod.__file__ = str(SRC / f"{module}.py")
    mod.__package__ = "kwslab"
    sys.modules[name] = mod  # dataclasses look their module up while the class is built
    setattr(kwslab, module, mod)
    exec(compile(source, mod.__file__, "exec"), mod.__dict__)
    return mod


class _Outcome:
    """pytest plugin that records each test's result."""

    def __init__(self) -> None:
        self.failed: list[str] = []
        self.passed: list[str] = []

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed:
            self.failed.append(report.nodeid.split("::")[-1])
        elif report.passed and report.when == "call":
            self.passed.append(report.nodeid.split("::")[-1])

    def pytest_collectreport(self, report) -> None:
        if report.failed:
            self.failed.append(f"collection: {report.nodeid}")


def _timeout(signum, frame):
    raise TimeoutError(f"variant ran longer than {TIMEOUT_S} s")


@contextlib.contextmanager
def _variant_installed(module: str, source: str):
    import kwslab

    name = f"kwslab.{module}"
    saved = sys.modules.get(name)
    saved_attr = getattr(kwslab, module, None)
    try:
        yield load_module(module, source)
    finally:
        if saved is not None:
            sys.modules[name] = saved
            setattr(kwslab, module, saved_attr)
        else:
            sys.modules.pop(name, None)


def _forget_test_modules(test_file: Path) -> None:
    """Drop the graded test module from sys.modules so that pytest imports it again."""
    for key, mod in list(sys.modules.items()):
        if getattr(mod, "__file__", None) and Path(mod.__file__).resolve() == test_file:
            del sys.modules[key]


def run_graded(module: str, variant: Variant | None, stop_at_first_failure: bool,
               test_file: Path | None = None) -> _Outcome:
    """Run the graded tests of ``module`` against the variant (None: the real source)."""
    test_file = (test_file or GRADED / f"test_{module}.py").resolve()
    source = (SRC / f"{module}.py").read_text()
    outcome = _Outcome()
    if variant is not None:
        try:
            source = apply_variant(source, variant)
            compile(source, module, "exec")
        except SyntaxError as e:
            raise ValueError(f"{variant.name}: the variant does not compile: {e}") from e
    args = [str(test_file), "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
            "--no-header", "--tb=no", "-o", "addopts=--import-mode=importlib",
            "--rootdir", str(REPO)]
    if stop_at_first_failure:
        args.append("-x")
    old_handler = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(TIMEOUT_S)
    try:
        with _variant_installed(module, source):
            _forget_test_modules(test_file)
            with contextlib.redirect_stdout(io.StringIO()):
                code = pytest.main(args, plugins=[outcome])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_handler)
        _forget_test_modules(test_file)
    if code not in (0, 1) and not outcome.failed:
        outcome.failed.append(f"pytest exit code {code}")
    if not outcome.passed and not outcome.failed:
        outcome.failed.append("no test ran")
    return outcome


def load_variants(path: Path) -> types.ModuleType:
    """Import a variant file (MODULE, KIND, VARIANTS) by path."""
    spec = importlib.util.spec_from_file_location(f"_variants_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.VARIANTS = [v if isinstance(v, Variant) else Variant(**{**v, "replace": tuple(v.get("replace", ()))})
                    for v in mod.VARIANTS]
    names = [v.name for v in mod.VARIANTS]
    if len(names) != len(set(names)):
        raise ValueError(f"{path.name}: duplicate variant names")
    return mod


def variant_files(kind: str) -> list[Path]:
    return sorted(p for p in VARIANT_DIR.glob("*.py") if load_variants(p).KIND == kind)


def kill_report(path: Path) -> dict:
    """{"module", "total", "killed", "survivors": [names]} for one mutant file."""
    mod = load_variants(path)
    survivors = [v.name for v in mod.VARIANTS
                 if not run_graded(mod.MODULE, v, stop_at_first_failure=True).failed]
    return {"module": mod.MODULE, "file": path.name, "total": len(mod.VARIANTS),
            "killed": len(mod.VARIANTS) - len(survivors), "survivors": survivors}


if __name__ == "__main__":  # python tests/instructor/mutation.py [files...]: kill rates
    files = [Path(a) for a in sys.argv[1:]] or variant_files("mutants")
    for path in files:
        r = kill_report(path)
        print(f"{r['file']:32s} {r['module']:14s} killed {r['killed']}/{r['total']} "
              f"({100 * r['killed'] / r['total']:.0f} %)  survivors: {r['survivors']}")
