/**
 * The maintenance board of a manager or landlord: one column per status, one card per request
 * of the properties they may see (`GET /properties`, `GET /units`, `GET /maintenance-requests`).
 * Live: `maintenance:updates:{propertyId}` for each property; `maintenance.created` and
 * `maintenance.updated` put the card (again) in its status's column, whoever made the change.
 * A card's status control calls `PATCH /maintenance-requests/{id}`; the event confirms it.
 * The property and priority filters hide cards in the page (the column counts show what is shown).
 *
 * Assignees: each card names who its open work orders are assigned to (`GET /work-orders`, live
 * by `workorder.updated` on the same topics): a maintenance worker by name, another vendor by
 * company. "Assign" creates a work order (`POST /work-orders` with `workerId` or `vendorId`).
 * The "Maintenance workers" panel (`GET /maintenance-workers`) shows who has a socket open
 * (`maintenance:active:workers`) and who is working on what. No topic carries workers coming and
 * going (the seed's channel list has none), so the panel reads the list again at every work-order
 * event, after every reconnect and every WORKERS_REFRESH_MS.
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
const workOrders = new Map(); // work order id -> work order
const vendors = new Map(); // vendor id -> vendor
let workers = []; // GET /maintenance-workers items
const WORKERS_REFRESH_MS = 10000;
const OPEN_ORDER = new Set(["assigned", "scheduled", "in_progress"]);
const CLOSED_REQUEST = new Set(["completed", "cancelled"]);

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
  const assignee = document.createElement("p");
  assignee.className = "assignee";
  assignee.textContent = assigneeLine(request.id);
  card.append(title, " ", priority, where, text, assignee, label, select);
  if (!CLOSED_REQUEST.has(request.status)) card.append(assignForm(request));
  return card;
}

function assigneeLine(requestId) {
  return `Assigned to: ${assigneeOf(requestId) || "nobody yet"}`;
}

/** Who `requestId`'s open work orders are with: workers by name, other vendors by company. */
function assigneeOf(requestId) {
  const names = [];
  const orders = [...workOrders.values()]
    .filter((order) => order.requestId === requestId && OPEN_ORDER.has(order.status))
    .sort((a, b) => Date.parse(b.assignedAt) - Date.parse(a.assignedAt));
  for (const order of orders) {
    const worker = workers.find((candidate) => candidate.vendorId && candidate.vendorId === order.vendorId);
    const name = worker
      ? `${worker.firstName} ${worker.lastName}`.trim()
      : vendors.get(order.vendorId)?.companyName || (order.vendorId ? "a vendor" : "no one yet");
    if (!names.includes(name)) names.push(name);
  }
  return names.join(", ");
}

function assignForm(request) {
  const form = document.createElement("form");
  form.className = "assign";
  const selectId = `assign-${request.id}`;
  const label = document.createElement("label");
  label.htmlFor = selectId;
  label.textContent = "Assign to";
  const select = document.createElement("select");
  select.id = selectId;
  select.required = true;
  select.append(new Option("Choose…", ""));
  const workerVendors = new Set(workers.map((worker) => worker.vendorId).filter(Boolean));
  if (workers.length) {
    const group = document.createElement("optgroup");
    group.label = "Maintenance workers";
    for (const worker of workers) {
      const state = worker.active ? "online" : "offline";
      group.append(new Option(`${worker.firstName} ${worker.lastName} (${state})`, `worker:${worker.id}`));
    }
    select.append(group);
  }
  const others = [...vendors.values()].filter((vendor) => !workerVendors.has(vendor.id));
  if (others.length) {
    const group = document.createElement("optgroup");
    group.label = "Vendors";
    for (const vendor of others) group.append(new Option(vendor.companyName, `vendor:${vendor.id}`));
    select.append(group);
  }
  const button = document.createElement("button");
  button.type = "submit";
  button.textContent = "Assign";
  form.append(label, select, button);
  form.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    if (select.value) assign(request.id, select.value, button);
  });
  return form;
}

async function assign(requestId, choice, button) {
  const [kind, id] = choice.split(":");
  button.disabled = true;
  try {
    const body = kind === "worker" ? { requestId, workerId: id } : { requestId, vendorId: id };
    const order = await api("/work-orders", { method: "POST", body });
    await knowVendor(order.vendorId);
    workOrders.set(order.id, order);
    const choice = document.getElementById(`assign-${requestId}`);
    if (choice) choice.value = ""; // done: the redrawn card starts from "Choose…"
    if (cards.has(requestId)) place(cards.get(requestId));
    announce.textContent = `Assigned to ${assigneeOf(requestId)}.`;
    document.getElementById(`assign-${requestId}`)?.focus();
    showMessage(pageMessage, "");
    refreshWorkers();
  } catch (error) {
    button.disabled = false;
    handleApiFailure(error, pageMessage);
  }
}

/** A vendor created since the page loaded (a worker's in-house record): read it once. */
async function knowVendor(vendorId) {
  if (!vendorId || vendors.has(vendorId)) return;
  try {
    vendors.set(vendorId, await api(`/vendors/${vendorId}`));
  } catch {
    // the card names "a vendor" until the next reload
  }
}

