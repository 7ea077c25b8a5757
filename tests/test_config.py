"""config.toml validation: every mistake is named with file, key and what would be right."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.errors import ConfigError

from .conftest import ROOT, write_config

GOOD_SOURCE = '''
[[sources]]
id = "one"
name = "One"
url = "https://feeds.example.org/one.rss"
section = "politics"
region = "europe"
'''


def load(tmp_path: Path, sources: str = GOOD_SOURCE, extra: str = "", environ=None):
    path = write_config(tmp_path, "sqlite:///var/test.db", sources, extra)
    return load_config(path, environ=environ or {})


def problems(tmp_path: Path, sources: str = GOOD_SOURCE, extra: str = "") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, sources, extra)
    assert str(tmp_path / "config.toml") in str(info.value)  # the message names the file
    return info.value.problems


def test_bundled_config_is_valid():
    """The admin's config.toml loads (whatever port or sections they chose since)."""
    cfg = load_config(ROOT / "config.toml", environ={})
    assert cfg.sources and cfg.editions and 0 < cfg.server.port < 65536


def test_the_sample_newsroom_is_complete(tmp_path: Path):
    cfg = load_config(write_config(tmp_path, "sqlite:///var/feedhub.db"), environ={})
    assert {s.id for s in cfg.sources} >= {"cms-news", "cms-articles", "meridian-wire", "harbour-post",
                                           "ticker", "cms-arabic", "cms-spanish"}
    assert set(cfg.editions) == {"en", "ar", "es"}
    assert cfg.editions["ar"].direction == "rtl"
    assert cfg.taxonomy.section_family("articles") == ("articles", "opinion", "analysis", "blog", "features")
    assert cfg.taxonomy.top_section("explainers") == "videos"
    assert set(cfg.taxonomy.regions) == {"africa", "asia", "asia-pacific", "europe", "latin-america",
                                         "mena", "palestine", "us-canada"}
    assert cfg.server.host == "127.0.0.1" and cfg.server.port == 8080
    # a relative SQLite path is made absolute against the config folder
    assert cfg.database_url == f"sqlite:///{tmp_path / 'var' / 'feedhub.db'}"
    for s in cfg.sources:  # every bundled source is a local sample file
        assert s.local_path is not None and s.local_path.is_file()


def test_database_url_environment_override(tmp_path: Path):
    cfg = load(tmp_path, environ={"DATABASE_URL": "postgresql://u@db.example.org:5432/feeds"})
    assert cfg.database_url == "postgresql://u@db.example.org:5432/feeds"


def test_feedhub_config_environment_chooses_the_file(tmp_path: Path, monkeypatch):
    write_config(tmp_path, "sqlite:///var/x.db", GOOD_SOURCE)
    monkeypatch.setenv("FEEDHUB_CONFIG", str(tmp_path / "config.toml"))
    cfg = load_config()
    assert cfg.path == tmp_path / "config.toml"
    assert [s.id for s in cfg.sources] == ["one"]


