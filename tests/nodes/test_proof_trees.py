"""Light-proof trees: built once per (period, version), in a worker thread, while the event loop runs on."""

from __future__ import annotations

import threading

import pytest
import trio

from nodes.proof_trees import ProofTrees


@pytest.mark.trio
async def test_concurrent_requests_share_one_build_off_the_event_loop():
    release = threading.Event()
    built_in: list[str] = []

    def build(period: int, version: int) -> tuple[int, int]:
        built_in.append(threading.current_thread().name)
        release.wait(10)  # a slow build (a big tree): the loop must not wait for it
        return period, version

    trees = ProofTrees(build)
    answers = []
    loop_ran = trio.Event()

    async def ask():
        answers.append(await trees.get(7, 1))

    async def meanwhile():
        await trio.sleep(0)
        loop_ran.set()  # other tasks keep running while the tree is built
        release.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(ask)
            nursery.start_soon(meanwhile)
    assert loop_ran.is_set() and answers == [(7, 1)] * 20
    assert trees.builds == 1 and built_in[0] != threading.main_thread().name


@pytest.mark.trio
async def test_the_newest_trees_are_kept():
    trees = ProofTrees(lambda p, v: (p, v), keep=2)
    for key in [(1, 1), (2, 1), (1, 1), (3, 1), (3, 1), (1, 2)]:
        assert await trees.get(*key) == key
    assert trees.builds == 4  # (1, 1) and (3, 1) were served from the cache the second time
