/**
 * A small client for the PMS realtime protocol (docs/protocol.md), as an ES module with no
 * dependencies: it runs in any browser and is the reference a mobile app can copy.
 *
 * What it guarantees:
 * - One socket to `/ws/`, authenticated with the `auth` first frame (browsers cannot set headers).
 * - `subscribe(topic, {onEvent, onReset})` keeps the topic across reconnects. After every
 *   (re)connect it subscribes again with `since` = the offset of the last event it passed on:
 *   - `recovered: true`: the `missed` events are handed to `onEvent` in order;
 *   - `recovered: false`, or the first subscription (nothing to recover from): `onReset()` is
 *     called, so the page reloads that topic's state over HTTP.
 *   A stored event (one with an `offset`) is passed to `onEvent` at most once, even when a
 *   recovery overlaps with what arrived live. Ephemeral events (no offset) are passed as they come.
 * - `command(frame)` sends a frame with a fresh `ref` and returns a promise of the reply's `data`;
 *   it rejects with an `Error` whose `code` is the protocol's error code (or `disconnected`
 *   when the socket is not open or drops before the reply).
 * - Reconnects after each close code as docs/protocol.md says: exponential backoff from 1 s to
 *   30 s with jitter (a random delay between half and all of it), reset once a connection is
 *   authenticated; 1012 (server restarting) comes back within a second; 4429 waits at least
 *   30 s; 4401 (bad or expired token) and 4409 (session revoked) never reconnect: `onAuthLost`.
 * - `session.expiring`: calls `refreshToken()` (the page's `POST /api/v1/auth/refresh`) and hands
 *   the new token to the socket with `auth.refresh`; subscriptions are kept.
 * - `onState(state)` is told every change: `connecting`, `connected`, `reconnecting`, `offline`
 *   (the browser reports no network; reconnects as soon as it is back), `closed`.
 */

export const CLOSE_NORMAL = 1000;
export const CLOSE_RESTART = 1012;
export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_REVOKED = 4409;
export const CLOSE_FLOODING = 4429;

const SEEN_PER_TOPIC = 1000; // the server keeps at most 1,000 events per topic

export class RealtimeClient {
  /**
   * @param {object} options
   * @param {string} options.url the socket URL, e.g. `wss://host/ws/`
   * @param {() => string} options.getToken the current session token
   * @param {() => Promise<string>} [options.refreshToken] renews the session over HTTP; the new token
   * @param {(state: string) => void} [options.onState]
   * @param {(closeCode: number) => void} [options.onAuthLost] 4401/4409: sign in again
   * @param {(topic: string, reason: string) => void} [options.onUnsubscribed] access to a topic was lost
   * @param {(data: object) => void} [options.onConnected] the `auth` reply's data, after each (re)connect
   * @param {(topic: string, data: object) => void} [options.onSubscribed] each `subscribe` reply's data
   * @param {(data: object) => void} [options.onRenewed] the `auth.refresh` reply's data
   * @param {number} [options.baseDelay] first backoff, ms
   * @param {number} [options.maxDelay] backoff cap, ms
   */
  constructor(options) {
    this.options = { baseDelay: 1000, maxDelay: 30000, ...options };
    this.topics = new Map(); // topic -> {onEvent, onReset, offset, seen: Set<string>}
    this.pending = new Map(); // ref -> {resolve, reject}
    this.nextRef = 1;
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.stopped = false;
    this.authenticated = false;
    this.state = "";
    this._online = () => this._reconnectNow();
    this._offline = () => this._setState("offline");
    globalThis.addEventListener?.("online", this._online);
    globalThis.addEventListener?.("offline", this._offline);
  }

  /** Open the socket (and keep it open until `stop()` or an authentication loss). */
  start() {
    this.stopped = false;
    this._connect("connecting");
  }