@pytest.mark.parametrize("snippet, key, fragment", [
    # unknown key, with a suggestion
    ('[[sources]]\nid = "a"\nname = "A"\nurl = "https://a.example.org/f"\nsectoin = "politics"\n',
     "sources[0] (id 'a').sectoin", "did you mean 'section'?"),
    # wrong type
    ('[[sources]]\nid = "a"\nname = "A"\nurl = "https://a.example.org/f"\ninterval = "often"\n',
     "sources[0] (id 'a').interval", "must be an integer, got a string ('often')"),
    ('[[sources]]\nid = "a"\nname = "A"\nurl = "https://a.example.org/f"\nbreaking = "yes"\n',
     "sources[0] (id 'a').breaking", "must be true or false"),
    # unknown section / region / edition, with the list of what is right
    ('[[sources]]\nid = "a"\nname = "A"\nurl = "https://a.example.org/f"\nsection = "sprots"\n',
     "sources[0] (id 'a').section", "unknown section 'sprots'; did you mean 'sports'?"),
    ('[[sources]]\nid = "a"\nname = "A"\nurl = "https://a.example.org/f"\nregion = "mars"\n',
     "sources[0] (id 'a').region", "expected one of: africa, asia"),
    ('[[sources]]\nid = "a"\nname = "A"\nurl = "https://a.example.org/f"\nedition = "fr"\n',
     "sources[0] (id 'a').edition", "unknown edition 'fr'"),
    ('[[sources]]\nid = "a"\nname = "A"\nurl = "https://a.example.org/f"\nkind = "blog"\n',
     "sources[0] (id 'a').kind", "expected one of: cms, partner, wire"),
    # missing required key
    ('[[sources]]\nid = "a"\nurl = "https://a.example.org/f"\n', "sources[0] (id 'a').name", "is required"),
    # schemes and local files
    ('[[sources]]\nid = "a"\nname = "A"\nurl = "ftp://a.example.org/f"\n',
     "sources[0] (id 'a').url", "unsupported scheme 'ftp'"),
    ('[[sources]]\nid = "a"\nname = "A"\nurl = "/etc/passwd"\n',
     "sources[0] (id 'a').url", "local files must be under the samples directory"),
    ('[[sources]]\nid = "a"\nname = "A"\nurl = "samples/../config.toml"\n',
     "sources[0] (id 'a').url", "local files must be under the samples directory"),
    ('[[sources]]\nid = "Bad Id"\nname = "A"\nurl = "https://a.example.org/f"\n',
     "sources[0] (id 'Bad Id').id", "lowercase words joined by '-'"),
    ('[store]\nintegrity_check_hours = -1\n', "store.integrity_check_hours", "must be 0 (check at every start)"),
    ('[store]\nintegrity_check_hours = "daily"\n', "store.integrity_check_hours", "must be a number"),
])
def test_each_mistake_is_named(tmp_path: Path, snippet: str, key: str, fragment: str):
    found = problems(tmp_path, snippet)
    assert any(p.startswith(key + ":") and fragment in p for p in found), found


def test_duplicate_source_url_and_id(tmp_path: Path):
    two = GOOD_SOURCE + GOOD_SOURCE.replace('id = "one"', 'id = "two"') + GOOD_SOURCE
    found = problems(tmp_path, two)
    assert any(p.startswith("sources[1] (id 'two').url: duplicate source URL; sources[0] already")
               for p in found), found
    assert any(p.startswith("sources[2] (id 'one').id: duplicate source id") for p in found), found


def test_every_mistake_is_reported_at_once(tmp_path: Path):
    bad = ('[[sources]]\nid = "a"\nname = "A"\nurl = "https://a.example.org/f"\nsection = "nope"\n'
           'region = "nope"\ncolour = "red"\n')
    found = problems(tmp_path, bad, extra='\n[collect]\ntimeout = "soon"\n')
    # the [collect] table above duplicates the file's own, so TOML itself refuses it:
    assert len(found) == 1 and "is not valid TOML" in found[0]
    found = problems(tmp_path, bad)
    assert len(found) == 3, found


def test_top_level_and_table_errors(tmp_path: Path):
    found = problems(tmp_path, GOOD_SOURCE + '\n[colour]\nx = 1\n')
    assert any(p.startswith("colour: unknown key") for p in found), found
    path = write_config(tmp_path, "sqlite:///var/test.db", GOOD_SOURCE)
    text = re.sub(r"(?m)^port = \d+$", "port = 99999", path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "config.toml", environ={})
    assert info.value.problems == ["server.port: must be between 1 and 65535, got 99999"]


def test_database_url_is_checked(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, environ={"DATABASE_URL": "mysql://root@localhost/x"})
    # the variable is named: the config file's database.url is not the mistake
    assert any(p.startswith("DATABASE_URL (the environment, overriding database.url): unsupported database "
                            "'mysql'") for p in info.value.problems), info.value.problems
    path = write_config(tmp_path, "mysql://root@localhost/x", GOOD_SOURCE)  # in the file itself
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert any(p.startswith("database.url: unsupported database 'mysql'") for p in info.value.problems)


