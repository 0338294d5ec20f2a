"""Run time of every notebook, smoke (quick=True) and/or full mode, with papermill.

    python benchmarks/bench_notebooks.py [--mode quick|full|both] [--data DIR] [--out DIR]

Notebooks run in order from notebooks/ with a fresh run_dir and feature cache under --out
(notebook 3 trains the checkpoint that 4-6 load; notebook 4 never writes the deploy folders
here). Prints one line per notebook and mode, and the total. Targets: all six in smoke mode
<= 8 minutes on a 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import papermill

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_all(quick: bool, data_dir: str | None, out: Path) -> dict[str, float]:
    seconds = {}
    for nb in sorted(NOTEBOOKS.glob("[0-9]_*.ipynb")):
        params = {"quick": quick, "data_dir": data_dir}
        if nb.name[0] in "3456":
            params |= {"run_dir": str(out / "run"), "cache_dir": str(out / "cache")}
        if nb.name.startswith("4_"):
            params["deploy"] = False
        t0 = time.perf_counter()
        papermill.execute_notebook(str(nb), str(out / nb.name), parameters=params, kernel_name="python3",
                                   cwd=str(NOTEBOOKS), progress_bar=False)
        seconds[nb.stem] = round(time.perf_counter() - t0, 1)
        print(f"{'quick' if quick else 'full '}  {nb.stem:<20} {seconds[nb.stem]:>7.1f} s", flush=True)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("quick", "full", "both"), default="quick")
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=None, help="folder for outputs (default: a temp folder)")
    a = ap.parse_args()
    result = {}
    with tempfile.TemporaryDirectory(prefix="kwslab-nb-") as tmp:
        root = Path(a.out) if a.out else Path(tmp)
        for mode in (("quick", "full") if a.mode == "both" else (a.mode,)):
            out = root / mode
            out.mkdir(parents=True, exist_ok=True)
            seconds = run_all(mode == "quick", a.data, out)
            result[mode] = {"seconds": seconds, "total_s": round(sum(seconds.values()), 1)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
