/**
 * The maintenance board of a manager or landlord: one column per status, one card per request
 * of the properties they may see (`GET /properties`, `GET /units`, `GET /maintenance-requests`).
 * Live: `maintenance:updates:{propertyId}` for each property; `maintenance.created` and
 * `maintenance.updated` put the card (again) in its status's column, whoever made the change.
 * A card's status control calls `PATCH /maintenance-requests/{id}`; the event confirms it.
 * The property and priority filters hide cards in the page (the column counts show what is shown).
 */
import {
  STATUS_LABELS,
  age,
  api,
  apiAll,
  handleApiFailure,
  requireSession,
  showMessage,
  startPage,
} from "./app.js";

const session = requireSession();
if (session.user.userType === "tenant") location.replace("/requests/");

const pageMessage = document.getElementById("page-message");
const announce = document.getElementById("announce");
const cards = new Map(); // request id -> request
const units = new Map(); // unit id -> unit number
const properties = new Map(); // property id -> name
const propertyFilter = document.getElementById("filter-property");
const priorityFilter = document.getElementById("filter-priority");

function shown(request) {
  return (
    (!propertyFilter.value || request.propertyId === propertyFilter.value) &&
    (!priorityFilter.value || request.priority === priorityFilter.value)
  );
}

function applyFilters() {
  for (const card of document.querySelectorAll(".board-card")) {
    card.hidden = !shown(cards.get(card.dataset.id));
  }
  counts();
}
propertyFilter.addEventListener("change", applyFilters);
priorityFilter.addEventListener("change", applyFilters);

function column(status) {
  return document.querySelector(`.column[data-status="${status}"] ul`);
}

function cardFor(request) {
  const card = document.createElement("li");
  card.className = `board-card priority-${request.priority}`;
  card.dataset.id = request.id;
  card.dataset.status = request.status;
  card.hidden = !shown(request);
  const title = document.createElement("h3");
  title.textContent = request.category;
  const priority = document.createElement("span");
  priority.className = `badge priority-${request.priority}`;
  priority.textContent = request.priority;
  const where = document.createElement("p");
  where.className = "meta";
  const unit = units.get(request.unitId);
  const place = properties.get(request.propertyId);
  where.textContent = `Unit ${unit ?? "?"}${place ? ` · ${place}` : ""} · ${age(request.createdAt)}`;
  const text = document.createElement("p");
  text.className = "description";
  text.textContent = request.description;
  const label = document.createElement("label");
  const selectId = `status-${request.id}`;
  label.htmlFor = selectId;
  label.textContent = "Status";
  const select = document.createElement("select");
  select.id = selectId;
  select.className = "status-control";
  for (const [value, text] of Object.entries(STATUS_LABELS)) {
    select.append(new Option(text, value, false, value === request.status));
  }
  select.addEventListener("change", () => move(request.id, select.value, select));
  card.append(title, " ", priority, where, text, label, select);
  return card;
}

/** Put `request`'s card in its column (newest first), replacing the old one. */
function place(request) {
  cards.set(request.id, request);
  document.querySelector(`.board-card[data-id="${request.id}"]`)?.remove();
  const target = column(request.status);
  if (!target) return;
  const card = cardFor(request);
  const newer = [...target.children].find(
    (other) => Date.parse(cards.get(other.dataset.id)?.createdAt) < Date.parse(request.createdAt),
  );
  target.insertBefore(card, newer ?? null);
  counts();
}

function remove(id) {
  cards.delete(id);
  document.querySelector(`.board-card[data-id="${id}"]`)?.remove();
  counts();
}

function counts() {
  for (const section of document.querySelectorAll(".column")) {
    const visible = section.querySelectorAll(".board-card:not([hidden])").length;
    section.querySelector(".count").textContent = `(${visible})`;
  }
}

async function move(id, status, select) {
  select.disabled = true;
  try {
    const updated = await api(`/maintenance-requests/${id}`, { method: "PATCH", body: { status } });
    const hadFocus = document.activeElement === select;
    place(updated);
    announce.textContent = `Moved ${updated.category} to ${STATUS_LABELS[updated.status]}.`;
    if (hadFocus) document.getElementById(`status-${id}`)?.focus();
    showMessage(pageMessage, "");
  } catch (error) {
    select.disabled = false;
    select.value = cards.get(id)?.status;
    handleApiFailure(error, pageMessage);
  }
}

/** A property's cards and units over HTTP: first subscription and after `recovered: false`. */
async function reload(propertyId) {
  try {
    const [items, propertyUnits] = await Promise.all([
      apiAll(`/maintenance-requests?propertyId=${propertyId}`),
      apiAll(`/units?propertyId=${propertyId}`),
    ]);
    for (const unit of propertyUnits) units.set(unit.id, unit.unitNumber);
    for (const [id, request] of cards) if (request.propertyId === propertyId) remove(id);
    for (const request of items) place(request);
    showMessage(pageMessage, "");
  } catch (error) {
    handleApiFailure(error, pageMessage);
  }
}

function onBoardEvent(propertyId, frame) {
  if (frame.event !== "maintenance.created" && frame.event !== "maintenance.updated") return;
  const request = frame.data;
  if (request.deleted || request.propertyId !== propertyId) {
    // deleted, or moved to another property's board (announced on both boards)
    if (cards.get(request.id)?.propertyId === propertyId) remove(request.id);
    return;
  }
  if (request.unitId && !units.has(request.unitId)) {
    api(`/units/${request.unitId}`)
      .then((unit) => {
        units.set(unit.id, unit.unitNumber);
        if (cards.has(request.id)) place(cards.get(request.id));
      })
      .catch(() => {});
  }
  place(request);
}

async function main() {
  const client = startPage(session);
  try {
    const visible = await apiAll("/properties");
    for (const property of visible) {
      properties.set(property.id, property.propertyName);
      propertyFilter.append(new Option(property.propertyName, property.id));
    }
    if (!visible.length) showMessage(pageMessage, "You manage no properties yet.");
    for (const property of visible) {
      client.subscribe(`maintenance:updates:${property.id}`, {
        onEvent: (frame) => onBoardEvent(property.id, frame),
        onReset: () => reload(property.id),
      });
    }
  } catch (error) {
    handleApiFailure(error, pageMessage);
  }
}

counts();
main();
