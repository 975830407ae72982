/**
 * A tenant's "My lease and charges". Data: `GET /leases` (with each lease's unit and property),
 * `GET /transactions` (their charges, latest due date first), `GET /late-fees` (fees on them).
 * Live: `lease:changes:{leaseId}` for each active lease (`lease.updated` shows the lease as it is
 * now); a charge has no topic of its own, so the notifications that concern one (`charge_created`
 * by the daily job or staff, `payment_recorded`, `charge_late`, `late_fee_applied`, heard from the
 * bell) make the page read its charges again. After `recovered: false` it reloads over HTTP.
 */
import { api, apiAll, handleApiFailure, requireSession, showMessage, startPage } from "./app.js";

const session = requireSession();
if (session.user.userType !== "tenant") location.replace("/board/");

const pageMessage = document.getElementById("page-message");
const announce = document.getElementById("announce");
const leaseList = document.getElementById("leases");
const chargeRows = document.querySelector("#charges tbody");
const leases = new Map(); // id -> lease
const places = new Map(); // unit id -> {unit, property}
let charges = [];
let lateFees = [];

const CHARGE_NOTICES = new Set(["transaction", "late_fee"]); // notifications' referenceType
const STATUS = { pending: "Due", paid: "Paid", late: "Late", partial: "Partly paid", waived: "Waived" };
const TYPES = {
  rent: "Rent",
  deposit: "Deposit",
  fee: "Fee",
  maintenance: "Maintenance",
  utility: "Utility",
  other: "Other",
};
// Amounts are US dollars (the schema has no currency column); dates are calendar days (UTC).
const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const day = new Intl.DateTimeFormat("en-US", { dateStyle: "medium", timeZone: "UTC" });

function formatDay(iso) {
  return iso ? day.format(new Date(`${iso}T00:00:00Z`)) : "—";
}

async function placeOf(unitId) {
  if (!unitId) return null;
  if (!places.has(unitId)) {
    const unit = await api(`/units/${unitId}`);
    const property = await api(`/properties/${unit.propertyId}`).catch(() => null);
    places.set(unitId, { unit, property });
  }
  return places.get(unitId);
}

function renderLeases() {
  const sorted = [...leases.values()].sort((a, b) => Date.parse(b.startDate) - Date.parse(a.startDate));
  leaseList.replaceChildren(
    ...sorted.map((lease) => {
      const place = places.get(lease.unitId);
      const item = document.createElement("li");
      item.className = "card lease";
      item.dataset.id = lease.id;
      const title = document.createElement("h3");
      const unit = place?.unit ? `Unit ${place.unit.unitNumber}` : "Unit";
      title.textContent = place?.property ? `${unit} · ${place.property.propertyName}` : unit;
      const status = document.createElement("span");
      status.className = `status lease-status status-${lease.leaseStatus}`;
      status.textContent = lease.leaseStatus ? lease.leaseStatus.replace("_", " ") : "";
      const facts = document.createElement("dl");
      facts.className = "facts";
      const address = place?.property
        ? `${place.property.streetAddress}, ${place.property.city}, ${place.property.state}`
        : null;
      for (const [term, value] of [
        ["Rent", `${money.format(Number(lease.monthlyRent))} a month`],
        ["From", formatDay(lease.startDate)],
        ["To", formatDay(lease.endDate)],
        ["Deposit", money.format(Number(lease.securityDeposit))],
        ...(address ? [["Address", address]] : []),
      ]) {
        const dt = document.createElement("dt");
        dt.textContent = term;
        const dd = document.createElement("dd");
        dd.textContent = value;
        dd.dataset.field = term.toLowerCase();
        facts.append(dt, dd);
      }
      item.append(title, " ", status, facts);
      return item;
    }),
  );
  document.getElementById("leases-empty").hidden = leases.size > 0;
}

