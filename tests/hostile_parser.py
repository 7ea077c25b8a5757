"""Parse targets that misbehave, for the parse pool's tests (imported by worker processes)."""
from __future__ import annotations

import os
import time

from aggregator.normalize import Context
from aggregator.work import ParseJob, ParseOutput, parse_and_normalize


def hang_on_marker(job: ParseJob, ctx: Context) -> ParseOutput:
    """Behaves like the real parser unless the body asks it to hang (a parser blow-up)."""
    if b"HANG-THE-PARSER" in job.body:
        time.sleep(3600)
    if b"KILL-THE-PARSER" in job.body:
        os._exit(9)  # the worker dies as in a crash of the parser's C code
    return parse_and_normalize(job, ctx)
