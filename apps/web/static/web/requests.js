/**
 * A tenant's "My maintenance requests". Data: `GET /leases` (their active units), `GET` and
 * `POST /maintenance-requests`; live: their notifications, heard from the bell (bell.js owns the
 * `notifications:{userId}` topic). A notification about one of their requests (assigned, status
 * changed, completed) makes the page fetch that request again, so its status changes in place.
 */
import { STATUS_LABELS, age, api, apiAll, handleApiFailure, requireSession, showMessage, startPage } from "./app.js";

const session = requireSession();
if (session.user.userType !== "tenant") location.replace("/board/");

const list = document.getElementById("requests");
const empty = document.getElementById("empty");
const pageMessage = document.getElementById("page-message");
const formMessage = document.getElementById("form-message");
const form = document.getElementById("request-form");
const requests = new Map(); // id -> request
const units = new Map(); // unitId -> unit number

function render() {
  const sorted = [...requests.values()].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
  list.replaceChildren(
    ...sorted.map((request) => {
      const item = document.createElement("li");
      item.className = `request priority-${request.priority}`;
      item.dataset.id = request.id;
      const title = document.createElement("strong");
      title.textContent = `${request.category} · unit ${units.get(request.unitId) ?? "?"}`;
      const status = document.createElement("span");
      status.className = `status status-${request.status}`;
      status.dataset.status = request.status;
      status.textContent = STATUS_LABELS[request.status] || request.status;
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = `${request.priority} priority · filed ${age(request.createdAt)}`;
      const text = document.createElement("p");
      text.textContent = request.description;
      item.append(title, " ", status, document.createElement("br"), meta, text);
      return item;
    }),
  );
  empty.hidden = requests.size > 0;
}

async function loadUnits() {
  const leases = await apiAll("/leases");
  const active = leases.filter((lease) => lease.leaseStatus === "active" && lease.unitId);
  const select = form.unitId;
  select.replaceChildren();
  for (const lease of active) {
    if (units.has(lease.unitId)) continue;
    const unit = await api(`/units/${lease.unitId}`);
    units.set(unit.id, unit.unitNumber);
    select.append(new Option(`Unit ${unit.unitNumber}`, unit.id));
  }
  // The button stays disabled until a unit can be chosen: a click before that would submit a
  // form whose required unit is empty, which the browser refuses without a word.
  if (!units.size) {
    showMessage(formMessage, "You have no active lease, so you cannot file a request yet.");
    return;
  }
  form.querySelector("button[type=submit]").disabled = false;
}

async function loadRequests() {
  const items = await apiAll("/maintenance-requests");
  requests.clear();
  for (const request of items) requests.set(request.id, request);
  render();
}

/** The notifications topic's state over HTTP: first subscription and after `recovered: false`. */
async function reload() {
  try {
    await loadRequests();
    showMessage(pageMessage, "");
  } catch (error) {
    handleApiFailure(error, pageMessage);
  }
}

async function onNotification(notification) {
  if (notification.referenceType === "maintenance_request" && notification.referenceId) {
    try {
      const request = await api(`/maintenance-requests/${notification.referenceId}`);
      requests.set(request.id, request);
      render();
    } catch (error) {
      handleApiFailure(error, pageMessage);
    }
  }
}

form.addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  const description = form.description.value.trim();
  if (!description) {
    showMessage(formMessage, "Describe the problem.");
    form.description.focus();
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const created = await api("/maintenance-requests", {
      method: "POST",
      body: {
        unitId: form.unitId.value,
        category: form.category.value,
        priority: form.priority.value,
        description,
      },
    });
    requests.set(created.id, created);
    render();
    form.description.value = "";
    showMessage(formMessage, "Request filed.");
  } catch (error) {
    handleApiFailure(error, formMessage);
  } finally {
    button.disabled = false;
  }
});

loadUnits().then(render).catch((error) => handleApiFailure(error, pageMessage));
document.addEventListener("pms:notification", (event) => onNotification(event.detail));
document.addEventListener("pms:notifications-reset", reload);
startPage(session);
