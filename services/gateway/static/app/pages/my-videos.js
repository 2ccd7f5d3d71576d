// My videos (`GET /video/my/`): processed ones with edit (`PUT /video/my/{hash_id}`:
// title, description, privacy) and delete (`DELETE`, after a confirmation); the others
// with their live status: progress bar and ETA from the event stream's `job.progress`,
// a failure's reason and a retry button (`POST /video/my/{hash_id}/retry`). The list is
// read again when the stream says a video is ready or failed, and every few seconds
// while the stream is down and something is still on its way.

import { api } from "../api.js";
import {
  confirmDialog,
  formatDate,
  formatDuration,
  formatEta,
  h,
  notice,
  progressBar,
  replace,
} from "../dom.js";
import { onConnection, subscribe } from "../events.js";

const POLL_MS = 3000;
const STATUS_TEXT = {
  pending: "Waiting for the file to arrive in storage",
  processing: "Processing",
  failed: "Failed",
};

export function render(main, _params, app) {
  let alive = true;
  let streaming = false;
  let pollTimer = null;
  let listed = { videos: [], unprocessed_videos: [] };
  const drafts = new Map(); // hash_id → the edit form's values while it is open
  const bars = new Map(); // hash_id → progress bar of a video being processed

  const messages = h("div", { class: "messages" });
  const unprocessedSection = h("section", {
    "aria-labelledby": "unprocessed-heading",
    hidden: true,
  });
  const videosList = h("ul", { class: "my-list", "aria-label": "My videos" });
  main.append(
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, "My videos"),
      h(
        "div",
        { class: "actions" },
        h("a", { class: "btn", href: "#/webhooks" }, "Webhooks"),
        h("a", { class: "btn btn-primary", href: "#/upload" }, "Upload a video"),
      ),
    ),
    messages,
    unprocessedSection,
    h(
      "section",
      { "aria-labelledby": "videos-heading" },
      h("h2", { id: "videos-heading" }, "Published"),
      videosList,
    ),
  );

  async function reload() {
    try {
      const found = await api("/video/my/");
      if (!alive) return;
      listed = found;
      draw();
    } catch (error) {
      if (alive) replace(messages, notice("error", error.message));
    }
    schedulePoll();
  }

  function schedulePoll() {
    clearTimeout(pollTimer);
    const waiting = listed.unprocessed_videos.some((video) => video.status !== "failed");
    if (alive && waiting && !streaming) pollTimer = setTimeout(reload, POLL_MS);
  }

  function draw() {
    bars.clear();
    const unprocessed = listed.unprocessed_videos;
    unprocessedSection.hidden = unprocessed.length === 0;
    replace(
      unprocessedSection,
      h("h2", { id: "unprocessed-heading" }, "On the way"),
      h(
        "ul",
        { class: "my-list", "aria-label": "Videos being processed" },
        unprocessed.map(unprocessedItem),
      ),
    );
    replace(
      videosList,
      listed.videos.length
        ? listed.videos.map(videoItem)
        : h(
            "li",
            { class: "hint" },
            "Nothing published yet. Uploaded videos show here once they are processed.",
          ),
    );
  }

  function unprocessedItem(video) {
    const item = h(
      "li",
      { class: "my-item", "data-hash-id": video.hash_id, "data-status": video.status },
      h(
        "div",
        { class: "my-item-body" },
        h("strong", {}, video.file_name),
        h(
          "span",
          { class: `status status-${video.status}` },
          STATUS_TEXT[video.status] || video.status,
        ),
        h("span", { class: "meta" }, `Uploaded ${formatDate(video.upload_time)}`),
      ),
    );
    const body = item.firstChild;
    if (video.status === "processing") {
      const bar = progressBar(`Processing ${video.file_name}`, { rising: true });
      bar.update(
        video.progress ?? null,
        video.progress !== null && video.progress !== undefined
          ? progressLine(video.progress, video.eta_seconds)
          : "Starting…",
      );
      bars.set(video.hash_id, bar);
      body.append(bar.element);
    }
    if (video.status === "failed") {
      body.append(notice("error", video.failure_reason || "Processing failed."));
    }
    const actions = h("div", { class: "actions" });
    if (video.status === "failed") {
      actions.append(
        h(
          "button",
          { type: "button", class: "btn btn-primary", onclick: () => retry(video) },
          "Retry",
        ),
      );
    }
    if (video.status !== "processing") {
      actions.append(
        h(
          "button",
          {
            type: "button",
            class: "btn btn-danger",
            onclick: () => remove(video, video.file_name),
          },
          "Delete",
        ),
      );
    }
    item.append(actions);
    return item;
  }

  function videoItem(video) {
    const watchHref = `#/watch/${encodeURIComponent(video.user_id)}/${encodeURIComponent(video.hash_id)}`;
    const item = h("li", {
      class: "my-item",
      "data-hash-id": video.hash_id,
      "data-status": "processed",
    });
    const thumb = h(
      "a",
      { class: "my-thumb", href: watchHref, tabindex: "-1", "aria-hidden": "true" },
      video.thumbnail_url
        ? h("img", {
            src: video.thumbnail_url,
            alt: "",
            width: "160",
            height: "90",
            loading: "lazy",
          })
        : h("div", { class: "thumb-missing" }, "▶"),
    );
    item.append(thumb);
    if (drafts.has(video.hash_id)) {
      item.append(editForm(video));
      return item;
    }
    item.append(
      h(
        "div",
        { class: "my-item-body" },
        h("a", { class: "video-title", href: watchHref }, video.title),
        h(
          "span",
          { class: "meta" },
          video.is_private
            ? h("span", { class: "badge" }, "Private")
            : h("span", { class: "badge badge-public" }, "Public"),
          ` ${formatDuration(video.duration_seconds)} · ${formatDate(video.listing_time)}`,
        ),
        video.description ? h("span", { class: "description clamp" }, video.description) : null,
      ),
      h(
        "div",
        { class: "actions" },
        h(
          "button",
          {
            type: "button",
            class: "btn",
            onclick: () => {
              drafts.set(video.hash_id, {
                title: video.title,
                description: video.description,
                is_private: video.is_private,
              });
              draw();
              document.getElementById(`title-${video.hash_id}`)?.focus();
            },
          },
          "Edit",
        ),
        h("a", { class: "btn", href: `#/trim/${encodeURIComponent(video.hash_id)}` }, "Trim"),
        h(
          "button",
          { type: "button", class: "btn btn-danger", onclick: () => remove(video, video.title) },
          "Delete",
        ),
      ),
    );
    return item;
  }

  function editForm(video) {
    const draft = drafts.get(video.hash_id);
    const id = video.hash_id;
    const error = h("div", { class: "messages" });
    const title = h("input", {
      id: `title-${id}`,
      name: "title",
      required: true,
      maxlength: "200",
      value: draft.title,
      oninput: () => (draft.title = title.value),
    });
    const description = h("textarea", {
      id: `description-${id}`,
      name: "description",
      maxlength: "5000",
      rows: "3",
      oninput: () => (draft.description = description.value),
    });
    description.value = draft.description;
    const isPrivate = h("input", {
      id: `private-${id}`,
      name: "is_private",
      type: "checkbox",
      checked: draft.is_private,
      onchange: () => (draft.is_private = isPrivate.checked),
    });
    const save = h("button", { type: "submit", class: "btn btn-primary" }, "Save");
    const form = h(
      "form",
      { class: "form edit-form", "aria-label": `Edit ${video.title}` },
      error,
      h("label", { for: `title-${id}` }, "Title"),
      title,
      h("label", { for: `description-${id}` }, "Description"),
      description,
      h(
        "label",
        { class: "check", for: `private-${id}` },
        isPrivate,
        "Private: only I can watch it",
      ),
      h(
        "div",
        { class: "actions" },
        save,
        h(
          "button",
          {
            type: "button",
            class: "btn",
            onclick: () => {
              drafts.delete(id);
              draw();
            },
          },
          "Cancel",
        ),
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!title.value.trim()) {
        replace(error, notice("error", "The title cannot be empty."));
        title.focus();
        return;
      }
      save.disabled = true;
      try {
        await api(`/video/my/${encodeURIComponent(id)}`, {
          method: "PUT",
          json: {
            title: title.value.trim(),
            description: description.value,
            is_private: isPrivate.checked,
          },
        });
        drafts.delete(id);
        app.toast("Saved.");
        await reload();
      } catch (failure) {
        replace(error, notice("error", failure.message));
        save.disabled = false;
      }
    });
    return form;
  }

  async function retry(video) {
    try {
      await api(`/video/my/${encodeURIComponent(video.hash_id)}/retry`, { method: "POST" });
      app.toast("Trying again.");
    } catch (error) {
      replace(messages, notice("error", error.message));
    }
    await reload();
  }

  async function remove(video, name) {
    if (!(await confirmDialog(`Delete “${name}”? This cannot be undone.`, "Delete"))) return;
    try {
      await api(`/video/my/${encodeURIComponent(video.hash_id)}`, { method: "DELETE" });
      drafts.delete(video.hash_id);
      app.toast("Deleted.");
    } catch (error) {
      replace(messages, notice("error", error.message));
    }
    await reload();
  }

  const stopEvents = subscribe((event) => {
    if (event.type === "job.progress" && event.data?.job === "video") {
      const bar = bars.get(event.data.id);
      if (bar)
        bar.update(event.data.fraction, progressLine(event.data.fraction, event.data.eta_seconds));
      else if (
        ![...listed.unprocessed_videos, ...listed.videos].some(
          (video) => video.hash_id === event.data.id,
        )
      )
        reload();
    } else if (event.type === "video.ready" || event.type === "video.failed") {
      reload();
    }
  });
  const stopConnection = onConnection((connected) => {
    streaming = connected;
    if (connected)
      reload(); // anything missed while it was down
    else schedulePoll();
  });
  reload();

  return () => {
    alive = false;
    clearTimeout(pollTimer);
    stopEvents();
    stopConnection();
  };
}

function progressLine(fraction, eta) {
  const percent = `${Math.round((fraction || 0) * 100)} %`;
  const left = formatEta(eta);
  return left ? `${percent}, ${left}` : percent;
}
