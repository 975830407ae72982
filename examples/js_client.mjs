// A small PMS realtime client for Node.js 20.10+ with no npm packages: see docs/protocol.md.
//
//   node --experimental-websocket examples/js_client.mjs --url http://127.0.0.1:8000 \
//       --email manager@example.com --password secret --conversation <uuid> --message "hi" --seconds 30
//
// Node 20 has a global WebSocket only behind --experimental-websocket (Node 22+: always).
// Like a browser's, it cannot set headers, so it authenticates with a first frame
// {"type": "auth", "token": ...}. It logs in with fetch, subscribes to its notifications
// and one conversation, sends one chat message (idempotent through its clientMessageId),
// prints what arrives, and after a dropped connection reconnects with backoff and
// resubscribes with `since` = the last offset seen on each topic.

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

const STOP = {
  4401: "token rejected or expired: log in again",
  4409: "session revoked (logged out elsewhere)",
  1009: "frame too big: fix the client",
};
const say = (line) => console.log(line);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

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

// POST /api/v1/auth/refresh: a new token (the old one stops after a short grace); null on failure.
async function refresh() {
  try {
    const response = await fetch(`${opts.url}/api/v1/auth/refresh`, {
      method: "POST", headers: { Authorization: `Bearer ${token}` },
    });
    if (response.ok) return await response.json();
    say(`refresh failed: HTTP ${response.status}`);
  } catch (error) {
    say(`refresh failed: ${error.message}`);
  }
  return null;
}
say(`logged in as ${user.email} (${user.userType})`);

const topics = [`notifications:${user.id}`];
if (opts.conversation) topics.push(`chat:messages:${opts.conversation}`);
const offsets = new Map(); // topic -> last offset seen (a real app persists this)
const seen = new Set(); // message ids already shown: delivery is at least once
const clientMessageId = randomUUID(); // the same on every retry: never a duplicate
let sent = !(opts.message && opts.conversation);
let delay = 1000;
const deadline = Date.now() + opts.seconds * 1000;

function onEvent(frame) {
  const { topic, event, data } = frame;
  if (frame.offset) offsets.set(topic, frame.offset); // ephemeral events (chat.typing, presence) have none
  const messageId = event === "chat.message" && data && typeof data === "object" ? data.id : undefined;
  const duplicate = messageId !== undefined && seen.has(messageId);
  if (messageId !== undefined) seen.add(messageId);
  const text = data && typeof data === "object" && "message" in data ? data.message : JSON.stringify(data);
  say(`event ${event} on ${topic}: ${text}${duplicate ? " (duplicate, ignored)" : ""}`);
}

// One connection: resolves with the close code (1000 when --seconds ran out).
function session() {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${opts.url.replace(/^http/, "ws")}/ws/`, "pms.v1.json");
    const pending = new Map(); // ref -> [command, topic]
    let nextRef = 0;
    const command = (frame, topic) => {
      pending.set(++nextRef, [frame.type, topic]);
      ws.send(JSON.stringify({ ...frame, ref: nextRef }));
    };
    const timer = setTimeout(() => ws.close(1000), deadline - Date.now());
    const finish = (code) => { clearTimeout(timer); resolve(code); }; // a second call does nothing
    ws.onopen = () => command({ type: "auth", token }); // within 10 s, before anything else
    ws.onclose = (close) => finish(close.code);
    // Node 20's WebSocket fires no close event when the connection cannot be made.
    ws.onerror = () => setTimeout(() => finish(1006), 1000);
    ws.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      if (frame.type === "event") return onEvent(frame);
      if (frame.type === "unsubscribed") { // access lost: nothing more comes on it
        topics.splice(0, topics.length, ...topics.filter((name) => name !== frame.topic));
        return say(`access to ${frame.topic} lost (${frame.reason})`);
      }
      if (frame.type === "error") return say(`error: ${frame.error.code}: ${frame.error.message}`);
      if (frame.type === "session.expiring") { // renew now; the socket and subscriptions stay
        return refresh().then((renewed) => {
          if (!renewed) return;
          token = renewed.token; // also the token of the next reconnect
          command({ type: "auth.refresh", token });
        });
      }
      if (frame.type !== "reply") return;
      const [kind, topic] = pending.get(frame.ref) ?? ["?", null];
      pending.delete(frame.ref);
      if (!frame.ok) {
        say(`reply ${kind} failed: ${frame.error.code}: ${frame.error.message}`);
        if (kind === "chat.send" && !["unavailable", "rate_limited"].includes(frame.error.code)) sent = true;
        return;
      }
      const data = frame.data;
      if (kind === "auth") {
        say(`connected as ${data.userId} (${data.userType})`);
        delay = 1000; // a good connection resets the backoff
        for (const name of topics) {
          const since = offsets.get(name);
          command({ type: "subscribe", topic: name, ...(since ? { since } : {}) }, name);
        }
        if (!sent) {
          command({ type: "chat.send", conversationId: opts.conversation, message: opts.message, clientMessageId });
        }
      } else if (kind === "subscribe") {
        offsets.set(topic, data.offset);
        const missed = data.missed ?? []; // present when `since` was sent
        const gap = data.recovered === false ? " but events were lost: reload this topic's state over HTTP" : "";
        say(`subscribed ${topic} at ${data.offset}, ${missed.length} missed${gap}`);
        for (const event of missed) onEvent(event);
      } else if (kind === "auth.refresh") {
        say(`session renewed until ${data.expiresAt}`);
      } else if (kind === "chat.send") {
        sent = true;
        seen.add(data.id);
        say(`reply chat.send ok: stored message ${data.id}: ${data.message}`);
      } else {
        say(`reply ${kind} ok: ${JSON.stringify(data)}`);
      }
    };
  });
}

while (Date.now() < deadline) {
  const code = await session();
  if (Date.now() >= deadline) break;
  if (STOP[code]) {
    say(`closed ${code}: ${STOP[code]}; stopping`);
    process.exit(1);
  }
  say(`closed ${code}: reconnecting with since`); // 1012 restart, 4008 too slow, 1006 network
  if (code === 4429) delay = Math.max(delay, 30000); // flooded the server: back off harder
  await sleep(Math.min(delay * (0.5 + Math.random() / 2), deadline - Date.now())); // jitter
  delay = Math.min(delay * 2, 60000);
}
process.exit(0);
