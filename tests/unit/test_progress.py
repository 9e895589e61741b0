import io

from pipeline import progress
from pipeline.progress import Progress


def test_terminal_progress_redraws_one_line_with_rate_and_eta(monkeypatch):
    clock = iter([100.0, 100.5, 102.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    p = Progress(out, force_tty=True)
    for i in range(1, 4):
        p("ctgov", i, 10)
    text = out.getvalue()
    assert text.count("\r\033[K") == 3 and "\n" not in text
    # No rate over the first second (it used to read 1000000.0/s); then over the ticks since the first.
    assert "ctgov: 1/10\r" in text and "ctgov: 2/10\r" in text
    assert text.endswith("ctgov: 3/10 (1.0/s, ETA 7s)")
    p.clear()
    assert out.getvalue().endswith("\r\033[K")  # cleared before a result line
    p.close()
    assert out.getvalue() == text + "\r\033[K"  # nothing left to clear


def test_log_progress_writes_whole_lines_at_an_interval():
    out = io.StringIO()
    p = Progress(out, force_tty=False, interval=3600)
    for i in range(1, 101):
        p("who", i, 100)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("who: 1/100") and lines[-1].startswith("who: 100/100")
    assert len(lines) == 2 and "\r" not in out.getvalue()
