"""A parse target whose worker takes seconds to start, as on a loaded machine (imported by
worker processes only)."""
from __future__ import annotations

import time

from aggregator.work import parse_and_normalize

time.sleep(3)  # a spawned interpreter importing everything while other processes hog the CPU

parse = parse_and_normalize
