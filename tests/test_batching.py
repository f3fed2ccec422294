"""Micro-batching of search requests: batches form under load, results reach the right caller."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from clipforge.search.batching import MicroBatcher
from clipforge.search.query import Query
from clipforge.search.searcher import Searcher

from search_helpers import known_answer_index


def test_items_queued_while_a_batch_runs_form_the_next_batch_in_order():
    release, batches = threading.Event(), []

    def process(items):
        batches.append(list(items))
        release.wait(10)  # the first batch blocks until all items are queued
        return [item * 10 for item in items]

    batcher = MicroBatcher(process, max_batch=3)
    futures = [batcher.submit(0)]
    while not batches:  # the worker took item 0 alone
        threading.Event().wait(0.001)
    futures += [batcher.submit(i) for i in range(1, 6)]
    release.set()
    assert [f.result(10) for f in futures] == [0, 10, 20, 30, 40, 50]
    assert batches == [[0], [1, 2, 3], [4, 5]]
    assert batcher(7) == 70
    batcher.close()


def test_a_failing_batch_fails_every_caller_and_the_batcher_goes_on():
    def process(items):
        if "bad" in items:
            raise ValueError("bad item in batch")
        return [len(item) for item in items]

    batcher = MicroBatcher(process)
    with pytest.raises(ValueError, match="bad item"):
        batcher("bad")
    assert batcher("four") == 4

    short = MicroBatcher(lambda items: items[:-1])
    with pytest.raises(RuntimeError, match="a batch of 1 gave 0 results"):
        short("x")
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(lambda items: items, max_batch=0)


def test_batched_text_search_equals_one_query_at_a_time(tmp_path):
    _, index_dir = known_answer_index(tmp_path)
    searcher = Searcher.open(index_dir)
    requests = [
        ("a red apple", 3),
        ("a blue square number 2", 5),
        ("a green square", 1),
        ("a red apple", 12),
    ]
    expected = [searcher.search(Query(text), k) for text, k in requests]
    with pytest.raises(RuntimeError, match="enable_batching"):
        searcher.submit_text_search("a red apple")
    searcher.enable_batching()
    futures = [searcher.submit_text_search(text, k) for text, k in requests]
    for (_, k), future, alone in zip(requests, futures, expected):
        got = future.result(30)
        assert len(got) == k
        assert [hit.id for hit in got] == [hit.id for hit in alone]
        np.testing.assert_allclose(
            [hit.score for hit in got], [hit.score for hit in alone], atol=1e-5
        )
        assert [hit.caption for hit in got] == [hit.caption for hit in alone]
    assert futures[0].result()[0].id == 3  # the known answer
