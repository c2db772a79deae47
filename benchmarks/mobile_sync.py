"""What the staff app's sync costs: bytes and time of the first sync, of a sync after no change
(304) and of a delta sync after one change, for a department with 200 appointments in the
three-day window and 2,000 medical history entries (10 per patient).

Seeds the data straight into the store (the same domain functions the API calls), then starts
`televisit serve` on it and syncs from this process over loopback as the app does (gzip
accepted, the cursor sent back):

    .venv/bin/python -m benchmarks.mobile_sync [--appointments 200] [--history 2000]
        [--consultations 1] [--repeat 5] [--backend sqlite|redis --redis-url URL]

Prints one JSON object: per step the bytes on the wire (headers + body as sent, gzip), the
JSON size once decompressed, the client's time per request (median and min of --repeat runs)
and the server's CPU per request. Not a test: times depend on the machine and its other load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from pydantic import BaseModel

from benchmarks.control_rate import _free_port, cpu_seconds, start_server
from config import load_settings
from control import appointments
from control.clinic.accounts import create_staff
from control.departments import create_department
from control.mobile import devices, orgsettings, records
from control.mobile.schemas import ClientIn, ConsultationIn, HistoryIn, PatientIn
from control.models import AppointmentCreate, DepartmentCreate
from control.orgs import create_org
from control.store.factory import open_store
from control.tokens import keyring_for

ZONE = "Europe/Helsinki"
# Clinical-sounding words: history texts vary like real ones (a repeated sentence would
# compress far better than real notes and flatter the gzip figures).
WORDS = (
    "ears cleaned drops twice daily for seven days otitis externa left right mild moderate "
    "severe itching redness discharge recheck in two weeks weight stable appetite normal "
    "vomiting diarrhoea since yesterday bloods taken results pending vaccinated rabies booster "
    "dental scale extraction under sedation recovered well limping hind leg rest lead walks "
    "meloxicam 1.5 mg/ml once daily with food skin scrapings negative flea treatment owner "
    "advised to call if worse temperature 38.9 heart murmur grade two of six monitor"
).split()


def text(seed: int, words: int = 28) -> str:
    """A note of ``words`` words, different for every seed."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def starts(n: int, now: datetime) -> list[datetime]:
    """``n`` appointment starts spread over 08:00-18:00 of yesterday, today and tomorrow."""
    today = now.astimezone(ZoneInfo(ZONE)).date()
    slots = []
    for k in range(n):
        day = today + timedelta(days=k % 3 - 1)
        minute = 8 * 60 + (k // 3) * 600 // max(1, (n + 2) // 3)
        local = datetime(
            day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=ZoneInfo(ZONE)
        )
        slots.append(local)
    return slots


async def seed(settings: Any, args: argparse.Namespace) -> dict[str, str]:
    """The organization, its department in Helsinki, clients, patients, history,
    consultations, appointments; a vet with a signed-in device. Returns the keys to use."""
    store = open_store(settings)
    await store.open()
    now = time.time()
    try:
        org, _, api_key = await create_org(store, "Bench clinic", now)
        org_id = org["id"]
        dept = await create_department(
            store, org_id,
            DepartmentCreate(name="Small animals", telemedicine_enabled=True, time_zone=ZONE), now,
        )  # fmt: skip
        vet = await create_staff(
            store, org_id, username="bench.vet", display_name="Bench vet",
            password="bench-password", groups=["mobile"],
        )  # fmt: skip
        await orgsettings.set_enabled(store, org_id, True)
        keyring = keyring_for(settings)
        per_patient = max(1, args.history // args.appointments)
        moment = datetime.now(UTC)

        async def put(kind: records.Kind, id: str, model: BaseModel) -> None:
            await records.put(store, kind, org_id, id, model.model_dump(mode="json"), now=now)

        for n, start in enumerate(starts(args.appointments, moment)):
            client = ClientIn(name=f"Client {n}", phone="+358401234567", email=f"c{n}@example.com",
                              address=f"Street {n}, Helsinki")  # fmt: skip
            await put(records.CLIENT, f"c{n}", client)
            patient = PatientIn(client_id=f"c{n}", name=f"Pet {n}", species="dog", breed="Mixed",
                                sex="female", alerts="")  # fmt: skip
            await put(records.PATIENT, f"p{n}", patient)
            for k in range(per_patient):
                entry = HistoryIn(
                    patient_id=f"p{n}", at=moment - timedelta(days=30 * (k + 1)), type="diagnosis",
                    title=f"Visit {k}", text=text(n * 1000 + k),
                )  # fmt: skip
                await put(records.HISTORY, f"h{n}-{k}", entry)
            for k in range(args.consultations):
                consult = ConsultationIn(
                    patient_id=f"p{n}", started_at=moment - timedelta(days=60 * (k + 1)),
                    provider_name="Dr. Lehto", reason="check-up",
                    notes=[{"at": moment - timedelta(days=60 * (k + 1)), "author": "Dr. Lehto",
                            "text": text(-n * 1000 - k, 40)}],
                )  # fmt: skip
                await put(records.CONSULTATION, f"k{n}-{k}", consult)
            body = AppointmentCreate(
                department_id=dept["id"], external_id=f"A-{n}", start=start,
                end=start + timedelta(minutes=20),
                provider={"id": "vet-1", "name": "Dr. Aino Lehto"},
                client={"id": f"c{n}", "name": f"Client {n}", "phone": "+358401234567"},
                patient={"id": f"p{n}", "name": f"Pet {n}", "species": "dog"},
            )  # fmt: skip
            await appointments.create(store, settings, keyring, org_id, dept, body, now)
        token, _ = await devices.register(store, vet, "Bench phone", now=now)
        return {"api_key": api_key, "device_token": token}
    finally:
        await store.close()


def header_bytes(resp: aiohttp.ClientResponse) -> int:
    """The status line and headers as sent (approximately: HTTP/1.1 framing)."""
    status = f"HTTP/1.1 {resp.status} {resp.reason}\r\n".encode()
    return len(status) + sum(len(k) + len(v) + 4 for k, v in resp.raw_headers) + 2


async def sync_once(
    http: aiohttp.ClientSession, base: str, token: str, cursor: str | None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
    params = {"cursor": cursor} if cursor else {}
    t0 = time.perf_counter()
    async with http.get(f"{base}/api/v1/mobile/app/sync", params=params, headers=headers) as resp:
        raw = await resp.read()
        elapsed = time.perf_counter() - t0
        if resp.status not in (200, 304):
            raise SystemExit(f"sync answered {resp.status}: {raw[:300]!r}")
        gzipped = resp.headers.get("Content-Encoding") == "gzip"
        body = zlib.decompress(raw, 16 + zlib.MAX_WBITS) if gzipped and raw else raw
        data = json.loads(body) if body else None
        return {
            "status": resp.status,
            "seconds": elapsed,
            "wire_bytes": header_bytes(resp) + len(raw),
            "body_bytes": len(raw),
            "json_bytes": len(body),
            "data": data,
        }


def summary(name: str, runs: list[dict[str, Any]], server_cpu: list[float]) -> dict[str, Any]:
    last = runs[-1]
    counts = {}
    if last["data"]:
        counts = {k: len(v) for k, v in last["data"].items() if isinstance(v, list)}
    return {
        "step": name,
        "status": last["status"],
        "wire_bytes": last["wire_bytes"],
        "body_bytes_gzip": last["body_bytes"],
        "json_bytes": last["json_bytes"],
        "ms_median": round(1000 * statistics.median(r["seconds"] for r in runs), 2),
        "ms_min": round(1000 * min(r["seconds"] for r in runs), 2),
        "server_cpu_ms_median": round(1000 * statistics.median(server_cpu), 2),
        "items": counts,
    }


async def measure(base: str, keys: dict[str, str], pid: int, args: argparse.Namespace) -> list:
    token = keys["device_token"]
    api = {"Authorization": f"Bearer {keys['api_key']}"}
    out = []
    async with aiohttp.ClientSession(auto_decompress=False) as http:  # bodies as sent
        cursor: str | None = None

        async def step(name: str, change: Callable[[int], Awaitable[None]] | None = None) -> None:
            """``repeat`` syncs from the device's cursor; with ``change``, each after one more
            change (and the cursor follows, as on the device)."""
            nonlocal cursor
            runs, cpus = [], []
            for k in range(args.repeat):
                if change is not None:
                    await change(k)
                cpu0 = cpu_seconds(pid)
                run = await sync_once(http, base, token, cursor)
                cpus.append(cpu_seconds(pid) - cpu0)
                runs.append(run)
                if change is not None:
                    cursor = run["data"]["cursor"]
            out.append(summary(name, runs, cpus))
            if cursor is None:
                cursor = runs[-1]["data"]["cursor"]

        async def send(method: str, path: str, body: dict[str, Any]) -> None:
            async with http.request(method, base + path, json=body, headers=api) as r:
                assert r.status == 200, await r.read()

        async def history_change(k: int) -> None:
            body = {"patient_id": "p0", "at": iso(datetime.now(UTC) - timedelta(days=30)),
                    "type": "diagnosis", "title": "Visit 0", "text": f"changed {k}"}  # fmt: skip
            await send("PUT", "/api/v1/mobile/history/h0-0", body)

        async with http.get(f"{base}/api/v1/appointments?limit=1", headers=api) as r:
            appt = json.loads(await r.read())["appointments"][0]
        first_start = datetime.fromisoformat(appt["start"].replace("Z", "+00:00"))

        async def appointment_change(k: int) -> None:
            start = first_start + timedelta(minutes=k + 1)
            patch = {"start": iso(start), "end": iso(start + timedelta(minutes=20))}
            await send("PATCH", f"/api/v1/appointments/{appt['id']}", patch)

        await step("first sync (full)")
        await step("after no change (304)")
        await step("delta after one history change", history_change)
        # A moved appointment comes with its patient's bundle.
        await step("delta after one appointment change", appointment_change)
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mobile-sync-") as tmp:
        data_dir = Path(tmp)
        store = {"backend": args.backend}
        if args.redis_url:
            store["redis_url"] = args.redis_url
        settings = load_settings(
            environ={}, overrides={"server": {"data_dir": str(data_dir)}, "store": store}
        )
        t0 = time.perf_counter()
        keys = await seed(settings, args)
        seeded = time.perf_counter() - t0
        port = _free_port()
        # control_rate's server start: no pinning here (server_cpu past the last CPU)
        server = argparse.Namespace(**vars(args), log_level="warning", server_cpu=1 << 16)
        proc, _ = start_server(data_dir, port, server)
        try:
            steps = await measure(f"http://127.0.0.1:{port}", keys, proc.pid, args)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {
        "appointments": args.appointments,
        "history_entries": max(1, args.history // args.appointments) * args.appointments,
        "consultations_per_patient": args.consultations,
        "backend": args.backend,
        "repeat": args.repeat,
        "seed_seconds": round(seeded, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appointments", type=int, default=200)
    parser.add_argument("--history", type=int, default=2000)
    parser.add_argument("--consultations", type=int, default=1, help="per patient")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--redis-url", default="")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
