"""Stock scans: a barcode and a quantity added to the inventory, scanned or typed in the app.

The barcode must be a GTIN with a right check digit (schemas.Gtin) and name a stock item the
clinic software pushed; the scan then goes to the clinic software, which keeps the inventory,
as a submission ``stock.scanned`` carrying the item.
"""

from __future__ import annotations

from typing import Any

from config.settings import Settings
from control.mobile import gtin, records
from control.mobile.errors import UnknownReference
from control.mobile.schemas import ScanBody
from control.mobile.submissions import Writer, request_hash, submit
from control.store import Store


async def record(
    store: Store, settings: Settings, writer: Writer, body: ScanBody, *, now: float
) -> tuple[dict[str, Any], bool]:
    """(the submission ``stock.scanned``, created). UnknownReference (422) naming ``barcode``
    when no stock item has it; KeyReused (409)."""

    async def produce() -> tuple[str, dict[str, Any]]:
        item = await records.stock_by_gtin(store, writer.org_id, body.barcode)
        if item is None:
            raise UnknownReference(
                f"barcode: no stock item has barcode {body.barcode}; check the code or ask for "
                "the item to be added",
                field="barcode",
            )
        fields = body.model_dump(mode="json")
        scan = {
            "barcode": body.barcode,
            "gtin": gtin.normalize(body.barcode),
            "quantity": body.quantity,
            "scanned_at": fields["scanned_at"],
            "item": item,
        }
        return "stock.scanned", {"scan": scan}

    digest = request_hash("scan", body.model_dump_json())
    return await submit(store, settings, writer, body.idempotency_key, digest, produce, now=now)
