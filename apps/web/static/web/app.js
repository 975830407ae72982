/**
 * What every signed-in page shares: the session kept in sessionStorage (the login response),
 * calls to the public HTTP API with the Bearer token, the socket (realtime.js) with its state
 * shown in the header, and sign-out. An expired or revoked session sends the browser back to
 * the sign-in page with a message.
 */
import { CLOSE_REVOKED, RealtimeClient } from "./realtime.js";

const KEY = "pms.session";

export function loadSession() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY));
  } catch {
    return null;
  }
}

export function saveSession(session) {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
}

/** Back to sign-in, telling it why (`expired`, `revoked`, or nothing after a sign-out). */
export function toSignIn(reason) {
  clearSession();
  location.assign(reason ? `/?${reason}=1` : "/");
}

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code || "unknown";
    this.retryAfter = error?.retryAfter;
  }
}

/** Call the HTTP API; resolves with the JSON body (null for 204), rejects with ApiError. */
export async function api(path, { method = "GET", body, token } = {}) {
  const headers = { Accept: "application/json" };
  const bearer = token ?? loadSession()?.token;
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data?.error);
  return data;
}

/** Every item of a paged list (`{items, nextOffset}`), following `nextOffset`. */
export async function apiAll(path) {
  const items = [];
  let offset = 0;
  const joiner = path.includes("?") ? "&" : "?";
  while (offset !== null && offset !== undefined) {
    const page = await api(`${path}${joiner}limit=100&offset=${offset}`);
    items.push(...page.items);
    offset = page.nextOffset;
  }
  return items;
}

/** The page's session, or off to sign-in. */
export function requireSession() {
  const session = loadSession();
  if (!session?.token) {
    toSignIn();
    throw new Error("not signed in");
  }
  return session;
}

const STATE_TEXT = {
  connecting: "Connecting…",
  connected: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
  closed: "Disconnected",
};

/** Show an error in the page's alert line (an API error is shown kindly). */
export function showMessage(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

export function describeError(error) {
  if (error?.code === "rate_limited") return `Too many requests; wait ${error.retryAfter || "a few"} seconds.`;
  if (error?.code === "disconnected") return "Not connected; trying again shortly.";
  return error?.message || "Something went wrong.";
}

/**
 * Header wiring and the socket: the user's name, the connection state (always visible), sign-out.
 * Returns the started RealtimeClient; subscribe to topics on it. `hooks`: more RealtimeClient
 * options (`onConnected`, `onSubscribed`, ...), e.g. to ask for presence after each reconnect.
 */
export function startPage(session, hooks = {}) {
  const who = document.getElementById("who");
  if (who) who.textContent = `${session.user.firstName} ${session.user.lastName}`.trim() || session.user.email;
  const conn = document.getElementById("conn");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const client = new RealtimeClient({
    ...hooks,
    url: `${scheme}://${location.host}/ws/`,
    getToken: () => loadSession()?.token,
    refreshToken: async () => {
      const renewed = await api("/auth/refresh", { method: "POST" });
      saveSession(renewed);
      return renewed.token;
    },
    onState: (state) => {
      conn.dataset.state = state;
      conn.textContent = STATE_TEXT[state] || state;
    },
    onAuthLost: (code) => toSignIn(code === CLOSE_REVOKED ? "revoked" : "expired"),
  });
  document.getElementById("signout").addEventListener("click", async () => {
    client.stop();
    try {
      await api("/auth/logout", { method: "POST" });
    } finally {
      toSignIn();
    }
  });
  client.start();
  // The notification bell (templates/web/notifications_bell.html) on every page that has one.
  if (document.getElementById("bell")) import("./bell.js").then((bell) => bell.startBell(client, session));
  return client;
}

/** "just now", "5 min ago", "3 h ago", "2 d ago": how long ago `iso` was. */
export function age(iso, now = Date.now()) {
  const minutes = Math.max(0, Math.floor((now - Date.parse(iso)) / 60000));
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  if (minutes < 48 * 60) return `${Math.floor(minutes / 60)} h ago`;
  return `${Math.floor(minutes / 1440)} d ago`;
}

export const STATUS_LABELS = {
  submitted: "Submitted",
  assigned: "Assigned",
  in_progress: "In progress",
  completed: "Completed",
  cancelled: "Cancelled",
};

/** API calls that fail with 401 mean the session is gone. */
export function handleApiFailure(error, messageElement) {
  if (error instanceof ApiError && error.status === 401) {
    toSignIn("expired");
    return;
  }
  showMessage(messageElement, describeError(error));
}