def test_what_validation_used_to_miss(tmp_path: Path):
    # a region with a section's (or subsection's) slug would be shadowed by it
    path = write_config(tmp_path, "sqlite:///var/test.db", GOOD_SOURCE)
    text = path.read_text(encoding="utf-8").replace("[regions]\n", '[regions]\npolitics = "Politics region"\n'
                                                    'live = "Live region"\n', 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "regions.politics: slug 'politics' is already a subsection; regions and sections need different " \
           "slugs (e.g. 'politics-region')" in info.value.problems
    assert any(p.startswith("regions.live: slug 'live' is already a section") for p in info.value.problems)
    # a local source file that is not there
    found = problems(tmp_path, '[[sources]]\nid = "a"\nname = "A"\nurl = "samples/missing.rss"\n')
    assert found == [f"sources[0] (id 'a').url: the file {tmp_path / 'samples' / 'missing.rss'} does not exist"]
    # a CIDR out of range says why
    path = write_config(tmp_path, "sqlite:///var/test.db", GOOD_SOURCE,
                        collect='allow_networks = ["10.0.0.0/33", "fd00::/129", "10.0.0/8", "300.1.1.1/8"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.problems == [
        "collect.allow_networks[0]: '10.0.0.0/33' is not a CIDR: the prefix length /33 is out of range; "
        "an IPv4 network has /0 to /32 (e.g. '10.0.0.0/16')",
        "collect.allow_networks[1]: 'fd00::/129' is not a CIDR: the prefix length /129 is out of range; "
        "an IPv6 network has /0 to /128 (e.g. 'fd00::/64')",
        "collect.allow_networks[2]: '10.0.0/8' is not a CIDR: '10.0.0' is not an IPv4 or IPv6 address",
        "collect.allow_networks[3]: '300.1.1.1/8' is not a CIDR: '300.1.1.1' is not an IPv4 or IPv6 address",
    ]


def test_unreadable_and_missing_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})
    (tmp_path / "broken.toml").write_text("[server\nport = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(tmp_path / "broken.toml", environ={})


def test_coverage_dossiers_are_checked(tmp_path: Path):
    found = problems(tmp_path, GOOD_SOURCE, extra='\n[coverage.empty]\ntitle = "Empty"\n'
                                                  '\n[coverage.Bad]\ntitle = "Bad"\ntags = [3]\ncolor = 1\n')
    assert "coverage.empty: needs tags or keywords, or no entry can ever join it" in found
    assert any(p.startswith("coverage.Bad: coverage slugs are lowercase") for p in found)
    assert "coverage.Bad.tags: must be a list of non-empty strings" in found
    assert any(p.startswith("coverage.Bad.color: unknown key") for p in found)


def test_rules_are_checked(tmp_path: Path):
    rules = GOOD_SOURCE + ('[[sources.rules]]\nkeyword = "x"\ncategory = "y"\nsection = "news"\n'
                           '[[sources.rules]]\npattern = "*a*b*c*d*"\nsection = "sprots"\n'
                           '[[sources.rules]]\nkeyword = "z"\n'
                           '[[sources.rules]]\nkeyword = "w"\naction = "maybe"\ncolour = "red"\n')
    found = problems(tmp_path, rules)
    key = "sources[0] (id 'one').rules"
    assert f"{key}[0]: needs exactly one of category, keyword or pattern to match on" in found
    assert f"{key}[1].pattern: patterns are bounded: at most three '*' and 200 characters" in found
    assert any(p.startswith(f"{key}[1].section: unknown section 'sprots'") for p in found)
    assert f"{key}[2]: does nothing: give section, region, tag, breaking or action" in found
    assert f"{key}[3].action: must be 'keep' or 'drop', got 'maybe'" in found
    assert any(p.startswith(f"{key}[3].colour: unknown key") for p in found)


def test_subsection_slugs_must_be_unique_site_wide(tmp_path: Path):
    extra = '\n[sections.more]\ntitle = "More"\nsubsections = { politics = "Politics again" }\n'
    found = problems(tmp_path, GOOD_SOURCE, extra=extra)
    assert any(p.startswith("sections.more.subsections.politics: slug 'politics' is already used")
               for p in found), found
