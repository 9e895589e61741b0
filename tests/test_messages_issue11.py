"""Issue 11 messages, through the real CLI (CliRunner) on the simulator's real sockets.

* an ID that never existed: "not found in the registry" (never "no longer returned"),
  and named in the refresh summary;
* ``show ChiCTR... --source ctgov``: ChiCTR trials are not on ClinicalTrials.gov;
* ``extract --source who`` on a file that is not a WHO page names the file.
"""

from __future__ import annotations

from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.simulator import Corpus, SimulatorServer

from test_faults_sim import write_config

GHOST = "NCT99999999"


def run(config, *args):
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def test_an_id_that_never_existed_is_not_found_in_the_registry(tmp_path):
    corpus = Corpus(size=3, seed=1)
    with SimulatorServer(corpus) as server:
        config = write_config(tmp_path, server, [*corpus.ids, GHOST])
        result = run(config.path, "refresh", "--no-progress", "--source", "ctgov")
        assert result.exit_code == 0, result.output
        assert "missing 1, failed 0 (not found in the registry: NCT99999999 (ctgov))" in result.output
        shown = run(config.path, "show", GHOST, "--source", "ctgov")
        assert shown.exit_code == 1
        assert "NCT99999999 was not found in the registry (ClinicalTrials.gov)" in shown.output
        assert "no longer" not in shown.output
        listed = run(config.path, "watch", "list")
        # (watch list has a title column since the watchlist merge: "-" for a trial never returned)
        assert any(line.split()[:5] == [GHOST, "ctgov", "-", "not", "found"]
                   for line in listed.output.splitlines()), listed.output
        # named again on the next run while the registry still has never returned it
        again = run(config.path, "refresh", "--no-progress", "--source", "ctgov")
        assert "not found in the registry: NCT99999999" in again.output


def test_show_a_chictr_trial_on_clinicaltrials_gov_says_it_is_not_there(tmp_path):
    corpus = Corpus(size=3, seed=1)
    with SimulatorServer(corpus) as server:
        config = write_config(tmp_path, server, corpus.ids)
        result = run(config.path, "show", "ChiCTR2100045397", "--source", "ctgov")
    assert result.exit_code == 1
    assert "ChiCTR trials are not on ClinicalTrials.gov" in result.output
    assert "--source who" in result.output


def test_extract_who_on_a_file_that_is_not_a_who_page_names_the_file(tmp_path):
    for name, body in (("study.json", b'{"protocolSection": {}}'), ("blob.bin", b"\x00\x01\x02"),
                       ("other.html", b"<html><body>hello</body></html>")):
        path = tmp_path / name
        path.write_bytes(body)
        result = CliRunner().invoke(cli, ["extract", "--source", "who", str(path)])
        assert result.exit_code == 1
        assert f"Error: {path}: not a WHO ICTRP record" in result.output
        assert "WHO page for :" not in result.output and "Traceback" not in result.output