  /** Close for good (sign-out): no reconnect; pending commands reject. */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    globalThis.removeEventListener?.("online", this._online);
    globalThis.removeEventListener?.("offline", this._offline);
    if (this.ws) this.ws.close(CLOSE_NORMAL);
    this._failPending();
    this._setState("closed");
  }

  /**
   * Follow `topic`: `onEvent(frame)` for each event, `onReset()` whenever the page must load the
   * topic's state over HTTP (first subscription, `recovered: false`). Resolves with the reply data.
   */
  subscribe(topic, { onEvent, onReset }) {
    const entry = { onEvent, onReset, offset: null, seen: new Set() };
    this.topics.set(topic, entry);
    return this.state === "connected" ? this._subscribe(topic, entry) : Promise.resolve(null);
  }

  /** Stop following `topic`. */
  unsubscribe(topic) {
    this.topics.delete(topic);
    return this.state === "connected" ? this.command({ type: "unsubscribe", topic }) : Promise.resolve({});
  }

  /** Send `frame` with a fresh `ref`; resolves with the reply's `data`, rejects with `error.code`. */
  command(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(protocolError({ code: "disconnected", message: "Not connected." }));
    }
    const ref = this.nextRef++;
    return new Promise((resolve, reject) => {
      this.pending.set(ref, { resolve, reject });
      this.ws.send(JSON.stringify({ ...frame, ref }));
    });
  }

  // --- the connection -----------------------------------------------------------------

  _connect(state) {
    if (this.stopped) return;
    if (globalThis.navigator && navigator.onLine === false) {
      this._setState("offline");
      return;
    }
    this._setState(state);
    const ws = new WebSocket(this.options.url, ["pms.v1.json"]);
    this.ws = ws;
    ws.onopen = () => this._authenticate(ws);
    ws.onmessage = (message) => this._receive(message.data);
    ws.onclose = (closed) => {
      if (this.ws === ws) this._closed(closed.code);
    };
    // Node 20's WebSocket fires no close event when the connection cannot be made.
    ws.onerror = () =>
      setTimeout(() => {
        if (this.ws === ws && ws.readyState !== WebSocket.OPEN) this._closed(1006);
      }, 1000);
  }

  async _authenticate(ws) {
    let data;
    try {
      data = await this.command({ type: "auth", token: this.options.getToken() });
    } catch {
      return; // a refused token is followed by close 4401, handled in _closed
    }
    if (this.ws !== ws) return;
    this.attempt = 0;
    this.authenticated = true;
    this._setState("connected");
    for (const [topic, entry] of this.topics) {
      this._subscribe(topic, entry).catch(() => {}); // a failure is reported by _subscribe
    }
    this.options.onConnected?.(data); // its commands go out after the subscribe frames
  }

  async _subscribe(topic, entry) {
    const frame = { type: "subscribe", topic };
    if (entry.offset) frame.since = entry.offset;
    let data;
    try {
      data = await this.command(frame);
    } catch (error) {
      if (error.code === "forbidden") this.topics.delete(topic);
      if (error.code !== "disconnected") this.options.onUnsubscribed?.(topic, error.code);
      throw error;
    }
    if (this.topics.get(topic) !== entry) return data; // unsubscribed meanwhile
    this.options.onSubscribed?.(topic, data);
    if (data.recovered === true) {
      for (const frame of data.missed) this._deliver(entry, frame);
      if (!entry.offset) entry.offset = data.offset;
    } else {
      entry.offset = data.offset; // the current position: the HTTP reload starts from here
      entry.seen.clear();
      entry.onReset?.();
    }
    return data;
  }

  _closed(code) {
    this.ws = null;
    this.authenticated = false;
    this._failPending();
    if (this.stopped) return;
    if (code === CLOSE_UNAUTHORIZED || code === CLOSE_REVOKED) {
      this.stopped = true;
      this._setState("closed");
      this.options.onAuthLost?.(code);
      return;
    }
    const { baseDelay, maxDelay } = this.options;
    let delay = Math.min(maxDelay, baseDelay * 2 ** this.attempt);
    if (code === CLOSE_RESTART && this.attempt === 0) delay = baseDelay; // another process is ready
    if (code === CLOSE_FLOODING) delay = Math.max(delay, 30000);
    this.attempt += 1;
    const wait = delay / 2 + Math.random() * (delay / 2);
    if (globalThis.navigator && navigator.onLine === false) {
      this._setState("offline");
      return; // the `online` event reconnects
    }
    this._setState("reconnecting");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this._connect("reconnecting"), wait);
  }

  _reconnectNow() {
    if (this.stopped) return;
    if (this.ws) {
      // The network came back before the socket noticed it was gone: it is still the live one.
      if (this.ws.readyState === WebSocket.OPEN && this.authenticated) this._setState("connected");
      return;
    }
    clearTimeout(this.timer);
    this._connect("reconnecting");
  }

  _failPending() {
    for (const { reject } of this.pending.values()) {
      reject(protocolError({ code: "disconnected", message: "The connection dropped." }));
    }
    this.pending.clear();
  }

  _setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.options.onState?.(state);
  }

  // --- frames ------------------------------------------------------------------------

  _receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    switch (frame.type) {
      case "reply": {
        const waiting = this.pending.get(frame.ref);
        if (!waiting) return;
        this.pending.delete(frame.ref);
        if (frame.ok) waiting.resolve(frame.data);
        else waiting.reject(protocolError(frame.error));
        return;
      }
      case "event": {
        const entry = this.topics.get(frame.topic);
        if (entry) this._deliver(entry, frame);
        return;
      }
      case "unsubscribed":
        this.topics.delete(frame.topic);
        this.options.onUnsubscribed?.(frame.topic, frame.reason);
        return;
      case "session.expiring":
        this._refresh();
        return;
      case "error":
        console.warn("realtime error", frame.error);
        return;
      default:
        return; // pong and anything newer
    }
  }

  _deliver(entry, frame) {
    if (frame.offset) {
      if (entry.seen.has(frame.offset)) return; // already applied (recovery overlapping live)
      entry.seen.add(frame.offset);
      if (entry.seen.size > SEEN_PER_TOPIC) entry.seen.delete(entry.seen.values().next().value);
      entry.offset = frame.offset;
    }
    try {
      entry.onEvent?.(frame);
    } catch (error) {
      console.error("event handler failed", error);
    }
  }

  async _refresh() {
    if (!this.options.refreshToken) return;
    try {
      const token = await this.options.refreshToken();
      const renewed = await this.command({ type: "auth.refresh", token });
      this.options.onRenewed?.(renewed); // (an optional call skips its arguments: send first)
    } catch (error) {
      console.warn("session refresh failed", error); // the socket keeps its session until it ends
    }
  }
}

function protocolError(error) {
  const failure = new Error(error?.message || "request failed");
  failure.code = error?.code || "unknown";
  if (error?.retryAfter !== undefined) failure.retryAfter = error.retryAfter;
  return failure;
}
