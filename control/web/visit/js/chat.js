// The chat panel: messages with sender and time (always rendered as text, never as HTML),
// the unread count on the toggle, and "copy chat" for a transcript before the call ends.

import { formatTime, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const MAX_MESSAGES = 500;

export class ChatPanel {
  constructor({ send, maxBytes = 4000 }) {
    this.send = send;
    this.maxBytes = maxBytes;
    this.self = null;
    this.messages = [];
    this.seen = new Set();
    this.unread = 0;
    this.panel = $("chat");
    this.log = $("chat-log");
    this.input = $("chat-input");
    this.status = $("chat-status");
    this.toggle = $("btn-chat");
    this.badge = $("unread");

    this.toggle.addEventListener("click", () => this.setOpen(this.panel.hidden));
    $("chat-close").addEventListener("click", () => this.setOpen(false));
    $("chat-copy").addEventListener("click", () => this.copy(this.status));
    $("chat-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => this.grow());
  }

  get open() {
    return !this.panel.hidden;
  }

  setOpen(open) {
    this.panel.hidden = !open;
    document.body.classList.toggle("chat-open", open);
    this.toggle.setAttribute("aria-expanded", String(open));
    if (open) {
      this.unread = 0;
      this.renderBadge();
      this.input.focus();
      this.log.scrollTop = this.log.scrollHeight;
    }
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) return;
    if (new TextEncoder().encode(text).length > this.maxBytes) {
      this.say(t("chat.too_long"));
      return;
    }
    if (!this.send(text)) {
      this.say(t("chat.not_sent"));
      return;
    }
    this.input.value = "";
    this.grow();
    this.say("");
  }

  say(text) {
    this.status.textContent = text;
  }

  error(code) {
    const texts = { chat_too_long: () => t("chat.too_long"), chat_empty: () => "" };
    this.say((texts[code] || (() => t("chat.not_sent")))());
  }

  add(msg) {
    if (typeof msg?.text !== "string") return;
    if (msg.id != null) {
      if (this.seen.has(msg.id)) return;
      this.seen.add(msg.id);
    }
    const mine = this.self && msg.from && msg.from.role === this.self.role && msg.from.name === this.self.name;
    const at = Number.isNaN(Date.parse(msg.ts)) ? new Date() : new Date(msg.ts);
    const entry = { name: msg.from?.name || "", mine, at, text: msg.text };
    this.messages.push(entry);
    if (this.messages.length > MAX_MESSAGES) this.messages.shift();

    const li = document.createElement("li");
    li.className = mine ? "msg mine" : "msg";
    const meta = document.createElement("div");
    meta.className = "meta";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = mine ? t("chat.you") : entry.name;
    const time = document.createElement("time");
    time.dateTime = at.toISOString();
    time.textContent = formatTime(at);
    meta.append(who, time);
    const body = document.createElement("p");
    body.className = "text";
    body.textContent = msg.text;
    li.append(meta, body);
    this.log.append(li);
    while (this.log.children.length > MAX_MESSAGES) this.log.firstElementChild.remove();
    this.log.scrollTop = this.log.scrollHeight;

    if (!mine && !this.open) {
      this.unread += 1;
      this.renderBadge();
    }
  }

  renderBadge() {
    this.badge.hidden = this.unread === 0;
    this.badge.textContent = this.unread > 99 ? "99+" : String(this.unread);
    this.toggle.setAttribute(
      "aria-label",
      this.unread ? t("controls.chat_unread", { count: this.unread }) : t("controls.chat"),
    );
  }

  transcript() {
    return this.messages
      .map((m) => `[${formatTime(m.at)}] ${m.mine ? t("chat.you") : m.name}: ${m.text}`)
      .join("\n");
  }

  async copy(statusEl) {
    const text = this.transcript();
    if (!text) {
      statusEl.textContent = t("chat.nothing_to_copy");
      return;
    }
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // No async clipboard (older browsers, no permission): the selection way.
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.append(area);
      area.select();
      const ok = document.execCommand("copy");
      area.remove();
      if (!ok) {
        statusEl.textContent = t("chat.copy_failed");
        return;
      }
    }
    statusEl.textContent = t("chat.copied");
  }

  grow() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 140)}px`;
  }
}
