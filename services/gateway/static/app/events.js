// The signed-in person's live events (`GET /api/v1/users/events`, Server-Sent Events).
// The stream needs `Authorization: Bearer`, which EventSource cannot send, so it is
// read with fetch() and parsed here (the `id:`, `event:`, `data:`, `retry:` fields and
// comments of the SSE format). One connection is shared by every page that listens;
// when it drops it reconnects with `Last-Event-ID`, so no event is lost in between.

import { authHeaders } from "./api.js";
import { onSessionChange } from "./session.js";

const listeners = new Set();
const stateListeners = new Set();
let controller = null;
let lastEventId = null;
let retryMs = 1000;
let connected = false;

/** Listen to events: `listener({type, id, data, timestamp})`, `data` being the event's
 * subject (`{job, id, fraction, eta_seconds}` for `job.progress`, the video for
 * `video.ready`, the trim request for `trim.done`, …); returns the function that stops it. */
export function subscribe(listener) {
  listeners.add(listener);
  if (!controller) start();
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0 && controller) {
      controller.abort();
      controller = null;
      setConnected(false);
    }
  };
}

/** Told `true`/`false` as the stream connects and drops (pages poll while it is down). */
export function onConnection(listener) {
  stateListeners.add(listener);
  listener(connected);
  return () => stateListeners.delete(listener);
}

function setConnected(value) {
  if (connected === value) return;
  connected = value;
  stateListeners.forEach((listener) => listener(value));
}

// Another person (or nobody) signed in: their stream starts afresh, from now.
onSessionChange(() => {
  lastEventId = null;
  if (controller) {
    controller.abort();
    controller = null;
    setConnected(false);
    if (listeners.size) start();
  }
});

function start() {
  controller = new AbortController();
  run(controller.signal);
}

async function run(signal) {
  let failures = 0;
  while (!signal.aborted) {
    const auth = authHeaders();
    if (!auth.Authorization) return;
    try {
      const headers = { ...auth, Accept: "text/event-stream" };
      if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
      const response = await fetch("/api/v1/users/events", { headers, signal, cache: "no-store" });
      if (response.status === 401) return;
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      setConnected(true);
      failures = 0;
      await readStream(response.body, signal);
    } catch {
      if (signal.aborted) return;
      failures += 1;
    }
    setConnected(false);
    if (signal.aborted) return;
    const delay = Math.min(30000, retryMs * 2 ** Math.min(failures, 5));
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

async function readStream(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = eventParser(dispatch);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done || signal.aborted) return;
      parser(value);
    }
  } finally {
    reader.releaseLock();
  }
}

function dispatch(event) {
  if (event.id !== null) lastEventId = event.id;
  if (event.data === null) return;
  let body;
  try {
    body = JSON.parse(event.data);
  } catch {
    return; // every Kino event is JSON
  }
  // The body is the webhook's `{type, timestamp, data}`: listeners get its subject.
  const data = body && typeof body === "object" && "data" in body ? body.data : body;
  listeners.forEach((listener) =>
    listener({ type: event.type, id: event.id, data, timestamp: body?.timestamp }),
  );
}

/** A parser fed chunks of text; calls `emit({type, id, data})` per complete event. */
export function eventParser(emit) {
  let buffer = "";
  let type = "";
  let data = [];
  let id = null;
  let seenId = false;
  return (chunk) => {
    let text = buffer + chunk;
    // A trailing "\r" may be the first half of "\r\n": it waits for the next chunk.
    const held = text.endsWith("\r") ? "\r" : "";
    if (held) text = text.slice(0, -1);
    const lines = text.split(/\r\n|\r|\n/);
    buffer = lines.pop() + held;
    for (const line of lines) {
      if (line === "") {
        if (data.length || seenId) {
          emit({
            type: type || "message",
            id: seenId ? id : null,
            data: data.length ? data.join("\n") : null,
          });
        }
        type = "";
        data = [];
        seenId = false;
        continue;
      }
      if (line.startsWith(":")) continue; // a comment: keep-alive
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "id" && !value.includes("\0")) {
        id = value;
        seenId = true;
      } else if (field === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
    }
  };
}
