"""Time the autograder on generated submissions of this repository.

Makes N submissions (cycling through: the solution, the release stub, and the solution
with one student function replaced by the stub) under a temp folder, grades them with
`kwslab.course.autograde.grade_all`, and prints seconds per submission and for the batch. Targets:
<= 30 s per submission, <= 15 min for 100 on the 2-core reference machine.

The load average (1 min) is printed before and after: on a shared machine the times are
inflated by whatever else runs; the CPU seconds of the batch (user + system, this process
and all its children) are the load-independent number.

Usage: python benchmarks/bench_grading.py [--n 100] [--jobs 1] [--sandbox strict]
"""
import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from kwslab import course
from kwslab.course import autograde as grading

REPO = Path(__file__).resolve().parents[1]


def make_submissions(root: Path, n: int) -> None:
    files = course.student_files(REPO)
    kinds = ["solution", "release"] + [f"stub:{f}" for f in files]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        for f in files:
            text = (REPO / f).read_text()
            if kind == "release" or kind == f"stub:{f}":
                text, _ = course.strip_solutions(text, f)
            dst = root / f"s{i:03d}" / f
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="number of submissions")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--sandbox", default="strict", choices=("strict", "userns", "none"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kwslab-bench-"))
    try:
        make_submissions(tmp / "submissions", args.n)
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        results = grading.grade_all(REPO, tmp / "submissions", tmp / "grades",
                                    jobs=args.jobs, mode=args.sandbox)
        total = time.perf_counter() - start
        load_after = os.getloadavg()[0]
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime + own.ru_utime + own.ru_stime
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per = [r.seconds for r in results]
    print(f"sandbox: {results[0].sandbox}")
    print(f"{len(results)} submissions, jobs={args.jobs}: {total:.1f} s total "
          f"(includes collecting the instructor suite once); per submission: "
          f"mean {sum(per) / len(per):.1f} s, max {max(per):.1f} s")
    print(f"CPU: {cpu:.0f} s in all ({cpu / len(results):.1f} s per submission); load "
          f"average (1 min) {load_before:.2f} before, {load_after:.2f} after, on "
          f"{os.cpu_count()} cores")
    print(f"scores: {sorted({r.score for r in results})} of {results[0].max_score:g}")


if __name__ == "__main__":
    main()
