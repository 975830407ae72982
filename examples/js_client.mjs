// A small PMS realtime client for Node.js 20.10+ with no npm packages: see docs/protocol.md.
//
//   node --experimental-websocket examples/js_client.mjs --url http://127.0.0.1:8000 \
//       --email manager@example.com --password secret --conversation <uuid> --message "hi" --seconds 30
//
// Node 20 has a global WebSocket only behind --experimental-websocket (Node 22+: always).
// The protocol itself (the `auth` first frame, subscriptions resumed with `since`, replies
// matched by `ref`, reconnects with backoff and jitter per close code, `session.expiring`
// answered with a refresh) is the web app's client, apps/web/static/web/realtime.js, the same
// module the browser pages use. This script logs in with fetch, subscribes to its
// notifications and one conversation, sends one chat message (idempotent through its
// clientMessageId) and prints what arrives.

import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";

if (typeof WebSocket !== "function") {
  // Node 20 started without the flag: run this script again with it (once).
  if (process.env.PMS_EXAMPLE_REEXEC) {
    console.error("this Node.js has no WebSocket: use Node.js 20.10+ with --experimental-websocket");
    process.exit(2);
  }
  const again = spawnSync(process.execPath, ["--experimental-websocket", ...process.argv.slice(1)],
    { stdio: "inherit", env: { ...process.env, PMS_EXAMPLE_REEXEC: "1" } });
  process.exit(again.status ?? 1);
}

const { RealtimeClient, CLOSE_REVOKED } = await import("../apps/web/static/web/realtime.js");
const say = (line) => console.log(line);

function usage(problem) {
  console.error(`${problem}\nusage: js_client.mjs --email E --password P ` +
    "[--url URL] [--conversation UUID] [--message TEXT] [--seconds N]");
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { url: "http://127.0.0.1:8000", seconds: "60" };
  for (let i = 0; i < argv.length; i++) {
    const match = /^--(url|email|password|conversation|message|seconds)(?:=(.*))?$/.exec(argv[i]);
    if (!match) usage(`unknown argument ${argv[i]}`);
    opts[match[1]] = match[2] ?? argv[++i];
  }
  if (!opts.email || !opts.password) usage("--email and --password are required");
  if (!(Number(opts.seconds) > 0)) usage("--seconds must be a positive number");
  return { ...opts, url: opts.url.replace(/\/+$/, ""), seconds: Number(opts.seconds) };
}

async function login(opts) {
  const response = await fetch(`${opts.url}/api/v1/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: opts.email, password: opts.password }),
  }).catch((error) => {
    console.error(`login failed: ${error.cause?.message ?? error.message}`);
    process.exit(1);
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    console.error(`login failed: HTTP ${response.status} ${JSON.stringify(body)}`);
    process.exit(1);
  }
  return body;
}

const opts = parseArgs(process.argv.slice(2));
let { token, user } = await login(opts);
say(`logged in as ${user.email} (${user.userType})`);

// POST /api/v1/auth/refresh: the new token (the old one stops after a short grace).
async function refreshToken() {
  const response = await fetch(`${opts.url}/api/v1/auth/refresh`, {
    method: "POST", headers: { Authorization: `Bearer ${token}` },
  });
  if (!response.ok) throw new Error(`refresh failed: HTTP ${response.status}`);
  token = (await response.json()).token; // also the token of the next reconnect
  return token;
}

const seen = new Set(); // message ids already shown: a message may come as reply and as event
const clientMessageId = randomUUID(); // the same on every retry: never a duplicate
let sent = !(opts.message && opts.conversation);

function onEvent(frame) {
  const { topic, event, data } = frame;
  const messageId = event === "chat.message" && data && typeof data === "object" ? data.id : undefined;
  const duplicate = messageId !== undefined && seen.has(messageId);
  if (messageId !== undefined) seen.add(messageId);
  const text = data && typeof data === "object" && "message" in data ? data.message : JSON.stringify(data);
  say(`event ${event} on ${topic}: ${text}${duplicate ? " (duplicate, ignored)" : ""}`);
}

async function send() {
  try {
    const data = await client.command({
      type: "chat.send", conversationId: opts.conversation, message: opts.message, clientMessageId,
    });
    sent = true;
    seen.add(data.id);
    say(`reply chat.send ok: stored message ${data.id}: ${data.message}`);
  } catch (error) {
    say(`reply chat.send failed: ${error.code}: ${error.message}`);
    if (!["unavailable", "rate_limited", "disconnected"].includes(error.code)) sent = true; // retrying will not help
  }
}

const client = new RealtimeClient({
  url: `${opts.url.replace(/^http/, "ws")}/ws/`,
  getToken: () => token,
  refreshToken,
  onState: (state) => say(`connection ${state}`),
  onConnected: (data) => {
    say(`connected as ${data.userId} (${data.userType})`);
    if (!sent) send();
  },
  onSubscribed: (topic, data) => {
    const missed = data.missed ?? []; // present when `since` was sent
    const gap = data.recovered === false ? " but events were lost: reload this topic's state over HTTP" : "";
    say(`subscribed ${topic} at ${data.offset}, ${missed.length} missed${gap}`);
  },
  onRenewed: (data) => say(`session renewed until ${data.expiresAt}`),
  onUnsubscribed: (topic, reason) => say(`access to ${topic} lost (${reason})`),
  onAuthLost: (code) => {
    say(`closed ${code}: ${code === CLOSE_REVOKED ? "session revoked (logged out elsewhere)" : "token rejected or expired: log in again"}; stopping`);
    process.exit(1);
  },
});
client.subscribe(`notifications:${user.id}`, { onEvent });
if (opts.conversation) client.subscribe(`chat:messages:${opts.conversation}`, { onEvent });
client.start();
setTimeout(() => {
  client.stop();
  process.exit(0);
}, opts.seconds * 1000);
