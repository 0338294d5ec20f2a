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
import functools
import importlib
import importlib.util
import inspect
import io
import signal
import sys
import textwrap
import types
import warnings
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
    function: object = None
    """A replacement callable for ``target`` (set A's form): the real module is used with
    this attribute patched, as ``monkeypatch.setattr`` would."""


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

    def depth(i: int) -> int:
        return len(lines[i]) - len(lines[i].lstrip())

    others = [i for i in range(start + 1, begin)
              if lines[i].lstrip().startswith(("def ", "class ")) and depth(i) <= depth(start)]
    if others:
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


@dataclass
class Outcome:
    """Names of the graded tests that passed and failed (a mutant run stops at a failure)."""

    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _timeout(signum, frame):
    raise TimeoutError(f"variant ran longer than {TIMEOUT_S} s")


@contextlib.contextmanager
def installed(module: str, variant: Variant | None, source: str | None = None):
    """kwslab.<module> as the variant (or the given source) has it, during the block."""
    import kwslab

    name = f"kwslab.{module}"
    real = importlib.import_module(name)
    if variant is not None and variant.function is not None:
        original = getattr(real, variant.target)
        setattr(real, variant.target, variant.function)
        try:
            yield real
        finally:
            setattr(real, variant.target, original)
        return
    if source is None:
        source = (SRC / f"{module}.py").read_text()
    if variant is not None:
        source = apply_variant(source, variant)
    try:
        yield load_module(module, source)
    finally:
        sys.modules[name] = real
        setattr(kwslab, module, real)


