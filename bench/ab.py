"""A/B: rows 1, 4 and 4b of bench/run.py for two checkouts, alternating, on one simulator.

    .venv/bin/python bench/ab.py --code /path/to/older/checkout --rounds 3

Machine noise moves whole bench runs by a few per cent, as much as the differences
worth measuring; this runs the first load (row 1), the WHO first fetch on the loaded
database (row 4) and its re-check (row 4b) for each checkout in turn, several rounds,
the order swapped every round, against one warm simulator, and prints each run's CPU
seconds and the median and minimum per checkout.  The scenarios are bench/run.py's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import run as bench  # noqa: E402  (bench/run.py)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--code", required=True, help="the other checkout (e.g. a worktree of an older commit)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--studies", type=int, default=20000)
    ap.add_argument("--who-pages", type=int, default=1000)
    args = ap.parse_args()
    codes = {"other": Path(args.code).resolve(), "this": bench.REPO}
    for code in codes.values():
        bench.compile_code(code)
    work = Path(tempfile.mkdtemp(prefix="twab-"))
    size = bench.corpus_size_for(args.studies)
    sim = bench.Simulator(size, 0.02)
    try:
        from pipeline.simulator.corpus import corpus_ids

        trials = work / "who_ids.json"
        trials.write_text(json.dumps([t for t, _ in corpus_ids(size)][: args.who_pages]))

        def run(code: Path, folder: Path, **opts) -> float:
            bench.CODE = code
            return bench.measure(bench.scenario_cmd("refresh", sim.base, folder, **opts), sim=sim)["cpu"]

        bench.measure(bench.scenario_cmd("floor_ctgov", sim.base, work), sim=sim)  # warm the simulator
        bench.measure(bench.scenario_cmd("floor_who", sim.base, work, trials=trials), sim=sim)
        cpu: dict[str, dict[str, list[float]]] = {name: {"1": [], "4": [], "4b": []} for name in codes}
        for i in range(args.rounds):
            order = list(codes.items()) if i % 2 == 0 else list(codes.items())[::-1]
            for name, code in order:
                folder = work / f"{name}{i}"
                folder.mkdir()
                cpu[name]["1"].append(run(code, folder, source="ctgov"))
                cpu[name]["4"].append(run(code, folder, source="who", trials=trials))
                cpu[name]["4b"].append(run(code, folder, source="who", trials=trials))
                shutil.rmtree(folder)
                print(f"round {i + 1} {name}: " + ", ".join(f"row {k} {v[-1]:.2f} CPU s" for k, v in cpu[name].items()),
                      flush=True)
    finally:
        sim.stop()
        shutil.rmtree(work, ignore_errors=True)
    for name, code in codes.items():
        rows = cpu[name]
        row1 = statistics.median(rows["1"])
        print(f"{name} ({code}): " + ", ".join(
            f"row {k} median {statistics.median(v):.2f} min {min(v):.2f} CPU s" for k, v in rows.items())
            + f"; row 1 {args.studies / row1:,.0f} studies per CPU s (median)")


if __name__ == "__main__":
    main()
