/**
 * The notification bell of every signed-in page (templates/web/notifications_bell.html, started by
 * app.js's startPage when the page has `#bell`). It owns the socket's `notifications:{userId}`
 * topic; pages hear about notifications through document events instead of subscribing again:
 * - `pms:notification` (detail: the notification) for each notification new to the page;
 * - `pms:notifications-reset` whenever the topic's state must be reloaded over HTTP (the first
 *   subscription, `recovered: false`): pages reload what notifications would have told them.
 *
 * The unread count stays exact: it is the server's number (`GET /notifications/unread-count`) on
 * every (re)load, each new notification adds one (a notification is counted once, by `id`, even
 * if delivered twice), and every read, here or on another device, sets it to the server's
 * `unread` (the reply of `POST /notifications/read` and the `notification.read` event).
 * The list (`GET /notifications`, newest first, paged with `before`) loads when the panel first
 * opens and then follows live; "Mark read" and "Mark all read" call `POST /notifications/read`.
 */
import { age, api, handleApiFailure, showMessage } from "./app.js";

const PAGE = 20;

export function startBell(client, session) {
  const root = document.getElementById("bell");
  if (!root) return null;
  const button = document.getElementById("bell-button");
  const panel = document.getElementById("bell-panel");
  const badge = document.getElementById("unread");
  const announce = document.getElementById("bell-announce");
  const list = document.getElementById("bell-list");
  const empty = document.getElementById("bell-empty");
  const more = document.getElementById("bell-more");
  const readAll = document.getElementById("bell-read-all");
  const message = document.getElementById("bell-message");
  const items = new Map(); // id -> notification, in the list
  const counted = new Set(); // ids already counted or known read (a redelivery adds nothing)
  let unread = 0;
  let loaded = false; // the list was read over HTTP (the panel was opened)
  let hasMore = false;

  function setUnread(value) {
    unread = Math.max(0, value);
    badge.textContent = String(unread);
    badge.dataset.unread = String(unread);
    readAll.disabled = unread === 0;
  }

  function itemFor(notification) {
    const item = document.createElement("li");
    item.className = `bell-item priority-${notification.priority}${notification.isRead ? "" : " unread"}`;
    item.dataset.id = notification.id;
    const title = document.createElement("strong");
    title.textContent = notification.title || notification.type || "Notification";
    const text = document.createElement("p");
    text.textContent = notification.message || "";
    const meta = document.createElement("p");
    meta.className = "meta";
    const when = notification.createdAt ? ` · ${age(notification.createdAt)}` : "";
    meta.textContent = `${notification.isRead ? "Read" : "Unread"}${when}`;
    item.append(title, text, meta);
    if (!notification.isRead) {
      const mark = document.createElement("button");
      mark.type = "button";
      mark.className = "link";
      mark.textContent = "Mark read";
      mark.setAttribute("aria-label", `Mark read: ${title.textContent}`);
      mark.addEventListener("click", () => markRead([notification.id], mark));
      item.append(mark);
    }
    return item;
  }

  function render() {
    const sorted = [...items.values()].sort((a, b) => (a.id < b.id ? 1 : -1)); // ObjectIds grow with time
    list.replaceChildren(...sorted.map(itemFor));
    empty.hidden = !loaded || items.size > 0;
    more.hidden = !hasMore;
  }

  async function loadCount() {
    setUnread((await api("/notifications/unread-count")).unread);
  }

  async function loadPage(before) {
    const query = `limit=${PAGE}${before ? `&before=${before}` : ""}`;
    const page = await api(`/notifications?${query}`);
    for (const notification of page.notifications) {
      items.set(notification.id, notification);
      counted.add(notification.id);
    }
    hasMore = page.hasMore;
    loaded = true;
    render();
  }

  async function reload() {
    document.dispatchEvent(new CustomEvent("pms:notifications-reset"));
    try {
      items.clear();
      await loadCount();
      if (loaded || !panel.hidden) await loadPage();
      showMessage(message, "");
    } catch (error) {
      handleApiFailure(error, message);
    }
  }

  function markedRead(ids, all) {
    for (const notification of items.values()) {
      if (all || ids.includes(notification.id)) notification.isRead = true;
    }
    for (const id of ids || []) counted.add(id);
    render();
  }

  async function markRead(ids, control) {
    if (control) control.disabled = true;
    try {
      const body = ids ? { ids } : { all: true };
      const reply = await api("/notifications/read", { method: "POST", body });
      markedRead(ids || [], !ids);
      setUnread(reply.unread);
      if (control && !control.isConnected) panel.querySelector("h2").focus(); // its item was redrawn
      announce.textContent = ids ? "Marked read." : "All notifications marked read.";
      showMessage(message, "");
    } catch (error) {
      if (control) control.disabled = false;
      handleApiFailure(error, message);
    }
  }

  function onEvent(frame) {
    if (frame.event === "notification.read") {
      markedRead(frame.data.ids || [], frame.data.all);
      setUnread(frame.data.unread);
      return;
    }
    if (frame.event !== "notification") return;
    const notification = frame.data;
    if (counted.has(notification.id)) return; // delivered again (at least once)
    counted.add(notification.id);
    if (!notification.isRead) setUnread(unread + 1);
    if (loaded) {
      items.set(notification.id, notification);
      render();
    }
    announce.textContent = `New notification: ${notification.title || notification.type}`;
    document.dispatchEvent(new CustomEvent("pms:notification", { detail: notification }));
  }

  function open() {
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    if (!loaded) loadPage().catch((error) => handleApiFailure(error, message));
    panel.querySelector("h2").setAttribute("tabindex", "-1");
    panel.querySelector("h2").focus();
  }

  function close({ focus = true } = {}) {
    if (panel.hidden) return;
    panel.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (focus) button.focus();
  }

  button.addEventListener("click", () => (panel.hidden ? open() : close()));
  document.getElementById("bell-close").addEventListener("click", () => close());
  readAll.addEventListener("click", () => markRead(null, readAll));
  more.addEventListener("click", () => {
    const oldest = [...items.keys()].sort()[0];
    loadPage(oldest).catch((error) => handleApiFailure(error, message));
  });
  root.addEventListener("keydown", (pressed) => {
    if (pressed.key === "Escape") close();
  });
  document.addEventListener("click", (clicked) => {
    if (!root.contains(clicked.target)) close({ focus: false });
  });

  setUnread(0);
  client.subscribe(`notifications:${session.user.id}`, { onEvent, onReset: reload });
  return { markRead, reload };
}
