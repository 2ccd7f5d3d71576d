// Kino's web app: one page (`/app/`) whose views are hash routes, so the gateway serves
// a single document and the views survive a reload and the back button:
//
//   #/explore                    public videos, more on scroll (`GET /video/explore/`)
//   #/user/<user_id>             one person's public videos (`GET /video/user/{id}`)
//   #/watch/<user_id>/<hash_id>  the player (`GET /video/watch/`)
//   #/my                         my videos, live status, edit, retry, delete (signed in)
//   #/upload                     upload straight to storage (signed in)
//   #/trim, #/trim/<hash_id>     cut a clip, follow it, play and download it (signed in)
//   #/webhooks                   where my results are POSTed (signed in)
//   #/signin, #/signup
//
// Each view is a module under pages/ exporting `render(main, params, app)`, which may
// return a function that stops what it started (streams, timers) when the view changes.

import { h, replace } from "./dom.js";
import { currentSession, onSessionChange, signOut } from "./session.js";
import * as explore from "./pages/explore.js";
import * as watch from "./pages/watch.js";
import * as myVideos from "./pages/my-videos.js";
import * as upload from "./pages/upload.js";
import * as trim from "./pages/trim.js";
import * as account from "./pages/account.js";
import * as webhooks from "./pages/webhooks.js";

const ROUTES = [
  { pattern: /^\/explore$/, page: explore, title: "Explore" },
  { pattern: /^\/user\/([^/]+)$/, page: explore, title: "Videos", names: ["userId"] },
  {
    pattern: /^\/watch\/([^/]+)\/([^/]+)$/,
    page: watch,
    title: "Watch",
    names: ["userId", "hashId"],
  },
  { pattern: /^\/my$/, page: myVideos, title: "My videos", signedIn: true },
  { pattern: /^\/upload$/, page: upload, title: "Upload", signedIn: true },
  {
    pattern: /^\/trim(?:\/([^/]+))?$/,
    page: trim,
    title: "Trim",
    signedIn: true,
    names: ["hashId"],
  },
  { pattern: /^\/webhooks$/, page: webhooks, title: "Webhooks", signedIn: true },
  { pattern: /^\/signin$/, page: account, title: "Sign in", params: { mode: "signin" } },
  { pattern: /^\/signup$/, page: account, title: "Sign up", params: { mode: "signup" } },
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const toastBox = document.getElementById("toast");
let stopView = null;
let returnTo = null;
let toastTimer = null;

const app = {
  navigate(path) {
    if (window.location.hash === `#${path}`) show();
    else window.location.hash = path;
  },
  /** After signing in: back where the person was sent from, else My videos. */
  afterSignIn() {
    const target = returnTo || "/my";
    returnTo = null;
    app.navigate(target);
  },
  toast(text) {
    toastBox.textContent = text;
    toastBox.classList.add("visible");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => toastBox.classList.remove("visible"), 4000);
  },
  setTitle(title) {
    document.title = title ? `${title} · Kino` : "Kino";
  },
};

function renderNav(path) {
  const session = currentSession();
  const link = (href, label) =>
    h(
      "li",
      {},
      h("a", { href: `#${href}`, "aria-current": path.startsWith(href) ? "page" : false }, label),
    );
  const items = [link("/explore", "Explore")];
  if (session) {
    items.push(link("/my", "My videos"), link("/upload", "Upload"), link("/trim", "Trim"));
    items.push(
      h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: "link-button",
            title: `Signed in as ${session.email || "you"}`,
            onclick: () => {
              app.navigate("/explore");
              signOut();
              app.toast("Signed out.");
            },
          },
          "Sign out",
        ),
      ),
    );
  } else {
    items.push(link("/signin", "Sign in"), link("/signup", "Sign up"));
  }
  replace(nav, items);
}

function show() {
  const hash = window.location.hash;
  if (hash && !hash.startsWith("#/")) return; // an in-page anchor
  const path = hash.slice(1) || "/explore";
  if (stopView) {
    stopView();
    stopView = null;
  }
  renderNav(path);
  for (const route of ROUTES) {
    const match = route.pattern.exec(path);
    if (!match) continue;
    if (route.signedIn && !currentSession()) {
      returnTo = path;
      app.navigate("/signin");
      return;
    }
    const params = { ...(route.params || {}) };
    (route.names || []).forEach((name, index) => {
      if (match[index + 1] !== undefined) params[name] = decodeURIComponent(match[index + 1]);
    });
    app.setTitle(route.title);
    main.replaceChildren();
    const stop = route.page.render(main, params, app);
    stopView = typeof stop === "function" ? stop : null;
    main.focus({ preventScroll: true });
    window.scrollTo(0, 0);
    return;
  }
  app.setTitle("Not found");
  replace(
    main,
    h("h1", {}, "Page not found"),
    h("p", {}, h("a", { href: "#/explore" }, "Explore videos")),
  );
}

document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", show);
onSessionChange(() => {
  const path = window.location.hash.slice(1) || "/explore";
  const route = ROUTES.find((candidate) => candidate.pattern.test(path));
  // Signed out (here, in another tab, or by an expired token) on a page that needs it.
  if (route?.signedIn && !currentSession()) show();
  else renderNav(path);
});
show();
