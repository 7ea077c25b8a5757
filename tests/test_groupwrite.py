"""Group commit: several sources written in one transaction, each in its own savepoint."""
from __future__ import annotations

import threading

import pytest

from aggregator import store
from aggregator.collect import _GroupWriter, _Job


@pytest.fixture
def tags(db_url: str):
    store.init_db(db_url)
    yield store.Tag
    store.db.close()


def test_a_failing_source_is_rolled_back_alone(tags):
    writer = _GroupWriter(store.write_transaction)

    def add(slug: str, fail: bool = False):
        def write():
            tags.insert(slug=slug, name=slug).execute()
            if fail:
                raise ValueError(f"{slug} is broken")
            return slug
        return _Job(write)

    group = [add("a"), add("b", fail=True), add("c")]
    writer._commit(group)
    assert [j.result for j in group] == ["a", None, "c"]
    assert isinstance(group[1].error, ValueError) and all(j.done.is_set() for j in group)
    assert sorted(t.slug for t in tags.select()) == ["a", "c"]


def test_a_failed_commit_fails_every_source_of_the_group(tags):
    class Refused(Exception):
        pass

    def transaction():
        class Tx:
            def __enter__(self):
                self.inner = store.write_transaction()
                self.inner.__enter__()

            def __exit__(self, *exc):
                self.inner.__exit__(Refused, Refused(), None)  # roll back, as a refused commit does
                raise Refused("commit refused")
        return Tx()

    writer = _GroupWriter(transaction)
    group = [_Job(lambda: tags.insert(slug="x", name="x").execute()), _Job(lambda: "y")]
    writer._commit(group)
    assert all(isinstance(j.error, Refused) and j.result is None for j in group)
    assert tags.select().count() == 0


def test_many_threads_each_get_their_own_result(tags):
    writer = _GroupWriter(store.write_transaction)
    results: dict[int, object] = {}

    def worker(n: int) -> None:
        store.db.connect(reuse_if_open=True)
        results[n] = writer.run(lambda: (tags.insert(slug=f"t{n}", name="t").execute(), n)[1])
        store.db.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {n: n for n in range(12)}
    assert tags.select().count() == 12
