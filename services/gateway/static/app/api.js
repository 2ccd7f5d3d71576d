// Kino's HTTP API, as the pages use it: one `api()` call for JSON requests through the
// gateway, and `ApiError`, whose message is what a person reads. The two API styles
// (FastAPI's `detail` for /video/..., JSON:API's `errors` for /api/v1/...) and the
// store's XML errors all end up as one readable sentence.

import { currentSession, signOut } from "./session.js";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const STATUS_MESSAGES = {
  401: "Your session has ended. Please sign in again.",
  403: "You are not allowed to do that.",
  404: "Not found. It may have been deleted, or it is private.",
  413: "The file is larger than Kino accepts.",
  425: "This video is still being processed. Try again when it is done.",
  429: "Too many attempts. Please wait a moment and try again.",
  502: "Kino is not reachable right now. Please try again shortly.",
  503: "Kino is not reachable right now. Please try again shortly.",
  504: "Kino took too long to answer. Please try again.",
};

/** The readable message of an error body of either API style (or of the store). */
export function errorMessage(status, body, retryAfter = null) {
  let message = null;
  if (body && typeof body === "object") {
    if (Array.isArray(body.errors)) {
      message = body.errors
        .map((error) => error.detail || error.title)
        .filter(Boolean)
        .join(" ");
    } else if (typeof body.detail === "string") {
      message = body.detail;
    } else if (Array.isArray(body.detail)) {
      message = body.detail
        .map((item) => {
          const field = (item.loc || []).filter((part) => part !== "body" && part !== "query");
          return field.length ? `${field.join(".")}: ${item.msg}` : item.msg;
        })
        .join(" ");
    }
  } else if (typeof body === "string" && body.includes("<Error>")) {
    message = storageMessage(body);
  }
  if (
    status === 401 &&
    (!message || message === "Not authorized" || message === "Not authenticated")
  ) {
    message = STATUS_MESSAGES[401];
  }
  if (status === 429 && retryAfter) {
    message = `Too many attempts. Please try again in ${retryAfter} seconds.`;
  }
  return message || STATUS_MESSAGES[status] || `Something went wrong (HTTP ${status}).`;
}

/** An S3 `<Error>` document as a sentence. */
export function storageMessage(xml) {
  const code = /<Code>([^<]*)<\/Code>/.exec(xml)?.[1];
  const known = {
    EntityTooLarge: "The file is larger than Kino accepts.",
    EntityTooSmall: "The file is empty.",
    AccessDenied: "Storage refused the upload. Its permission may have expired: please try again.",
    RequestTimeTooSkewed: "Your computer's clock is wrong, so storage refused the upload.",
  };
  if (code && known[code]) return known[code];
  const text = /<Message>([^<]*)<\/Message>/.exec(xml)?.[1];
  return text ? `Storage refused the upload: ${text}` : "Storage refused the upload.";
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The Authorization header of the signed-in person (empty when signed out). */
export function authHeaders() {
  const session = currentSession();
  return session ? { Authorization: `Bearer ${session.token}` } : {};
}

/**
 * A request to the gateway. `json` is sent as a JSON body, `form` as
 * `application/x-www-form-urlencoded`; the parsed body comes back (null for none).
 * A 401 on an authenticated request ends the session.
 */
export async function api(path, { method = "GET", json, form, query, auth = true } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null) url.searchParams.set(name, value);
  }
  const headers = auth ? authHeaders() : {};
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body });
  } catch {
    throw new ApiError(0, "Kino could not be reached. Check your connection and try again.");
  }
  const parsed = await readBody(response);
  if (!response.ok) {
    if (response.status === 401 && headers.Authorization) signOut();
    throw new ApiError(
      response.status,
      errorMessage(response.status, parsed, response.headers.get("Retry-After")),
    );
  }
  return parsed;
}

/**
 * A request sent with XMLHttpRequest, the one browser API that reports upload
 * progress: `onProgress(sentBytes, totalBytes)`. Resolves with `{status, body, etag}`
 * on 2xx; rejects with an `ApiError` otherwise. `signal` aborts it.
 */
export function sendWithProgress(method, url, body, { headers = {}, onProgress, signal } = {}) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(method, url);
    for (const [name, value] of Object.entries(headers)) request.setRequestHeader(name, value);
    request.upload.addEventListener("progress", (event) => {
      if (onProgress && event.lengthComputable) onProgress(event.loaded, event.total);
    });
    request.addEventListener("load", () => {
      let parsed = request.responseText;
      try {
        parsed = JSON.parse(request.responseText);
      } catch {
        // XML from storage, or nothing
      }
      if (request.status >= 200 && request.status < 300) {
        resolve({ status: request.status, body: parsed, etag: request.getResponseHeader("ETag") });
      } else {
        reject(new ApiError(request.status, errorMessage(request.status, parsed)));
      }
    });
    request.addEventListener("error", () =>
      reject(new ApiError(0, "The upload was interrupted. Check your connection and try again.")),
    );
    request.addEventListener("abort", () => reject(new ApiError(0, "The upload was cancelled.")));
    if (signal) {
      if (signal.aborted) {
        reject(new ApiError(0, "The upload was cancelled."));
        return;
      }
      signal.addEventListener("abort", () => request.abort());
    }
    request.send(body);
  });
}
