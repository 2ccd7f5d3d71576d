// Upload: drop a video or choose one; its type and size are checked against
// `GET /video/upload/config` before anything is sent; then it goes straight to storage
// with a progress bar (resumable for large files, see uploads.js), and the page follows
// its processing on the event stream until it can be watched.

import { api } from "../api.js";
import { formatBytes, formatEta, h, notice, progressBar, replace } from "../dom.js";
import { subscribe } from "../events.js";
import { currentSession } from "../session.js";
import { abandonUpload, contentTypeOf, unfinishedUpload, uploadVideo } from "../uploads.js";

const TYPE_NAMES = {
  "video/mp4": "MP4",
  "video/quicktime": "QuickTime (.mov)",
  "video/webm": "WebM",
  "video/x-matroska": "Matroska (.mkv)",
  "video/x-msvideo": "AVI",
  "video/mpeg": "MPEG",
  "video/ogg": "Ogg",
  "video/3gpp": "3GP",
  "video/mp2t": "MPEG-TS",
};

/** Why Kino will not take this file, in words; null when it will. */
export function refusal(file, config) {
  if (!config) return null;
  const type = contentTypeOf(file);
  if (!config.valid_file_types.includes(type)) {
    const accepted = config.valid_file_types.map((t) => TYPE_NAMES[t] || t).join(", ");
    return `“${file.name}” is not a video Kino accepts (${type || "unknown type"}). Accepted: ${accepted}.`;
  }
  if (file.size === 0) return `“${file.name}” is empty.`;
  if (file.size > config.max_size_in_bytes) {
    return `“${file.name}” is ${formatBytes(file.size)}; Kino accepts videos up to ${formatBytes(config.max_size_in_bytes)}.`;
  }
  return null;
}

