// Watch (`GET /video/watch/`): the player (HLS through hls.js, else the progressive
// file), title, description and owner. A private video answers only its owner; anyone
// else gets "not found", as the API says.

import { api } from "../api.js";
import { formatDate, formatDuration, h, notice } from "../dom.js";
import { attachPlayer } from "../player.js";
import { currentSession } from "../session.js";

export function render(main, { userId, hashId }, app) {
  let alive = true;
  let player = null;
  const loading = h("p", { class: "hint" }, "Loading…");
  main.append(loading);

  (async () => {
    let record;
    try {
      record = await api("/video/watch/", { query: { user_id: userId, hash_id: hashId } });
    } catch (error) {
      if (!alive) return;
      loading.remove();
      const message =
        error.status === 404 ? "This video does not exist, or it was deleted." : error.message;
      main.append(
        h("h1", {}, "Video unavailable"),
        notice("error", message),
        h("p", {}, h("a", { href: "#/explore" }, "Explore other videos")),
      );
      return;
    }
    if (!alive) return;
    loading.remove();
    const video = record.video;
    const session = currentSession();
    const isOwner = session && session.userId === video.user_id;
    app.setTitle(video.title);

    const element = h("video", {
      id: "player",
      controls: true,
      playsinline: true,
      preload: "metadata",
      poster: video.thumbnail_url || false,
      "aria-label": `Video: ${video.title}`,
    });
    const rungs = (record.ladder?.renditions || []).map((rung) => `${rung.height}p`);
    const pending = (record.ladder?.pending || []).map((height) => `${height}p`);
    main.append(
      h(
        "article",
        { class: "watch" },
        h("div", { class: "player-frame" }, element),
        h(
          "h1",
          { class: "watch-title" },
          video.title,
          video.is_private ? h("span", { class: "badge" }, "Private") : null,
        ),
        h(
          "p",
          { class: "meta" },
          isOwner
            ? "Your video"
            : h(
                "a",
                { href: `#/user/${encodeURIComponent(video.user_id)}` },
                "More from this uploader",
              ),
          " · ",
          formatDate(video.listing_time || video.upload_time),
          video.duration_seconds !== null ? ` · ${formatDuration(video.duration_seconds)}` : "",
          rungs.length ? ` · ${rungs.join(", ")}` : "",
          pending.length ? ` (${pending.join(", ")} coming)` : "",
        ),
        video.description ? h("p", { class: "description" }, video.description) : null,
        isOwner
          ? h(
              "p",
              { class: "actions" },
              h("a", { class: "btn", href: "#/my" }, "Edit in My videos"),
              h(
                "a",
                { class: "btn", href: `#/trim/${encodeURIComponent(video.hash_id)}` },
                "Trim a clip",
              ),
            )
          : null,
      ),
    );
    player = await attachPlayer(element, record);
    if (!alive) player.destroy();
  })();

  return () => {
    alive = false;
    if (player) player.destroy();
  };
}