def graded_tests(module: str, test_file: Path | None = None) -> list[tuple[str, object]]:
    """(test id, zero-argument callable) for every graded test of module, in file order.

    The test file is imported afresh, so it binds whatever ``kwslab.<module>`` is installed.
    Graded tests take no fixtures; ``pytest.mark.parametrize`` is expanded.
    """
    test_file = test_file or GRADED / f"test_{module}.py"
    spec = importlib.util.spec_from_file_location(f"_graded_{module}", test_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    tests = []
    for name, fn in vars(mod).items():
        if not (name.startswith("test_") and callable(fn)):
            continue
        params = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
        argnames = list(inspect.signature(fn).parameters)
        if not params:
            if argnames:
                raise TypeError(f"{test_file.name}::{name} takes fixtures {argnames}; graded "
                                "tests must be plain functions for the mutation harness")
            tests.append((name, fn))
            continue
        names, values = params[0].args[:2]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        for i, value in enumerate(values):
            value = getattr(value, "values", value)  # pytest.param
            value = value if len(names) > 1 else (value,)
            tests.append((f"{name}[{i}]", functools.partial(fn, **dict(zip(names, value)))))
    return tests


def usage(module: str) -> dict[str, set[str]]:
    """Solution target -> ids of the graded tests that call it (directly or not)."""
    real = importlib.import_module(f"kwslab.{module}")
    used: dict[str, set[str]] = {}
    current = [None]

    def spy(target, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            used.setdefault(target, set()).add(current[0])
            return fn(*args, **kwargs)
        return wrapper

    patches = []
    for target in solution_targets(module) + list(EXTRA_TARGETS.get(module, ())):
        owner_name, _, attr = target.rpartition(".")
        owner = getattr(real, owner_name) if owner_name else real
        raw = inspect.getattr_static(owner, attr)
        fn = raw.__func__ if isinstance(raw, staticmethod) else raw
        wrapped = spy(target, fn)
        patches.append((owner, attr, raw))
        setattr(owner, attr, staticmethod(wrapped) if isinstance(raw, staticmethod) else wrapped)
    try:
        for test_id, test in graded_tests(module):
            current[0] = test_id
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                test()
    finally:
        for owner, attr, raw in patches:
            setattr(owner, attr, raw)
    return used


EXTRA_TARGETS = {"quantize": ("fake_quantize",)}
"""Functions without a solution block that set A's mutants replace."""


def solution_targets(module: str) -> list[str]:
    """``function`` or ``Class.method`` of every solution block of the module, in order."""
    targets, owner = [], None
    for line in (SRC / f"{module}.py").read_text().splitlines():
        stripped = line.lstrip()
        if stripped.startswith("class "):
            owner = stripped[6:].split("(")[0].split(":")[0]
        elif stripped.startswith("def "):
            name = stripped[4:].split("(")[0]
            current = f"{owner}.{name}" if line.startswith("    ") and owner else name
        elif stripped == BEGIN:
            targets.append(current)
    return targets


def run_graded(module: str, variant: Variant | None, stop_at_first_failure: bool,
               only: set[str] | None = None, source: str | None = None) -> Outcome:
    """Run the graded tests of module (those in ``only``, if given) against the variant
    (or against ``source``, e.g. the student release)."""
    outcome = Outcome()
    old_handler = signal.signal(signal.SIGALRM, _timeout)
    try:
        with installed(module, variant, source):
            for test_id, test in graded_tests(module):
                if only is not None and test_id not in only:
                    continue
                signal.alarm(TIMEOUT_S)
                try:
                    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                        warnings.simplefilter("ignore")
                        test()
                    outcome.passed.append(test_id)
                except (Exception, pytest.fail.Exception) as e:  # what pytest counts as failed
                    outcome.failed.append(f"{test_id}: {type(e).__name__}")
                    if stop_at_first_failure:
                        break
                finally:
                    signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old_handler)
    return outcome


def stub_source(module: str) -> str:
    """The student release of module: every solution block is raise NotImplementedError()."""
    source = (SRC / f"{module}.py").read_text()
    for target in solution_targets(module):
        source = apply_variant(source, Variant(f"stub:{target}", target,
                                               "raise NotImplementedError()"))
    return source


def load_variants(path: Path) -> types.ModuleType:
    """Import a variant file (MODULE, KIND, VARIANTS) by path."""
    spec = importlib.util.spec_from_file_location(f"_variants_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.VARIANTS = [v if isinstance(v, Variant)
                    else Variant(**{**v, "replace": tuple(v.get("replace", ()))})
                    for v in mod.VARIANTS]
    names = [v.name for v in mod.VARIANTS]
    if len(names) != len(set(names)):
        raise ValueError(f"{path.name}: duplicate variant names")
    return mod


def variant_files(kind: str) -> list[Path]:
    return sorted(p for p in VARIANT_DIR.glob("*.py") if load_variants(p).KIND == kind)


def kill_report(path: Path, used: dict[str, set[str]] | None = None) -> dict:
    """{"module", "file", "total", "killed", "survivors"} for one mutant file."""
    mod = load_variants(path)
    used = usage(mod.MODULE) if used is None else used
    survivors = [v.name for v in mod.VARIANTS
                 if not run_graded(mod.MODULE, v, True, _tests_for(v, used)).failed]
    return {"module": mod.MODULE, "file": path.name, "total": len(mod.VARIANTS),
            "killed": len(mod.VARIANTS) - len(survivors), "survivors": survivors}


def _tests_for(variant: Variant, used: dict[str, set[str]]) -> set[str] | None:
    """Only the tests that reach the variant's target can tell it apart (None: all)."""
    if variant.replace or variant.target is None:
        return None
    return used.get(variant.target, set())


if __name__ == "__main__":  # python tests/instructor/mutation.py [files...]: kill rates
    files = [Path(a) for a in sys.argv[1:]] or variant_files("mutants")
    cache: dict[str, dict] = {}
    for path in files:
        module = load_variants(path).MODULE
        r = kill_report(path, cache.setdefault(module, usage(module)))
        print(f"{r['file']:24s} killed {r['killed']}/{r['total']} "
              f"({100 * r['killed'] / r['total']:.1f} %)  survivors: {r['survivors']}")
