"""An outbox worker in its own process, for the crash tests (they SIGKILL it mid-send).

argv[1]: JSON overrides for load_settings (they name the store to use).
Prints "ready" once the worker runs; exits by itself after LIFETIME seconds at the latest.
"""

import asyncio
import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).parent)]

from helpers import open_test_store  # noqa: E402

from config import load_settings  # noqa: E402
from control.notify import OutboxWorker  # noqa: E402

LIFETIME = 120.0


async def main() -> None:
    settings = load_settings(environ={}, overrides=json.loads(sys.argv[1]))
    store = await open_test_store(settings)
    worker = OutboxWorker(store, settings)
    await worker.start()
    print("ready", flush=True)
    await asyncio.sleep(LIFETIME)
    await worker.stop()
    await store.close()


asyncio.run(main())
