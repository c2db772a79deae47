// What waits in the outbox: each item with its state, refused ones with the server's reason
// and a way to fix or drop them.

import { el } from "/clinic/static/dom.js";
import { t } from "/static/visit/js/i18n.js";
import * as db from "./db.js";
import * as outbox from "./outbox.js";

export async function renderPending(list) {
  const items = await outbox.items();
  const patients = new Map((await db.all("patients")).map((p) => [p.id, p.name]));
  if (!items.length) {
    list.replaceChildren(el("li", { class: "empty" }, t("pending.empty")));
    return;
  }
  list.replaceChildren(...items.map((item) => {
    const what = item.kind === "note"
      ? t("pending.note", { patient: patients.get(item.patientId) || item.patientId })
      : t("pending.scan", { quantity: item.quantity, code: item.barcode });
    const state = item.state === "conflict" ? t("pending.conflict")
      : item.state === "error" ? t("pending.error", { detail: item.error?.detail || "" })
        : t("pending.waiting");
    const fix = item.state === "pending" ? null
      : el("a", { class: "button primary", href: `#/fix/${encodeURIComponent(item.key)}` },
        t(item.state === "conflict" ? "pending.resolve" : "common.edit"));
    const drop = item.state === "pending" ? null
      : el("button", { type: "button", onclick: async () => {
        await outbox.discard(item.key);
        document.dispatchEvent(new CustomEvent("outboxchange"));
      } }, t("common.discard"));
    return el("li", { "data-item": item.key, "data-state": item.state, "data-kind": item.kind },
      el("p", { class: "name" }, what),
      item.kind === "note" ? el("p", { class: "text" }, item.text) : null,
      el("p", { class: item.state === "pending" ? "meta" : "error" }, state),
      el("div", { class: "actions" }, fix, drop));
  }));
}
