// What trimming produced, as the trim page shows it: my clips (play, download, requested
// against actual cut) and my trim requests (status, progress, failure, Restart).

import { formatEta, formatSeconds, h } from "../dom.js";

/** The clips of `GET /api/v1/users/videos`, as list items. */
export function clipItems(clips) {
  if (!clips.length) return h("li", { class: "hint" }, "No clips yet.");
  return clips.map((clip) => {
    const attributes = clip.attributes;
    const play = h("button", { type: "button", class: "btn" }, "Play");
    const asked = `${formatSeconds(attributes.requested_start)} + ${formatSeconds(attributes.requested_duration)} asked`;
    const item = h(
      "li",
      { class: "clip-item" },
      h(
        "div",
        {},
        h("strong", {}, `Clip ${attributes.duration}`),
        " ",
        h("span", { class: "meta" }, asked),
      ),
      h("div", { class: "actions" }, play, downloadButton(attributes.url, `clip-${clip.id}.mp4`)),
    );
    play.addEventListener("click", () => {
      play.remove();
      const video = h("video", {
        controls: true,
        autoplay: true,
        playsinline: true,
        src: attributes.url,
        "aria-label": "Clip",
      });
      item.append(h("div", { class: "player-frame" }, video), cutTable(attributes));
    });
    return item;
  });
}

/** The requests of `GET /api/v1/users/requests`, as list items; a failed one has a
 * Restart button calling `restart(id)`. */
export function requestItems(requests, restart) {
  if (!requests.length) return h("li", { class: "hint" }, "No trim requests yet.");
  return requests.map((request) => {
    const attributes = request.attributes;
    return h(
      "li",
      { class: "request-item", "data-status": attributes.status },
      h("span", { class: "meta" }, `Request ${request.id.slice(-6)}`),
      h("span", { class: `status status-${attributes.status}` }, requestLine(attributes)),
      attributes.failure_reason ? h("span", { class: "meta" }, attributes.failure_reason) : null,
      attributes.status === "failed"
        ? h(
            "button",
            { type: "button", class: "btn", onclick: () => restart(request.id) },
            "Restart",
          )
        : null,
    );
  });
}

const STATUS_WORDS = {
  scheduled: "Scheduled",
  processing: "Cutting",
  done: "Done",
  failed: "Failed",
};

export function requestLine(attributes) {
  const word = STATUS_WORDS[attributes.status] || attributes.status;
  if (
    attributes.status !== "processing" ||
    attributes.progress === null ||
    attributes.progress === undefined
  )
    return word;
  const left = formatEta(attributes.eta_seconds);
  return `${word}: ${Math.round(attributes.progress * 100)} %${left ? `, ${left}` : ""}`;
}

/** Requested against actual cut, as a small table. */
export function cutTable(attributes) {
  const row = (label, asked, got) =>
    h("tr", {}, h("th", { scope: "row" }, label), h("td", {}, asked), h("td", {}, got));
  const method =
    attributes.cut_method === "smart"
      ? "Cut smartly: whole groups of pictures copied, only the edges re-encoded."
      : attributes.cut_method === "reencode"
        ? `Re-encoded${attributes.reencode_reason ? `: ${attributes.reencode_reason}` : ""}.`
        : null;
  const table = h(
    "table",
    { class: "cut-table" },
    h("caption", {}, "Requested and actual cut"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("td", {}),
        h("th", { scope: "col" }, "Requested"),
        h("th", { scope: "col" }, "Actual"),
      ),
    ),
    h(
      "tbody",
      {},
      row(
        "Start",
        formatSeconds(attributes.requested_start),
        formatSeconds(attributes.actual_start),
      ),
      row(
        "Duration",
        formatSeconds(attributes.requested_duration),
        formatSeconds(attributes.actual_duration),
      ),
    ),
  );
  return h("div", { class: "cut" }, table, method ? h("p", { class: "hint" }, method) : null);
}

/** Download a presigned file under a readable name (fetched, then saved from a blob:
 * a cross-origin link's `download` name is ignored by browsers). */
export function downloadButton(url, fileName) {
  return h(
    "button",
    {
      type: "button",
      class: "btn",
      onclick: async () => {
        try {
          const response = await fetch(url);
          if (!response.ok) throw new Error(String(response.status));
          const objectUrl = URL.createObjectURL(await response.blob());
          const link = h("a", { href: objectUrl, download: fileName, hidden: true });
          document.body.append(link);
          link.click();
          link.remove();
          setTimeout(() => URL.revokeObjectURL(objectUrl), 10000);
        } catch {
          window.open(url, "_blank", "noopener");
        }
      },
    },
    "Download",
  );
}
