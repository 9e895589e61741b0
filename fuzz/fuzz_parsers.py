"""Fuzz the WHO and ClinicalTrials.gov parsers (atheris if installed, else hypothesis).

    python fuzz/fuzz_parsers.py --seconds 300            # atheris when importable, else hypothesis
    python fuzz/fuzz_parsers.py --seconds 300 --engine hypothesis

Every input goes to one of the extractors, chosen by its first byte:

0  ``parse_trial_page`` (a WHO Trial2.aspx page)      2  ``parse_studies_page`` + ``normalize_study``
1  ``parse_study`` + ``normalize_study``               3  ``parse_history_version`` + ``normalize_study``

The only exceptions allowed out are ``ParseError`` and ``BlockedPageError``; a record
that comes back must be storable (the store's JSON encoding and the content hash must
accept it, and it must diff empty against itself).  Anything else is a crash: atheris
stops and writes the input to ``crash-*``; the hypothesis engine prints the shrunk input.

Seeds are the real recorded responses in ../shared/fixtures (or $TRIALWATCH_FIXTURES)
when present, plus a few built-in ones.  Exit status: 0 when no crash was found.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

TARGETS = ("who", "ctgov_study", "ctgov_page", "ctgov_history")


def _imports():
    from pipeline.diff import content_hash, diff_records
    from pipeline.errors import BlockedPageError, ParseError
    from pipeline.sources.ctgov.parse import normalize_study, parse_history_version, parse_studies_page, parse_study
    from pipeline.sources.who.page import parse_trial_page
    from pipeline.codec import dumps

    return locals()


def make_target(mods):
    allowed = (mods["ParseError"], mods["BlockedPageError"])

    def check(record):
        if record is None:
            return
        assert isinstance(record, dict), type(record)
        mods["dumps"](record)
        mods["content_hash"](record)
        assert mods["diff_records"](record, record) == []

    def one_input(data: bytes) -> None:
        if not data:
            return
        which, body = data[0] % 4, data[1:]
        try:
            if which == 0:
                check(mods["parse_trial_page"](body, "NCT04252118"))
            elif which == 1:
                check(mods["normalize_study"](mods["parse_study"](body)))
            elif which == 2:
                studies, _token, _total = mods["parse_studies_page"](body)
                for study in studies:
                    try:
                        check(mods["normalize_study"](study))
                    except mods["ParseError"]:
                        pass
            else:
                _version, study = mods["parse_history_version"](body)
                check(mods["normalize_study"](study))
        except allowed:
            pass

    return one_input


def seeds() -> list[bytes]:
    out = [
        b"\x00<html><body><span id='DataList3_ctl01_TrialIDLabel'>NCT04252118</span></body></html>",
        b'\x01{"protocolSection":{"identificationModule":{"nctId":"NCT04252118","briefTitle":"T"}}}',
        b'\x02{"studies":[{"protocolSection":{"identificationModule":{"nctId":"NCT04252118"}}}],"nextPageToken":"x"}',
        b'\x03{"studyVersion":0,"study":{"protocolSection":{"identificationModule":{"nctId":"NCT04252118"}}}}',
    ]
    root = Path(os.environ.get("TRIALWATCH_FIXTURES", HERE.parent.parent / "shared" / "fixtures"))
    if root.is_dir():
        for p in sorted((root / "who" / "html").glob("*.html")):
            out.append(b"\x00" + p.read_bytes())
        for p in sorted((root / "ctgov" / "v2").glob("NCT*.json"))[:8]:
            out.append(b"\x01" + p.read_bytes())
        for p in sorted((root / "ctgov" / "v2" / "lists").glob("*.json")):
            out.append(b"\x02" + p.read_bytes())
        for p in sorted((root / "ctgov" / "history").rglob("*.json")):
            out.append(b"\x03" + p.read_bytes())
    return out


def run_atheris(seconds: int) -> int:
    import atheris

    with atheris.instrument_imports(include=["pipeline"]):
        mods = _imports()
    target = make_target(mods)
    corpus = Path(tempfile.mkdtemp(prefix="trialwatch-fuzz-"))
    for i, seed in enumerate(seeds()):
        (corpus / f"seed{i:03d}").write_bytes(seed)
    print(f"atheris: {seconds}s, seed corpus {corpus}", flush=True)
    argv = [sys.argv[0], str(corpus), f"-max_total_time={seconds}", "-max_len=200000", "-rss_limit_mb=4096",
            "-timeout=20", "-print_final_stats=1"]
    atheris.Setup(argv, target)
    atheris.Fuzz()  # exits the process: non-zero with a crash-* file on a crash
    return 0


def run_hypothesis(seconds: int) -> int:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    mods = _imports()
    target = make_target(mods)
    seed_list = seeds()

    @st.composite
    def inputs(draw):
        if draw(st.booleans()):
            return draw(st.binary(max_size=4000))
        data = bytearray(draw(st.sampled_from(seed_list)))
        for _ in range(draw(st.integers(1, 8))):
            pos = draw(st.integers(1, len(data)))
            op = draw(st.integers(0, 3))
            if op == 0:
                del data[pos:pos + draw(st.integers(1, 500))]
            elif op == 1:
                data[pos:pos] = draw(st.binary(min_size=1, max_size=40))
            elif op == 2:
                data[pos:pos] = draw(st.sampled_from([b"<", b">", b"\"", b"{", b"}", b"[", b"]", b"\\", b"\x00",
                                                      b"&#0;", b"<br>", b"</span>", b"\xff", b"1e999", b"null"]))
            else:
                data[pos:] = data[pos:pos + draw(st.integers(0, 100))]
        return bytes(data)

    deadline = time.monotonic() + seconds
    rounds = examples = 0

    @settings(max_examples=2000, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(inputs())
    def fuzz(data):
        nonlocal examples
        examples += 1
        target(data)

    print(f"hypothesis: {seconds}s, {len(seed_list)} seeds", flush=True)
    while time.monotonic() < deadline:
        fuzz()  # raises (after shrinking) on a crash
        rounds += 1
    print(f"hypothesis: {examples} inputs in {rounds} rounds, no crash found", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=180, help="time budget (default 180)")
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    args = parser.parse_args()
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "hypothesis"
    return run_atheris(args.seconds) if engine == "atheris" else run_hypothesis(args.seconds)


if __name__ == "__main__":
    sys.exit(main())
