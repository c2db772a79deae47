"""Child process for the durability tests: writes records forever, printing each acknowledged one.

Usage: writer_process.py sqlite PATH | redis URL. Prints "<id> <version>" after each write
returned; the parent kills this process (or the redis-server) at any moment.
"""

import asyncio
import sys


async def main(backend: str, target: str) -> None:
    if backend == "sqlite":
        from control.store.sqlite import SqliteStore

        store = SqliteStore(target)
    else:
        from control.store.redis import RedisStore

        store = RedisStore(target)
    await store.open()
    for i in range(1_000_000):
        id = f"r{i:07}"
        rec = await store.create(
            "durable", id, {"n": i, "text": "ä" * 200}, claims=[f"pin:{i}"], indexes={"all": i}
        )
        print(id, rec.version, flush=True)
        rec = await store.update(
            "durable",
            id,
            {"n": i, "done": True},
            expect_version=1,
            claims=[f"pin:{i}"],
            indexes={"all": i, "done": i},
        )
        print(id, rec.version, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