export function render(main, _params, app) {
  let alive = true;
  let config = null;
  let file = null;
  let controller = null;
  let stopFollowing = null;

  const messages = h("div", { class: "messages" });
  const input = h("input", {
    id: "file",
    type: "file",
    accept: "video/*",
    class: "visually-hidden",
  });
  const chosen = h("span", { class: "chosen" }, "No file chosen");
  const limits = h("p", { class: "hint", id: "upload-limits" });
  const zone = h(
    "label",
    { class: "dropzone", for: "file", "aria-describedby": "upload-limits" },
    h("span", { class: "dropzone-title" }, "Drop a video here"),
    h("span", {}, "or ", h("span", { class: "link-like" }, "choose a file")),
    chosen,
    input,
  );
  const title = h("input", { id: "title", name: "title", maxlength: "200" });
  const description = h("textarea", {
    id: "description",
    name: "description",
    rows: "3",
    maxlength: "5000",
  });
  const isPrivate = h("input", { id: "is-private", type: "checkbox" });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, "Upload");
  const cancel = h("button", { type: "button", class: "btn", hidden: true }, "Cancel");
  const discard = h(
    "button",
    { type: "button", class: "btn", hidden: true },
    "Discard the unfinished upload",
  );
  const transfer = progressBar("Upload progress");
  transfer.element.hidden = true;
  const processing = h("div", { class: "follow", "aria-live": "polite" });

  const form = h(
    "form",
    { class: "card form", novalidate: true },
    h("h1", {}, "Upload a video"),
    messages,
    zone,
    limits,
    h("label", { for: "title" }, "Title"),
    title,
    h("label", { for: "description" }, "Description"),
    description,
    h("label", { class: "check", for: "is-private" }, isPrivate, "Private: only I can watch it"),
    h("div", { class: "actions" }, submit, cancel, discard),
    transfer.element,
    processing,
  );
  main.append(form);

  (async () => {
    try {
      config = await api("/video/upload/config");
      if (!alive) return;
      const types = config.valid_file_types.map((t) => TYPE_NAMES[t] || t).join(", ");
      limits.textContent = `Up to ${formatBytes(config.max_size_in_bytes)}. ${types}.`;
      input.accept = config.valid_file_types.join(",");
    } catch (error) {
      if (alive) replace(messages, notice("error", error.message));
    }
  })();

  function choose(candidate) {
    replace(messages);
    file = candidate;
    chosen.textContent = candidate
      ? `${candidate.name} (${formatBytes(candidate.size)})`
      : "No file chosen";
    if (!candidate) return;
    const problem = refusal(candidate, config);
    if (problem) {
      replace(messages, notice("error", problem));
      file = null;
      return;
    }
    if (!title.value) title.value = candidate.name.replace(/\.[^.]+$/, "");
    const unfinished = unfinishedUpload(candidate);
    discard.hidden = !unfinished;
    if (unfinished)
      replace(
        messages,
        notice(
          "info",
          "Part of this file was sent before: uploading it again sends only the rest.",
        ),
      );
  }

  input.addEventListener("change", () => choose(input.files[0] || null));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer.files.length) choose(event.dataTransfer.files[0]);
  });
  cancel.addEventListener("click", () => controller?.abort());
  discard.addEventListener("click", async () => {
    if (file) await abandonUpload(file);
    discard.hidden = true;
    replace(messages, notice("info", "The unfinished upload was discarded."));
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(messages);
    if (!file) {
      replace(messages, notice("error", "Please choose a video to upload."));
      input.focus();
      return;
    }
    const problem = refusal(file, config);
    if (problem) {
      replace(messages, notice("error", problem));
      return;
    }
    const details = {
      title: (title.value.trim() || file.name).slice(0, 200),
      description: description.value,
      is_private: isPrivate.checked,
    };
    controller = new AbortController();
    submit.disabled = true;
    cancel.hidden = false;
    transfer.element.hidden = false;
    transfer.update(0, "Starting…");
    replace(processing);
    const started = performance.now();
    try {
      const hashId = await uploadVideo(file, details, {
        signal: controller.signal,
        onProgress: (sent, total) => {
          const seconds = (performance.now() - started) / 1000;
          const eta = sent > 0 ? ((total - sent) * seconds) / sent : null;
          transfer.update(
            sent / total,
            `${formatBytes(sent)} of ${formatBytes(total)} sent${sent < total && eta !== null ? `, ${formatEta(eta)}` : ""}`,
          );
        },
      });
      if (!alive) return;
      transfer.update(1, "Uploaded");
      discard.hidden = true;
      follow(hashId, details.title);
      file = null;
      input.value = "";
      chosen.textContent = "No file chosen";
      title.value = "";
      description.value = "";
    } catch (error) {
      if (alive) replace(messages, notice("error", error.message));
    } finally {
      controller = null;
      submit.disabled = false;
      cancel.hidden = true;
    }
  });

  /** Follow the uploaded video's processing here until it can be watched or fails. */
  function follow(hashId, name) {
    if (stopFollowing) stopFollowing();
    const bar = progressBar(`Processing ${name}`, { rising: true });
    bar.update(null, "Waiting for processing to start…");
    const line = h("p", {}, `“${name}” is uploaded and being processed.`);
    replace(processing, line, bar.element);
    const userId = currentSession()?.userId;
    const watchLink = () =>
      h(
        "a",
        {
          class: "btn btn-primary",
          href: `#/watch/${encodeURIComponent(userId)}/${encodeURIComponent(hashId)}`,
        },
        "Watch it",
      );
    let done = false;
    const finish = (ready, reason) => {
      if (done) return;
      done = true;
      stopFollowing?.();
      stopFollowing = null;
      if (ready) {
        bar.update(1, "Ready");
        replace(
          processing,
          notice("success", `“${name}” is ready.`),
          h(
            "p",
            { class: "actions" },
            watchLink(),
            h("a", { class: "btn", href: "#/my" }, "My videos"),
          ),
        );
      } else {
        replace(
          processing,
          notice("error", `“${name}” could not be processed: ${reason || "unknown reason"}.`),
          h("p", {}, h("a", { href: "#/my" }, "Retry it from My videos")),
        );
      }
    };
    const check = async () => {
      try {
        const mine = await api("/video/my/");
        if (mine.videos.some((video) => video.hash_id === hashId)) finish(true);
        const failed = mine.unprocessed_videos.find(
          (video) => video.hash_id === hashId && video.status === "failed",
        );
        if (failed) finish(false, failed.failure_reason);
      } catch {
        // the stream or the next check will tell
      }
    };
    const stop = subscribe((event) => {
      const data = event.data;
      if (event.type === "job.progress" && data?.job === "video" && data.id === hashId) {
        bar.update(
          data.fraction,
          `${Math.round(data.fraction * 100)} %${data.eta_seconds ? `, ${formatEta(data.eta_seconds)}` : ""}`,
        );
      } else if (
        (event.type === "video.ready" || event.type === "video.failed") &&
        data?.hash_id === hashId
      ) {
        check();
      }
    });
    const timer = setInterval(check, 5000);
    stopFollowing = () => {
      stop();
      clearInterval(timer);
    };
    check();
  }

  return () => {
    alive = false;
    controller?.abort();
    stopFollowing?.();
  };
}