function renderCharges() {
  chargeRows.replaceChildren(
    ...charges.map((charge) => {
      const row = document.createElement("tr");
      row.dataset.id = charge.id;
      row.dataset.status = charge.paymentStatus;
      const what = document.createElement("td");
      const type = TYPES[charge.transactionType] || charge.transactionType;
      const described = charge.description?.toLowerCase().includes(type.toLowerCase());
      const label = described ? charge.description : `${type}: ${charge.description}`;
      what.textContent = charge.description ? label : type;
      const amount = document.createElement("td");
      amount.className = "amount";
      amount.textContent = money.format(Number(charge.amount));
      const due = document.createElement("td");
      due.textContent = formatDay(charge.dueDate);
      const status = document.createElement("td");
      const badge = document.createElement("span");
      badge.className = `status pay-${charge.paymentStatus}`;
      badge.textContent = STATUS[charge.paymentStatus] || charge.paymentStatus;
      status.append(badge);
      row.append(what, amount, due, status);
      return row;
    }),
  );
  document.getElementById("charges-empty").hidden = charges.length > 0;
  const owed = charges
    .filter((charge) => charge.paymentStatus === "pending" || charge.paymentStatus === "late")
    .reduce((sum, charge) => sum + Number(charge.amount), 0);
  document.getElementById("balance").textContent = charges.length ? `Open charges: ${money.format(owed)}` : "";
}

function renderLateFees() {
  const byId = new Map(charges.map((charge) => [charge.id, charge]));
  document.getElementById("late-fees").replaceChildren(
    ...lateFees.map((fee) => {
      const item = document.createElement("li");
      item.dataset.id = fee.id;
      const charge = byId.get(fee.transactionId);
      const type = charge ? TYPES[charge.transactionType] || charge.transactionType : "";
      const on = charge ? ` on ${type} due ${formatDay(charge.dueDate)}` : "";
      const state = fee.isWaived ? "waived" : `${fee.daysLate} days late`;
      item.textContent = `${money.format(Number(fee.amount))} late fee${on} (${state})`;
      return item;
    }),
  );
  document.getElementById("fees-title").hidden = lateFees.length === 0;
}

async function loadCharges() {
  [charges, lateFees] = await Promise.all([apiAll("/transactions"), apiAll("/late-fees").catch(() => [])]);
  renderCharges();
  renderLateFees();
}

async function loadLeases() {
  const found = await apiAll("/leases");
  leases.clear();
  for (const lease of found) leases.set(lease.id, lease);
  await Promise.all(found.map((lease) => placeOf(lease.unitId)));
  renderLeases();
  return found;
}

async function reloadCharges() {
  try {
    await loadCharges();
    showMessage(pageMessage, "");
  } catch (error) {
    handleApiFailure(error, pageMessage);
  }
}

async function reloadLease(id) {
  try {
    leases.set(id, await api(`/leases/${id}`));
    renderLeases();
  } catch (error) {
    handleApiFailure(error, pageMessage);
  }
}

function onLeaseEvent(frame) {
  if (frame.event !== "lease.updated") return;
  if (frame.data.deleted) leases.delete(frame.data.id);
  else leases.set(frame.data.id, { ...leases.get(frame.data.id), ...frame.data });
  renderLeases();
  announce.textContent = "Your lease was updated.";
}

document.addEventListener("pms:notification", (event) => {
  if (!CHARGE_NOTICES.has(event.detail.referenceType)) return;
  announce.textContent = event.detail.title || "Your charges changed.";
  reloadCharges();
});
document.addEventListener("pms:notifications-reset", reloadCharges); // what notifications would have said

async function main() {
  const client = startPage(session);
  try {
    const found = await loadLeases();
    for (const lease of found.filter((lease) => lease.leaseStatus === "active")) {
      client.subscribe(`lease:changes:${lease.id}`, {
        onEvent: onLeaseEvent,
        onReset: () => reloadLease(lease.id),
      });
    }
  } catch (error) {
    handleApiFailure(error, pageMessage);
  }
}

main();
