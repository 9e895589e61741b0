import io

from pipeline.progress import Progress


def test_terminal_progress_redraws_one_line_with_rate_and_eta():
    out = io.StringIO()
    p = Progress(out, force_tty=True)
    for i in range(1, 4):
        p("ctgov", i, 3)
    text = out.getvalue()
    assert text.count("\r\033[K") >= 1 and text.endswith("\n")
    assert "ctgov: 3/3" in text and "/s, ETA" in text


def test_log_progress_writes_whole_lines_at_an_interval():
    out = io.StringIO()
    p = Progress(out, force_tty=False, interval=3600)
    for i in range(1, 101):
        p("who", i, 100)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("who: 1/100") and lines[-1].startswith("who: 100/100")
    assert len(lines) == 2 and "\r" not in out.getvalue()
