"""control.background: one task however often started; stop waits out a grace, then cancels."""

import asyncio

from control.background import Background, worth_logging


async def test_started_twice_runs_once_and_stop_cancels():
    runs = 0
    cancelled = asyncio.Event()

    async def run() -> None:
        nonlocal runs
        runs += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = Background("t")
    task.start(run)
    task.start(run)
    await asyncio.sleep(0)
    assert task.running and runs == 1
    await task.stop()
    assert cancelled.is_set() and not task.running
    await task.stop()  # stopping a stopped task is harmless


async def test_stop_lets_a_told_task_finish_within_the_grace():
    told = asyncio.Event()
    finished = False

    async def run() -> None:
        nonlocal finished
        await told.wait()
        await asyncio.sleep(0.01)
        finished = True

    task = Background("t")
    task.start(run)
    told.set()
    await task.stop(grace=30)
    assert finished and not task.running


def test_worth_logging_first_and_every_hundredth():
    assert [n for n in range(1, 301) if worth_logging(n)] == [1, 100, 200, 300]
