// The signed-in person: the access token from `POST /api/v1/users/session`, kept in
// this origin's localStorage (so every tab of the app shares it) and sent only in
// `Authorization` headers to the gateway: never in a URL, never in a cookie.

const KEY = "kino.session";
const listeners = new Set();

function decodeClaims(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, "=")));
  } catch {
    return {};
  }
}

/** `{token, email, userId, expiresAt}` while signed in and the token is not expired. */
export function currentSession() {
  let stored;
  try {
    stored = JSON.parse(localStorage.getItem(KEY) || "null");
  } catch {
    stored = null;
  }
  if (!stored || !stored.token) return null;
  const claims = decodeClaims(stored.token);
  const expiresAt = claims.exp ? claims.exp * 1000 : null;
  if (expiresAt !== null && expiresAt <= Date.now()) {
    localStorage.removeItem(KEY);
    return null;
  }
  return { token: stored.token, email: stored.email, userId: claims.sub, expiresAt };
}

export function signedIn(token, email) {
  localStorage.setItem(KEY, JSON.stringify({ token, email }));
  listeners.forEach((listener) => listener());
}

export function signOut() {
  localStorage.removeItem(KEY);
  listeners.forEach((listener) => listener());
}

/** Called whenever this tab signs in or out, or another tab does. */
export function onSessionChange(listener) {
  listeners.add(listener);
}

window.addEventListener("storage", (event) => {
  if (event.key === KEY || event.key === null) listeners.forEach((listener) => listener());
});
