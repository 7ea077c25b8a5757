"""The normalisation test bed: every feed in tests/data/feeds beside its exact expected result.

Each input ``NN-name.ext`` is parsed and normalised as one source (TESTBED below)
would at a fixed instant, and the result must equal ``NN-name.ext.expected.json``
field for field: ids, dates (and their raw text and flags), text, sanitised HTML,
media, authors, filing, coverage, breaking, fingerprints, and the feed's warnings.

After an intended change of behaviour, rewrite the expected files with
``FEEDHUB_UPDATE_TESTBED=1 pytest tests/test_testbed.py`` and review the diff:
every changed line is a change in what feedhub publishes.
"""
from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from aggregator.config import Config, load_config
from aggregator.normalize import Context, canonical_link, plain_text
from aggregator.parse import parse_feed
from aggregator.work import ParseJob, parse_and_normalize

from .conftest import write_config

BED = Path(__file__).parent / "data" / "feeds"
INPUTS = sorted(p for p in BED.iterdir() if p.suffix in (".xml", ".rdf", ".json") and
                not p.name.endswith(".expected.json"))
NOW = datetime(2026, 11, 25, 12, 0, 0)  # naive UTC, as the store keeps instants
UPDATE = os.environ.get("FEEDHUB_UPDATE_TESTBED") == "1"

# One wire source with a default section, a keyword rule, a category rule and a drop filter.
TESTBED = '''[[sources]]
id = "testbed"
name = "Test bed wire"
url = "https://testbed.example.com/feed"
kind = "wire"
edition = "en"
section = "news"
[[sources.rules]]
keyword = "weather"
section = "environment"
tag = "Weather"
[[sources.rules]]
category = "sponsored"
action = "drop"
'''


@pytest.fixture(scope="module")
def bed_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    folder = tmp_path_factory.mktemp("testbed")
    return load_config(write_config(folder, f"sqlite:///{folder}/unused.db", TESTBED), environ={})


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def normalised(path: Path, config: Config) -> dict[str, object]:
    """What feedhub makes of one input file, as plain JSON data."""
    body = path.read_bytes()
    (source,) = config.sources
    out = parse_and_normalize(ParseJob(body=body, url=source.url, content_type=None, source=source, now=NOW),
                              Context.from_config(config))
    return {
        "format": parse_feed(body, source.url).format,
        # the feed's title and link as the collector stores them on the source
        "feed": {"title": plain_text(out.title) or None, "link": canonical_link(out.link), "ttl": out.ttl, "id_rule": out.id_rule,
                 "id_rule_reason": out.id_rule_reason, "deleted": _plain(out.deleted),
                 "warnings": out.warnings},
        "entries": [_plain(dataclasses.asdict(e)) for e in out.entries],
    }


def test_the_bed_covers_every_format_encoding_and_hazard():
    assert len(INPUTS) >= 40
    heads = {p.name: p.read_bytes()[:400] for p in INPUTS}
    declared = " ".join(h.decode("latin-1") for h in heads.values())
    for version in ('rss version="0.91"', 'rss version="0.92"', "http://purl.org/rss/1.0/", 'rss version="2.0"',
                    'feed version="0.3"', "http://www.w3.org/2005/Atom", "jsonfeed.org/version/1\"",
                    "jsonfeed.org/version/1.1"):
        assert version in declared, version
    for encoding in ('encoding="windows-1256"', 'encoding="ISO-8859-1"'):
        assert encoding in declared, encoding
    assert any(h.startswith((b"\xff\xfe", b"\xfe\xff")) for h in heads.values())  # UTF-16 with a BOM


@pytest.mark.parametrize("path", INPUTS, ids=[p.name for p in INPUTS])
def test_normalised_result_is_exactly_the_expected_one(path: Path, bed_config: Config):
    got = normalised(path, bed_config)
    expected_path = path.with_name(path.name + ".expected.json")
    text = json.dumps(got, ensure_ascii=False, indent=1) + "\n"
    if UPDATE:
        expected_path.write_text(text, encoding="utf-8")
    assert expected_path.exists(), f"no expected result beside {path.name}; see this module's docstring"
    assert got == json.loads(expected_path.read_text(encoding="utf-8"))
