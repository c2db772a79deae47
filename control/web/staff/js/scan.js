// The stock scan screen: a barcode read by the camera where the browser has BarcodeDetector,
// always a typed code; its GTIN check digit is checked here, the item named from the stock
// list on the device, and the scan queued in the outbox.

import { el } from "/clinic/static/dom.js";
import { t } from "/static/visit/js/i18n.js";
import * as db from "./db.js";
import { gtin14, isGtin } from "./gtin.js";
import * as outbox from "./outbox.js";

const $ = (id) => document.getElementById(id);
const FORMATS = ["ean_13", "ean_8", "upc_a", "upc_e", "itf"];
let fixing = null; // the outbox item being corrected
let stream = null;
let scanning = false;

async function itemFor(code) {
  if (!isGtin(code)) return null;
  const wanted = gtin14(code);
  return (await db.all("stock")).find((s) => gtin14(s.gtin) === wanted) || null;
}

async function describe() {
  const code = $("scan-code").value.trim();
  const item = await itemFor(code);
  $("scan-item").textContent = !code ? ""
    : !isGtin(code) ? t("scan.bad_code")
      : item ? t("scan.item", { name: item.name, unit: item.unit }) : t("scan.unknown_item");
}

function error(message) {
  $("scan-error").textContent = message;
  $("scan-error").hidden = !message;
}

export async function renderRecent() {
  const recent = (await db.kv.get("recentScans")) || [];
  $("scan-recent").replaceChildren(...recent.map((s) => el("li", {},
    `${s.quantity} × ${s.item.name}`, el("span", { class: "meta" }, ` ${s.barcode}`))));
}

export async function openScan(item = null) {
  fixing = item;
  $("scan-code").value = item ? item.barcode : "";
  $("scan-quantity").value = item ? String(item.quantity) : "1";
  error(item?.error?.detail || "");
  await describe();
  await renderRecent();
}

async function stopCamera() {
  scanning = false;
  for (const track of stream?.getTracks() || []) track.stop();
  stream = null;
  $("camera").hidden = true;
}

async function startCamera() {
  try {
    const detector = new window.BarcodeDetector({ formats: FORMATS });
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    const video = $("camera-video");
    video.srcObject = stream;
    await video.play();
    $("camera").hidden = false;
    scanning = true;
    while (scanning) {
      const [found] = await detector.detect(video).catch(() => []);
      if (found) {
        $("scan-code").value = found.rawValue;
        await describe();
        await stopCamera();
        $("scan-quantity").focus();
        return;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } catch {
    await stopCamera();
    error(t("scan.camera_error"));
  }
}

export function setupScan() {
  const supported = "BarcodeDetector" in window && navigator.mediaDevices?.getUserMedia;
  $("camera-start").hidden = !supported;
  $("camera-none").hidden = Boolean(supported);
  $("camera-start").addEventListener("click", startCamera);
  $("camera-stop").addEventListener("click", stopCamera);
  $("scan-code").addEventListener("input", describe);
  $("scan-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const barcode = $("scan-code").value.trim();
    const quantity = Number($("scan-quantity").value);
    if (!isGtin(barcode)) return error(t("scan.bad_code"));
    if (!Number.isInteger(quantity) || quantity < 1 || quantity > 100000) return error(t("scan.bad_quantity"));
    error("");
    if (fixing) await outbox.replace(fixing.key, { barcode, quantity });
    else await outbox.queueScan({ barcode, quantity });
    const wasFixing = fixing;
    fixing = null;
    $("scan-code").value = "";
    $("scan-quantity").value = "1";
    const item = await itemFor(barcode);
    $("scan-item").textContent = t("scan.queued", { quantity, name: item ? item.name : barcode });
    document.dispatchEvent(new CustomEvent("outboxchange"));
    if (wasFixing) location.hash = "#/pending";
  });
}

export const leaveScan = stopCamera;