/** Put `request`'s card in its column (newest first), replacing the old one. */
function place(request) {
  cards.set(request.id, request);
  const old = document.querySelector(`.board-card[data-id="${request.id}"]`);
  const chosen = old?.querySelector(".assign select")?.value; // a choice not submitted yet survives a redraw
  old?.remove();
  const target = column(request.status);
  if (!target) return;
  const card = cardFor(request);
  const choice = card.querySelector(".assign select");
  if (chosen && choice && [...choice.options].some((option) => option.value === chosen)) choice.value = chosen;
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
    const [items, propertyUnits, orders] = await Promise.all([
      apiAll(`/maintenance-requests?propertyId=${propertyId}`),
      apiAll(`/units?propertyId=${propertyId}`),
      apiAll("/work-orders").catch(() => []),
    ]);
    for (const unit of propertyUnits) units.set(unit.id, unit.unitNumber);
    for (const order of orders) if (order.propertyId === propertyId) workOrders.set(order.id, order);
    await Promise.all(orders.map((order) => knowVendor(order.vendorId)));
    for (const [id, request] of cards) if (request.propertyId === propertyId) remove(id);
    for (const request of items) place(request);
    showMessage(pageMessage, "");
  } catch (error) {
    handleApiFailure(error, pageMessage);
  }
}

function onWorkOrderEvent(frame) {
  const order = frame.data;
  if (order.deleted) workOrders.delete(order.id);
  else workOrders.set(order.id, order);
  knowVendor(order.vendorId).then(() => {
    if (cards.has(order.requestId)) place(cards.get(order.requestId));
  });
  refreshWorkers();
}

function onBoardEvent(propertyId, frame) {
  if (frame.event === "workorder.updated") {
    onWorkOrderEvent(frame);
    return;
  }
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

function workerItem(worker) {
  const item = document.createElement("li");
  item.className = `worker ${worker.active ? "online" : "offline"}`;
  item.dataset.id = worker.id;
  const name = document.createElement("strong");
  name.textContent = `${worker.firstName} ${worker.lastName}`.trim() || worker.email;
  const state = document.createElement("span");
  state.className = "worker-state";
  state.textContent = worker.active ? (worker.working ? "Online · working" : "Online") : "Offline";
  const doing = document.createElement("p");
  doing.className = "meta";
  const jobs = worker.workOrders.map((order) => {
    const request = cards.get(order.requestId);
    const what = request ? `${request.category}, unit ${units.get(request.unitId) ?? "?"}` : "a request";
    return `${what} (${STATUS_LABELS[order.status] || order.status.replace("_", " ")})`;
  });
  doing.textContent = jobs.length ? `Work: ${jobs.join("; ")}` : "No open work orders";
  item.append(name, " ", state, doing);
  return item;
}

let refreshing = null;
/** Read the workers again (coalesced: one call in flight, one queued at most). */
function refreshWorkers() {
  if (refreshing) {
    refreshing.again = true;
    return;
  }
  refreshing = { again: false };
  api("/maintenance-workers")
    .then((answer) => {
      const wasOnline = new Set(workers.filter((worker) => worker.active).map((worker) => worker.id));
      const cameOnline = answer.items.filter((worker) => worker.active && !wasOnline.has(worker.id));
      if (workers.length && cameOnline.length) {
        announce.textContent = `${cameOnline.map((worker) => worker.firstName).join(", ")} came online.`;
      }
      // What cards show of the workers (assignee names, the assign choices): redraw them on a change only.
      const shownOnCards = (items) =>
        JSON.stringify(items.map((w) => [w.id, w.firstName, w.lastName, w.vendorId, w.active]));
      const cardsChanged = shownOnCards(answer.items) !== shownOnCards(workers);
      workers = answer.items;
      document.getElementById("workers").replaceChildren(...workers.map(workerItem));
      document.getElementById("workers-empty").hidden = workers.length > 0;
      const online = workers.filter((worker) => worker.active).length;
      document.getElementById("workers-count").textContent = `(${online} online)`;
      for (const request of cardsChanged ? cards.values() : []) {
        const card = document.querySelector(`.board-card[data-id="${request.id}"]`);
        if (!card) continue;
        // A card holding the focus is not redrawn (the user is choosing in it); its names still are:
        // a worker's in-house vendor record, met before this read, now shows as the worker.
        if (card.contains(document.activeElement)) card.querySelector(".assignee").textContent = assigneeLine(request.id);
        else place(request);
      }
    })
    .catch((error) => {
      if (error.status !== 403) handleApiFailure(error, pageMessage);
      document.getElementById("workers-panel").hidden = error.status === 403;
    })
    .finally(() => {
      const again = refreshing.again;
      refreshing = null;
      if (again) refreshWorkers();
    });
}

async function main() {
  const client = startPage(session);
  refreshWorkers();
  setInterval(refreshWorkers, WORKERS_REFRESH_MS);
  apiAll("/vendors")
    .then((found) => {
      for (const vendor of found) vendors.set(vendor.id, vendor);
    })
    .catch(() => {});
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
        onReset: () => {
          reload(property.id);
          refreshWorkers();
        },
      });
    }
  } catch (error) {
    handleApiFailure(error, pageMessage);
  }
}

counts();
main();
