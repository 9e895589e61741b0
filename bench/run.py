"""trialwatch benchmark: the mirror against the registry simulator on loopback.

    .venv/bin/python bench/run.py                 # 20,000-study query, 1,000 WHO pages, urlwatch, 100,000 memory run
    .venv/bin/python bench/run.py --quick         # 2,000 studies / 200 pages, no 100,000 run (a smoke test)

The simulator runs in its own process (``trialwatch simulate``), so the CPU seconds
and memory reported are ours alone.  Every scenario runs in a fresh Python process,
measured from outside (wall time, user+system CPU seconds and peak RSS from
``wait4``), including interpreter start-up, for trialwatch, the floor and urlwatch
alike.  See bench/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PY = sys.executable
ALL_STATUSES = [
    "ACTIVE_NOT_RECRUITING", "COMPLETED", "ENROLLING_BY_INVITATION", "NOT_YET_RECRUITING", "RECRUITING",
    "SUSPENDED", "TERMINATED", "WITHDRAWN", "AVAILABLE", "NO_LONGER_AVAILABLE", "TEMPORARILY_NOT_AVAILABLE",
    "APPROVED_FOR_MARKETING", "WITHHELD", "UNKNOWN",
]
SEED = 7


# ----------------------------------------------------------------------------------------
# Scenario side (runs in a child process: `run.py --scenario NAME ...`, prints one JSON line)
# ----------------------------------------------------------------------------------------


def write_config(path: Path, db: Path, base: str, *, trials: list[str] = (), query: bool = False) -> Path:
    lines = [
        "[database]",
        f'path = "{db}"',
        "[sources.ctgov]",
        f'base_url = "{base}/api/v2"',
        "requests_per_second = 1000",
        "timeout = 120",
        "max_response_mb = 512",
        "run_budget = 36000",
        "[sources.who]",
        f'base_url = "{base}"',
        "requests_per_second = 1000",
        "concurrency = 4",
        "timeout = 60",
        "run_budget = 36000",
        "[watch]",
        f"trials = {json.dumps(list(trials))}",
    ]
    if query:
        lines += ["[[watch.queries]]", 'name = "everything"', f"status = {json.dumps(ALL_STATUSES)}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def checkpoint(store) -> None:
    """Fold the WAL in through the store when it can (its own write keeps the file's
    "verified" stamp); an older trialwatch measured with --code has no such method."""
    if hasattr(store, "checkpoint"):
        store.checkpoint()
    else:
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def scenario_refresh(args) -> dict:
    from pipeline.config import load_config
    from pipeline.refresh import refresh
    from pipeline.store import Store

    work = Path(args.work)
    db = work / "tw.db"
    trials = json.loads(Path(args.trials).read_text()) if args.trials else []
    config = load_config(write_config(work / f"{args.scenario}.toml", db, args.base, trials=trials,
                                      query=args.source == "ctgov"))
    store = Store(db)
    if args.reload:  # re-read every study although nothing changed (as a changed query would)
        store.conn.execute("UPDATE query_watches SET loaded_at = NULL")
    checkpoint(store)
    before = db_bytes(db)
    t0 = time.perf_counter()
    result = refresh(config, store, sources=[args.source], trigger="bench", full_sweep=args.full_sweep)
    wall = time.perf_counter() - t0
    checkpoint(store)
    after = db_bytes(db)
    c = result.counts
    out = {
        "items": c["fetched"] + c["missing"],
        "new": c["new"], "unchanged": c["unchanged"], "changed": c["changed"], "missing": c["missing"],
        "failed": c["failed"], "changes": c["changes"], "requests": c["requests"],
        "bytes": c["bytes"] or _who_bytes(store, result.run_id),
        "work_wall": wall, "db_growth": after - before, "db_size": after,
        "mirror": store.conn.execute("SELECT count(*) FROM trials WHERE source = ?", (args.source,)).fetchone()[0],
        "queries": {k: v for k, v in c.items() if k.startswith("queries_")},
    }
    store.close()
    return out


def _who_bytes(store, run_id: int) -> int:
    # WHO pages are not counted by the refresh; the simulator's byte count is read by the caller.
    return 0


def scenario_floor_ctgov(args) -> dict:
    """Fetch the same /studies pages, parse with orjson, hash each study: nothing else."""
    import hashlib

    import httpx
    import orjson

    import gc

    gc.disable()  # as fast as it gets: no collector passes over the page's objects
    params = {"filter.overallStatus": ",".join(ALL_STATUSES), "pageSize": "1000", "format": "json",
              "countTotal": "true"}
    n = nbytes = 0
    t0 = time.perf_counter()
    with httpx.Client(timeout=120, headers={"Accept-Encoding": "gzip, deflate"}) as http:
        token = None
        while True:
            p = dict(params)
            if token:
                p["pageToken"] = token
            body = http.get(f"{args.base}/api/v2/studies", params=p).content
            nbytes += len(body)
            page = orjson.loads(body)
            for study in page["studies"]:
                hashlib.sha256(orjson.dumps(study)).digest()
                n += 1
            token = page.get("nextPageToken")
            del page
            if not token:
                break
    return {"items": n, "bytes": nbytes, "work_wall": time.perf_counter() - t0, "db_growth": 0, "requests": 0}


def scenario_floor_who(args) -> dict:
    """Fetch the same WHO pages (4 at a time), parse with selectolax, hash the text: nothing else."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from selectolax.lexbor import LexborHTMLParser

    ids = json.loads(Path(args.trials).read_text())
    n = nbytes = 0
    t0 = time.perf_counter()
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=8)) as http:
        def get(trial_id):
            return http.get(f"{args.base}/Trial2.aspx", params={"TrialID": trial_id}).content

        with ThreadPoolExecutor(4) as pool:
            for body in pool.map(get, ids):
                nbytes += len(body)
                tree = LexborHTMLParser(body)
                hashlib.sha256(tree.body.text().encode()).digest()
                n += 1
    return {"items": n, "bytes": nbytes, "work_wall": time.perf_counter() - t0, "db_growth": 0, "requests": n}


