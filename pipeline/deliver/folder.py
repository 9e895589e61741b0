"""The ``folder`` channel: one report file per delivery, named by its UTC time.

The file is written beside its final name and renamed into place, so a program
watching the folder never reads half a report.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from pipeline.deliver.base import Batch, DeliveryError
from pipeline.report import FILE_TYPES, render


def send_folder(batch: Batch) -> str:
    rule = batch.rule
    fmt = rule.options.get("format", "html")
    folder = Path(os.path.expanduser(rule.options["path"]))
    ext = FILE_TYPES[fmt][0]
    stamp = batch.generated_at.replace("-", "").replace(":", "")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"trialwatch-{stamp}.{ext}"
        n = 2
        while target.exists():
            target = folder / f"trialwatch-{stamp}-{n}.{ext}"
            n += 1
        tmp = target.with_name("." + target.name + ".tmp")
        tmp.write_text(render(batch.report, fmt, feed_id=f"urn:trialwatch:alert:{quote(rule.name, safe='')}"), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        raise DeliveryError(f"cannot write a report in {folder}: {exc.strerror or exc}") from None
    return f"wrote {target}"
