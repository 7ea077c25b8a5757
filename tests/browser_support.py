"""What the page tests share (the admin console's, the directory's and the feed pages'): Debian's
chromium driven by Playwright (the ``browser`` fixture, in conftest), and axe-core checking
each page. In CI a missing
browser fails the run; elsewhere those tests are skipped with the command that installs it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"


def require_browser() -> None:
    """Skip the calling test module (fail in CI) when chromium or axe-core is missing."""
    if CHROMIUM.exists() and AXE.exists():
        return
    reason = "the browser tests need Debian's chromium and axe-core: run `make test` (it installs them)"
    if os.environ.get("CI"):
        raise RuntimeError(reason)  # in CI a missing browser is a failure, never a skip
    pytest.skip(reason, allow_module_level=True)


def axe_check(page: Page, shots: Path, name: str) -> None:
    """No serious or critical accessibility violation (axe-core); a full-page screenshot of the
    page goes to ``shots`` (the run's output folder) to be looked at."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]
           if v["impact"] in ("serious", "critical")]
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert not bad, f"{name}: {bad}"