SCENARIOS = {"refresh": scenario_refresh, "floor_ctgov": scenario_floor_ctgov, "floor_who": scenario_floor_who}


# ----------------------------------------------------------------------------------------
# Orchestrator side
# ----------------------------------------------------------------------------------------


def serve_simulator(port: int, size: int, change_rate: float) -> None:
    """``trialwatch simulate`` in this process (its handler sets TCP_NODELAY itself)."""
    from pipeline.simulator import server as sim_server

    sim_server.serve(port=port, size=size, seed=SEED, change_rate=change_rate)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, method: str = "GET"):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())


class Simulator:
    """``trialwatch simulate`` in its own process."""

    def __init__(self, size: int, change_rate: float):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [PY, str(HERE / "run.py"), "--serve-sim", "--port", str(self.port), "--size", str(size),
             "--change-rate", str(change_rate)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300
        while True:
            try:
                http_json(self.base + "/api/v2/version")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the simulator did not start")
                time.sleep(0.2)

    def cpu(self) -> float:
        """The simulator process's CPU seconds so far (from /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return 0.0

    def stats(self) -> dict:
        return http_json(self.base + "/_sim/stats")

    def advance(self, days: int = 1) -> list:
        return http_json(f"{self.base}/_sim/advance?days={days}", "POST")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure(cmd: list[str], *, sim: Simulator | None = None, cwd: Path = REPO) -> dict:
    """Run ``cmd``: wall time, and the child's own CPU (user+sys) and peak RSS from ``wait4``."""
    sim_cpu0 = sim.cpu() if sim else 0.0
    sent0 = sim.stats().get("bytes_sent", 0) if sim else 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, errors = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
    result: dict = {}
    for line in text.splitlines()[::-1]:
        if line.startswith("{") and line.endswith("}"):
            result = json.loads(line)
            break
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {errors[-2000:]}")
    result["wall"] = wall
    result["cpu"] = usage.ru_utime + usage.ru_stime
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["sim_cpu"] = (sim.cpu() - sim_cpu0) if sim else 0.0
    result["sim_bytes_sent"] = (sim.stats().get("bytes_sent", 0) - sent0) if sim else 0
    return result




#: The trialwatch checkout the scenarios run (``--code``); the simulator is always this one's.
CODE: Path = REPO


def compile_code(code: Path) -> None:
    """Byte-compile the checkout under test and this bench before measuring.

    Every scenario is a fresh interpreter.  An installed trialwatch imports cached
    bytecode, but where ``PYTHONDONTWRITEBYTECODE`` is set (as on the machines this was
    measured on) each child compiled every module it imported from source, ~0.07 CPU s
    a process that is not trialwatch's work.  Explicit compilation writes the cache
    anyway; both sides of a ``--code`` comparison get it.
    """
    subprocess.run([PY, "-m", "compileall", "-q", str(code / "pipeline"), str(HERE)], check=True,
                   stdout=subprocess.DEVNULL)


def scenario_cmd(name: str, base: str, work: Path, **opts) -> list[str]:
    cmd = [PY, str(HERE / "run.py"), "--scenario", name, "--base", base, "--work", str(work), "--code", str(CODE)]
    for key, value in opts.items():
        if value is True:
            cmd.append("--" + key.replace("_", "-"))
        elif value not in (None, False):
            cmd += ["--" + key.replace("_", "-"), str(value)]
    return cmd


def corpus_size_for(nct_target: int) -> int:
    from pipeline.simulator.corpus import corpus_ids

    size = int(nct_target / 0.8) + 16
    while sum(1 for _, reg in corpus_ids(size) if reg == "ClinicalTrials.gov") > nct_target:
        size -= 1
    return size


def ensure_urlwatch(venv: Path) -> Path | None:
    exe = venv / "bin" / "urlwatch"
    if exe.exists():
        return exe
    print(f"installing urlwatch into {venv} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "urlwatch"], capture_output=True, text=True)
    if r.returncode != 0 or not exe.exists():
        print(f"urlwatch could not be installed: {r.stderr[-500:]}", file=sys.stderr)
        return None
    return exe


def urlwatch_cmd(exe: Path, base: str, ids: list[str], work: Path) -> list[str]:
    urls = work / "urls.yaml"
    docs = [f"name: {t}\nurl: {base}/Trial2.aspx?TrialID={t}\n" for t in ids]
    urls.write_text("---\n".join(docs))
    return [str(exe), "--urls", str(urls), "--cache", str(work / "cache.db"), "--config", str(work / "urlwatch.yaml"),
            "--hooks", str(work / "hooks.py")]


def fmt_row(name: str, r: dict, floor: dict | None, peer: dict | None) -> list[str]:
    items = r.get("items", 0)
    wall = r["wall"]
    mb = (r.get("bytes") or r.get("sim_bytes_sent") or 0) / 1e6
    def ratio(other, key):
        # per-study time relative to the other's; the floor by work time (both have it),
        # urlwatch by process wall time (all we can measure of it, and ours alike)
        if not other or not items or not other.get("items") or not r.get(key) or not other.get(key):
            return "-"
        return f"{(r[key] / items) / (other[key] / other['items']):.2f}x"
    growth = r.get("db_growth")
    mirror = r.get("mirror") or items
    per_k = f"{growth / mirror * 1000 / 1024:.2f}" if growth is not None and mirror else "-"
    work = r.get("work_wall")
    return [
        name, f"{items:,}", f"{wall:.1f}", f"{work:.1f}" if work is not None else "-",
        f"{items / wall:,.0f}" if items else "-", f"{mb / wall:.1f}",
        f"{r.get('cpu', 0):.1f}", f"{items / r['cpu']:,.0f}" if r.get("cpu") and items else "-",
        f"{r.get('peak_rss_mb', 0):.0f}",
        f"{(growth or 0) / 1e6:+.2f}" if growth is not None else "-", per_k, ratio(floor, "work_wall"),
        ratio(floor, "cpu"), ratio(peer, "wall"),
        f"{r.get('sim_cpu', 0):.1f}",
    ]


HEADERS = ["scenario", "studies", "wall s", "work s", "studies/s", "MB/s", "CPU s", "studies/CPU s", "peak MB",
           "DB growth MB", "KB/1k trials", "vs floor", "vs floor CPU", "vs urlwatch", "sim CPU s"]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    return "\n".join([line(HEADERS), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows)])


def orchestrate(args) -> None:
    studies = 2000 if args.quick else args.studies
    pages = 200 if args.quick else args.who_pages
    big = None if (args.quick or args.no_big) else args.big
    work = Path(tempfile.mkdtemp(prefix="twbench-"))
    results: dict[str, dict] = {}
    rows: list[list[str]] = []
    try:
        size = corpus_size_for(studies)
        print(f"simulator: {size} trials ({studies} on ClinicalTrials.gov), change rate {args.change_rate}",
              file=sys.stderr)
        sim = Simulator(size, args.change_rate)
        try:
            from pipeline.simulator.corpus import corpus_ids

            ids = [t for t, _ in corpus_ids(size)][:pages]
            trials_file = work / "who_ids.json"
            trials_file.write_text(json.dumps(ids))
            run = lambda name, **o: measure(scenario_cmd(name, sim.base, work, **o), sim=sim)
            # Warm the simulator's caches first, so no row pays for the simulator
            # building its studies and pages (it caches them once built).
            print("warming the simulator (every study and page once, not measured) ...", file=sys.stderr)
            run("floor_ctgov")
            run("floor_who", trials=trials_file)

            steps = [
                ("1. ctgov first load", lambda: run("refresh", source="ctgov")),
                ("2. ctgov refresh, nothing changed", lambda: run("refresh", source="ctgov")),
                ("2b. ctgov re-read all, nothing changed", lambda: run("refresh", source="ctgov", reload=True)),
                ("2c. ctgov full sweep of IDs", lambda: run("refresh", source="ctgov", full_sweep=True)),
            ]
            for name, fn in steps:
                print(f"running {name} ...", file=sys.stderr)
                results[name] = fn()
            events = sim.advance(1)
            print(f"simulator advanced one day: {len(events)} events", file=sys.stderr)
            # Warm the simulator for row 3 as for the others: the same refresh on a copy
            # of the database (not measured) asks for the same window pages first.
            warm = work / "warm"
            warm.mkdir()
            for suffix in ("", "-wal"):
                if (work / f"tw.db{suffix}").exists():
                    shutil.copy(work / f"tw.db{suffix}", warm / f"tw.db{suffix}")
            measure(scenario_cmd("refresh", sim.base, warm, source="ctgov"), sim=sim)
            shutil.rmtree(warm, ignore_errors=True)
            name = "3. ctgov refresh, 2% changed"
            print(f"running {name} ...", file=sys.stderr)
            results[name] = run("refresh", source="ctgov")
            results[name]["sim_events"] = len(events)
            results[name]["sim_events_ctgov"] = sum(1 for e in events if e.get("source") in ("ctgov", "both"))
            print("running 5. floor (ctgov) ...", file=sys.stderr)
            results["5a. floor: ctgov pages, orjson + sha256"] = run("floor_ctgov")
            for name, o in (("4. WHO pages, first fetch", {}), ("4b. WHO pages, re-check", {})):
                print(f"running {name} ...", file=sys.stderr)
                r = run("refresh", source="who", trials=trials_file, **o)
                r["bytes"] = r["sim_bytes_sent"]
                results[name] = r
            print("running 5. floor (WHO) ...", file=sys.stderr)
            results["5b. floor: WHO pages, selectolax + sha256"] = run("floor_who", trials=trials_file)
            if not args.no_urlwatch:
                exe = ensure_urlwatch(Path(args.urlwatch_venv))
                if exe:
                    uw = work / "urlwatch"
                    uw.mkdir()
                    cmd = urlwatch_cmd(exe, sim.base, ids, uw)
                    for name in ("6. urlwatch, first fetch", "6b. urlwatch, re-check"):
                        print(f"running {name} ...", file=sys.stderr)
                        r = measure(cmd, sim=sim, cwd=uw)
                        r["items"] = len(ids)
                        r["bytes"] = r["sim_bytes_sent"]
                        r["db_growth"] = None
                        results[name] = r
        finally:
            sim.stop()
        if big:
            size_big = corpus_size_for(big)
            print(f"simulator: {size_big} trials ({big} on ClinicalTrials.gov)", file=sys.stderr)
            sim = Simulator(size_big, args.change_rate)
            try:
                big_work = work / "big"
                big_work.mkdir()
                name = f"1x. ctgov first load, {big:,} studies"
                print(f"running {name} ...", file=sys.stderr)
                print("warming the simulator ...", file=sys.stderr)
                measure(scenario_cmd("floor_ctgov", sim.base, big_work), sim=sim)
                results[name] = measure(scenario_cmd("refresh", sim.base, big_work, source="ctgov"), sim=sim)
            finally:
                sim.stop()
        floor_ct = results.get("5a. floor: ctgov pages, orjson + sha256")
        floor_who = results.get("5b. floor: WHO pages, selectolax + sha256")
        uw_first, uw_check = results.get("6. urlwatch, first fetch"), results.get("6b. urlwatch, re-check")
        for name, r in results.items():
            who = "WHO" in name or "urlwatch" in name
            floor = floor_who if who else floor_ct
            peer = (uw_check if "re-check" in name else uw_first) if who else None
            if name.startswith("5") or name.startswith("6") or name.startswith(("2.", "2c.")):
                floor = None  # a floor row, urlwatch (no work time) or a row with no studies to compare
                peer = peer if name.startswith("5b") else None
            rows.append(fmt_row(name, r, floor, peer))
        print(table(rows))
        notes = []
        r3 = results.get("3. ctgov refresh, 2% changed")
        if r3:
            notes.append(f"2% changed: simulator applied {r3['sim_events']} events ({r3['sim_events_ctgov']} visible on "
                         f"ClinicalTrials.gov); trialwatch fetched {r3['items']}, recorded {r3['changed']} changed "
                         f"trials, {r3['missing']} missing, {r3['changes']} field changes in {r3['requests']} requests")
        r2 = results.get("2. ctgov refresh, nothing changed")
        if r2:
            notes.append(f"nothing changed: {r2['requests']} request(s), queries {r2.get('queries')}, DB growth "
                         f"{r2['db_growth']} bytes")
        r1, r1x = results.get("1. ctgov first load"), next((v for k, v in results.items() if k.startswith("1x.")), None)
        if r1 and r1x:
            notes.append(f"memory: peak {r1['peak_rss_mb']:.0f} MB at {r1['items']:,} studies, "
                         f"{r1x['peak_rss_mb']:.0f} MB at {r1x['items']:,}")
        for n in notes:
            print("- " + n)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(results, indent=2))
    finally:
        if args.keep:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", type=int, default=20000, help="ClinicalTrials.gov studies in the query (default 20000)")
    ap.add_argument("--big", type=int, default=100000, help="studies of the memory run (default 100000)")
    ap.add_argument("--no-big", action="store_true", help="skip the large memory run")
    ap.add_argument("--who-pages", type=int, default=1000, help="WHO pages (default 1000)")
    ap.add_argument("--change-rate", type=float, default=0.02, help="share of trials changed per simulated day")
    ap.add_argument("--quick", action="store_true", help="small sizes, no large run")
    ap.add_argument("--no-urlwatch", action="store_true", help="skip urlwatch")
    ap.add_argument("--urlwatch-venv", default=str(HERE / ".venv-urlwatch"), help="venv urlwatch is installed into")
    ap.add_argument("--json-out", help="also write the raw figures here")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--code", help="measure the trialwatch in this checkout (e.g. an older commit's worktree); "
                    "the simulator is this one's")
    # scenario (child) mode
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--source", help=argparse.SUPPRESS)
    ap.add_argument("--trials", help=argparse.SUPPRESS)
    ap.add_argument("--reload", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--full-sweep", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--serve-sim", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_sim:
        sys.path.insert(0, str(REPO))
        serve_simulator(args.port, args.size, args.change_rate)
        return
    if args.scenario:
        sys.path.insert(0, str(Path(args.code) if args.code else REPO))
        out = SCENARIOS[args.scenario](args)
        import resource

        out["own_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return
    global CODE
    CODE = Path(args.code).resolve() if args.code else REPO
    print(f"measuring the trialwatch in {CODE}", file=sys.stderr)
    compile_code(CODE)
    orchestrate(args)


if __name__ == "__main__":
    main()
