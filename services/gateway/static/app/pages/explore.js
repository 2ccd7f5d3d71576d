// Explore (`GET /video/explore/`) and one person's videos (`GET /video/user/{id}`): a
// grid of thumbnails, titles and durations; the next page (`next`) loads when the end
// of the grid scrolls into view, or with the "More videos" button.

import { api } from "../api.js";
import { formatDate, formatDuration, h, notice, replace } from "../dom.js";
import { currentSession } from "../session.js";

const INCLUDE_MY = "kino.explore.includeMy";

/** One video as a card linking to its watch page. */
export function videoCard(video) {
  const thumbnail = video.thumbnail_url
    ? h("img", { src: video.thumbnail_url, alt: "", loading: "lazy", width: "320", height: "180" })
    : h("div", { class: "thumb-missing", "aria-hidden": "true" }, "▶");
  return h(
    "li",
    { class: "video-card" },
    h(
      "a",
      { href: `#/watch/${encodeURIComponent(video.user_id)}/${encodeURIComponent(video.hash_id)}` },
      h(
        "div",
        { class: "thumb" },
        thumbnail,
        video.duration_seconds !== null && video.duration_seconds !== undefined
          ? h(
              "span",
              {
                class: "duration",
                "aria-label": `Duration ${formatDuration(video.duration_seconds)}`,
              },
              formatDuration(video.duration_seconds),
            )
          : null,
      ),
      h("span", { class: "video-title" }, video.title),
    ),
    h("span", { class: "meta" }, formatDate(video.listing_time || video.upload_time)),
  );
}

export function render(main, { userId }, app) {
  let alive = true;
  let next = null;
  let loading = false;
  const session = currentSession();
  const mine = userId && session && session.userId === userId;
  const heading = h(
    "h1",
    {},
    userId ? (mine ? "My public videos" : "Videos of one person") : "Explore",
  );
  const grid = h("ul", { class: "video-grid", "aria-label": "Videos" });
  const status = h("div", { class: "messages", "aria-live": "polite" });
  const more = h(
    "button",
    { type: "button", class: "btn", hidden: true, onclick: () => load() },
    "More videos",
  );
  const sentinel = h("div", { class: "sentinel", "aria-hidden": "true" });

  let includeMy = null;
  if (!userId && session) {
    includeMy = h("input", {
      type: "checkbox",
      id: "include-my",
      checked: localStorage.getItem(INCLUDE_MY) !== "false",
      onchange: () => {
        localStorage.setItem(INCLUDE_MY, String(includeMy.checked));
        restart();
      },
    });
  }

  main.append(
    h(
      "div",
      { class: "page-head" },
      heading,
      includeMy
        ? h("label", { class: "check", for: "include-my" }, includeMy, "Include my videos")
        : null,
    ),
    status,
    grid,
    h("div", { class: "actions center" }, more),
    sentinel,
  );

  async function load() {
    if (loading || !alive) return;
    loading = true;
    more.disabled = true;
    try {
      const path = userId ? `/video/user/${encodeURIComponent(userId)}` : "/video/explore/";
      const query = { next };
      if (includeMy && includeMy.checked) query.include_my = "true";
      const page = await api(path, { query });
      if (!alive) return;
      grid.append(...page.videos.map(videoCard));
      next = page.next || null;
      more.hidden = !next;
      if (!grid.children.length) {
        replace(
          status,
          notice(
            "info",
            userId ? "No public videos here yet." : "No videos yet. Be the first to upload one!",
          ),
        );
      }
    } catch (error) {
      if (alive) replace(status, notice("error", error.message));
    } finally {
      loading = false;
      more.disabled = false;
    }
  }

  function restart() {
    next = null;
    grid.replaceChildren();
    replace(status);
    load();
  }

  const observer = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting) && next) load();
  });
  observer.observe(sentinel);
  app.setTitle(userId ? "Videos" : "Explore");
  load();
  return () => {
    alive = false;
    observer.disconnect();
  };
}
