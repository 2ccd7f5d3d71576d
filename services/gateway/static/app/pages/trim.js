// Trim: take a source (a file from this device, or one of my videos: its playback file
// — the highest rung, `watchable_url` — fetched into the browser and sent as the
// upload's file, since the trimming API takes a file), choose the start and duration on
// a player with frame stepping, send it (`POST /api/v1/users/videos`, with an upload
// progress bar), follow the request live (`job.progress`, `trim.done`, `trim.failed` on
// the event stream; `GET /api/v1/users/requests`), then play and download the clip and
// see what was asked for against what was cut (`GET /api/v1/users/videos`).
//
// Frame stepping moves by one frame of the source. The API does not say a video's frame
// rate, so the page measures it while the video plays (requestVideoFrameCallback) and
// assumes 30 frames per second until it knows.

import { ApiError, api, authHeaders, sendWithProgress } from "../api.js";
import { formatSeconds, h, notice, progressBar, replace } from "../dom.js";
import { subscribe } from "../events.js";
import { contentTypeOf } from "../uploads.js";
import { clipItems, cutTable, downloadButton, requestItems, requestLine } from "./trim-results.js";

const ASSUMED_FPS = 30;
const POLL_MS = 3000;

export function render(main, { hashId }, app) {
  let alive = true;
  let source = null; // {blob?: File|Blob, name, url, revoke?}
  let fps = ASSUMED_FPS;
  let measured = false;
  let stopFollowing = null;
  let myVideos = [];

  const messages = h("div", { class: "messages" });

  // --- the source ----------------------------------------------------------------
  const fromFile = h("input", {
    type: "radio",
    name: "source-kind",
    id: "source-file",
    value: "file",
    checked: !hashId,
  });
  const fromMine = h("input", {
    type: "radio",
    name: "source-kind",
    id: "source-mine",
    value: "mine",
    checked: Boolean(hashId),
  });
  const fileInput = h("input", { type: "file", id: "trim-file", accept: "video/*" });
  const mineSelect = h(
    "select",
    { id: "trim-video" },
    h("option", { value: "" }, "Loading my videos…"),
  );
  const fileField = h(
    "div",
    { class: "field" },
    h("label", { for: "trim-file" }, "Video file"),
    fileInput,
  );
  const mineField = h(
    "div",
    { class: "field" },
    h("label", { for: "trim-video" }, "My video"),
    mineSelect,
  );

  // --- the span ------------------------------------------------------------------
  const video = h("video", {
    id: "trim-player",
    controls: true,
    playsinline: true,
    preload: "auto",
    "aria-label": "Source preview",
  });
  const position = h("output", { id: "trim-position", "aria-live": "off" }, "0.000 s");
  const fpsNote = h("span", { class: "hint" });
  const start = h("input", {
    id: "trim-start",
    type: "number",
    min: "0",
    step: "0.001",
    value: "0",
    inputmode: "decimal",
  });
  const duration = h("input", {
    id: "trim-duration",
    type: "number",
    min: "0.001",
    step: "0.001",
    value: "1",
    inputmode: "decimal",
  });
  const spanNote = h("p", { class: "hint", id: "span-note" });
  const stepBack = h(
    "button",
    { type: "button", class: "btn", "aria-label": "Back one frame", onclick: () => step(-1) },
    "◀ Frame",
  );
  const stepForward = h(
    "button",
    { type: "button", class: "btn", "aria-label": "Forward one frame", onclick: () => step(1) },
    "Frame ▶",
  );
  const setStart = h(
    "button",
    { type: "button", class: "btn", onclick: () => markStart() },
    "Start here",
  );
  const setEnd = h(
    "button",
    { type: "button", class: "btn", onclick: () => markEnd() },
    "End here",
  );
  const previewSpan = h(
    "button",
    { type: "button", class: "btn", onclick: () => playSpan() },
    "Play span",
  );
  const name = h("input", { id: "trim-name", maxlength: "255", required: true });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, "Cut the clip");
  const transfer = progressBar("Upload progress");
  transfer.element.hidden = true;
  const follow = h("div", { class: "follow", "aria-live": "polite" });
  const clips = h("ul", { class: "clip-list", "aria-label": "My clips" });
  const requests = h("ul", { class: "request-list", "aria-label": "My trim requests" });

  const form = h(
    "form",
    { class: "card form", novalidate: true },
    h("h1", {}, "Trim a clip"),
    messages,
    h(
      "fieldset",
      {},
      h("legend", {}, "Source"),
      h("label", { class: "check", for: "source-file" }, fromFile, "A file from this device"),
      h("label", { class: "check", for: "source-mine" }, fromMine, "One of my videos"),
      fileField,
      mineField,
    ),
    h("div", { class: "player-frame" }, video),
    h(
      "div",
      { class: "stepper" },
      h(
        "div",
        { class: "stepper-group", role: "group", "aria-label": "Frame stepping" },
        stepBack,
        h("span", { class: "position" }, position),
        stepForward,
      ),
      h(
        "div",
        { class: "stepper-group", role: "group", "aria-label": "Span" },
        setStart,
        setEnd,
        previewSpan,
      ),
    ),
    fpsNote,
    h(
      "div",
      { class: "two-columns" },
      h("div", { class: "field" }, h("label", { for: "trim-start" }, "Start (seconds)"), start),
      h(
        "div",
        { class: "field" },
        h("label", { for: "trim-duration" }, "Duration (seconds)"),
        duration,
      ),
    ),
    spanNote,
    h("label", { for: "trim-name" }, "Clip name"),
    name,
    h("div", { class: "actions" }, submit),
    transfer.element,
    follow,
  );
  main.append(
    form,
    h(
      "section",
      { class: "card", "aria-labelledby": "clips-heading" },
      h("h2", { id: "clips-heading" }, "My clips"),
      clips,
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "requests-heading" },
      h("h2", { id: "requests-heading" }, "Trim requests"),
      requests,
    ),
  );

  // --- choosing the source ---------------------------------------------------------
  function showKind() {
    fileField.hidden = !fromFile.checked;
    mineField.hidden = !fromMine.checked;
  }
  fromFile.addEventListener("change", () => {
    showKind();
    useFile(fileInput.files[0]);
  });
  fromMine.addEventListener("change", () => {
    showKind();
    useMine(mineSelect.value);
  });
  fileInput.addEventListener("change", () => useFile(fileInput.files[0]));
  mineSelect.addEventListener("change", () => useMine(mineSelect.value));

  function setSource(next) {
    if (source?.revoke) URL.revokeObjectURL(source.url);
    source = next;
    measured = false;
    fps = ASSUMED_FPS;
    showFps();
    if (!next) {
      video.removeAttribute("src");
      video.load();
      return;
    }
    video.src = next.url;
    if (!name.value || name.dataset.auto === "true") {
      name.value = `${next.name.replace(/\.[^.]+$/, "")} clip`;
      name.dataset.auto = "true";
    }
  }
  name.addEventListener("input", () => (name.dataset.auto = "false"));

  function useFile(file) {
    replace(messages);
    if (!file) return setSource(null);
    setSource({ file, name: file.name, url: URL.createObjectURL(file), revoke: true });
  }

  async function useMine(chosen) {
    replace(messages);
    const found = myVideos.find((item) => item.hash_id === chosen);
    if (!found) return setSource(null);
    try {
      const record = await api("/video/watch/", {
        query: { user_id: found.user_id, hash_id: found.hash_id },
      });
      if (!alive) return;
      setSource({ hashId: found.hash_id, name: found.title, url: record.watchable_url });
    } catch (error) {
      replace(messages, notice("error", error.message));
    }
  }

  async function loadMine() {
    try {
      const mine = await api("/video/my/");
      if (!alive) return;
      myVideos = mine.videos;
      replace(
        mineSelect,
        h(
          "option",
          { value: "" },
          myVideos.length ? "Choose one of my videos" : "No processed videos yet",
        ),
        myVideos.map((item) =>
          h("option", { value: item.hash_id, selected: item.hash_id === hashId }, item.title),
        ),
      );
      if (hashId && fromMine.checked) useMine(hashId);
    } catch (error) {
      if (alive) replace(messages, notice("error", error.message));
    }
  }

  // --- the player: position, frame stepping, the span ----------------------------------
  const frame = () => 1 / fps;
  function showFps() {
    fpsNote.textContent = measured
      ? `Frame steps of 1/${fps} s (the video's frame rate, measured while it played).`
      : `Frame steps of 1/${fps} s (assumed until the video has played a moment; Kino's API does not give the frame rate).`;
  }
  function showPosition() {
    position.value = formatSeconds(video.currentTime);
    position.textContent = position.value;
  }
  function step(frames) {
    video.pause();
    const limit = Number.isFinite(video.duration) ? video.duration : Infinity;
    video.currentTime = Math.min(limit, Math.max(0, video.currentTime + frames * frame()));
  }
  function markStart() {
    const end = Number(start.value) + Number(duration.value);
    start.value = video.currentTime.toFixed(3);
    if (end > video.currentTime) duration.value = (end - video.currentTime).toFixed(3);
    describeSpan();
  }
  function markEnd() {
    const length = video.currentTime - Number(start.value);
    if (length > 0) duration.value = length.toFixed(3);
    else replace(messages, notice("error", "The end must come after the start."));
    describeSpan();
  }
  function describeSpan() {
    const from = Number(start.value);
    const length = Number(duration.value);
    spanNote.textContent =
      Number.isFinite(from) && Number.isFinite(length)
        ? `From ${formatSeconds(from)} to ${formatSeconds(from + length)}.`
        : "";
  }
  function playSpan() {
    const from = Number(start.value);
    const to = from + Number(duration.value);
    video.currentTime = from;
    const stopAtEnd = () => {
      if (video.currentTime >= to) {
        video.pause();
        video.removeEventListener("timeupdate", stopAtEnd);
      }
    };
    video.addEventListener("timeupdate", stopAtEnd);
    video.play();
  }
  start.addEventListener("input", describeSpan);
  duration.addEventListener("input", describeSpan);
  video.addEventListener("timeupdate", showPosition);
  video.addEventListener("seeked", showPosition);
  video.addEventListener("keydown", (event) => {
    if (event.key === ",") step(-1);
    else if (event.key === ".") step(1);
    else return;
    event.preventDefault();
  });
  // The frame rate: the shortest step between presented frames while playing.
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    let last = null;
    let shortest = Infinity;
    let seen = 0;
    const onFrame = (_, metadata) => {
      if (!alive) return;
      if (last !== null && metadata.mediaTime > last)
        shortest = Math.min(shortest, metadata.mediaTime - last);
      last = metadata.mediaTime;
      seen += 1;
      if (seen >= 12 && Number.isFinite(shortest) && !measured) {
        const rate = Math.round(1 / shortest);
        if (rate >= 1 && rate <= 240) {
          fps = rate;
          measured = true;
          showFps();
        }
      }
      if (!measured) video.requestVideoFrameCallback(onFrame);
    };
    video.addEventListener("play", () => {
      last = null;
      seen = 0;
      if (!measured) video.requestVideoFrameCallback(onFrame);
    });
  }

  // --- sending and following -----------------------------------------------------------
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(messages);
    const from = Number(start.value);
    const length = Number(duration.value);
    if (!source) return replace(messages, notice("error", "Please choose a source video first."));
    if (start.value === "" || !Number.isFinite(from) || from < 0)
      return replace(
        messages,
        notice("error", "The start must be a number of seconds, 0 or more."),
      );
    if (duration.value === "" || !Number.isFinite(length) || length < 0.001)
      return replace(messages, notice("error", "The duration must be at least 0.001 seconds."));
    if (Number.isFinite(video.duration) && from >= video.duration)
      return replace(messages, notice("error", "The start is past the end of the video."));
    if (!name.value.trim())
      return replace(messages, notice("error", "Please give the clip a name."));
    submit.disabled = true;
    transfer.element.hidden = false;
    if (stopFollowing) stopFollowing();
    replace(follow);
    try {
      let blob = source.file;
      let fileName = source.name;
      if (!blob) {
        transfer.update(null, "Fetching the source video…");
        const response = await fetch(source.url);
        if (!response.ok)
          throw new ApiError(response.status, "The source video could not be fetched. Try again.");
        blob = await response.blob();
        fileName = `${source.name.replace(/[\\/]/g, "_")}.mp4`;
      }
      const body = new FormData();
      body.append("name", name.value.trim());
      body.append("trimming_start_time", String(from));
      body.append("duration", String(length));
      body.append(
        "source_file",
        blob instanceof File
          ? blob
          : new File([blob], fileName, {
              type: blob.type || contentTypeOf({ name: fileName, type: "" }),
            }),
      );
      const sent = await sendWithProgress("POST", "/api/v1/users/videos", body, {
        headers: authHeaders(),
        onProgress: (loaded, total) =>
          transfer.update(
            loaded / total,
            `Sending the source: ${Math.round((loaded / total) * 100)} %`,
          ),
      });
      transfer.update(1, "Sent");
      followRequest(sent.body.data.id, sent.body.data.attributes.name, { from, length });
    } catch (error) {
      if (alive) replace(messages, notice("error", error.message));
    } finally {
      submit.disabled = false;
    }
  });

  async function followRequest(videoId, clipName, asked) {
    const bar = progressBar(`Cutting ${clipName}`, { rising: true });
    bar.update(null, "Scheduled");
    replace(
      follow,
      h(
        "p",
        {},
        `“${clipName}”: asked for ${formatSeconds(asked.length)} from ${formatSeconds(asked.from)}.`,
      ),
      bar.element,
    );
    // The API does not link a request to its video: the request of this upload is the
    // newest one listed right after it was answered (as the command line does).
    let requestId = null;
    try {
      const listed = await api("/api/v1/users/requests");
      requestId = listed.data[0]?.id || null;
    } catch {
      // progress is then shown from the clip list only
    }
    let done = false;
    const check = async () => {
      if (done || !alive) return;
      try {
        const [clipList, requestList] = await Promise.all([
          api("/api/v1/users/videos"),
          api("/api/v1/users/requests"),
        ]);
        if (done || !alive) return;
        drawLists(clipList.data, requestList.data);
        const clip = clipList.data.find((item) => item.id === videoId);
        if (clip) return finish(() => showResult(clip, clipName));
        const request = requestList.data.find((item) => item.id === requestId);
        if (request?.attributes.status === "failed") {
          return finish(() =>
            replace(
              follow,
              notice(
                "error",
                `The clip could not be cut: ${request.attributes.failure_reason || "unknown reason"}.`,
              ),
            ),
          );
        }
        if (request)
          bar.update(request.attributes.progress ?? null, requestLine(request.attributes));
      } catch {
        // the next check, or the stream, will tell
      }
    };
    const finish = (show) => {
      done = true;
      stopFollowing?.();
      stopFollowing = null;
      show();
    };
    const stop = subscribe((event) => {
      if (
        event.type === "job.progress" &&
        event.data?.job === "trim" &&
        event.data.id === requestId
      ) {
        bar.update(
          event.data.fraction,
          requestLine({
            status: "processing",
            progress: event.data.fraction,
            eta_seconds: event.data.eta_seconds,
          }),
        );
      } else if (event.type === "trim.done" || event.type === "trim.failed") {
        check();
      }
    });
    const timer = setInterval(check, POLL_MS);
    stopFollowing = () => {
      stop();
      clearInterval(timer);
    };
    check();
  }

  function showResult(clip, clipName) {
    const player = h("video", {
      id: "clip-player",
      controls: true,
      playsinline: true,
      src: clip.attributes.url,
      "aria-label": `Clip: ${clipName}`,
    });
    replace(
      follow,
      notice("success", `“${clipName}” is ready.`),
      h("div", { class: "player-frame" }, player),
      cutTable(clip.attributes),
      h("p", { class: "actions" }, downloadButton(clip.attributes.url, `${clipName}.mp4`)),
    );
  }

  async function loadLists() {
    try {
      const [clipList, requestList] = await Promise.all([
        api("/api/v1/users/videos"),
        api("/api/v1/users/requests"),
      ]);
      if (alive) drawLists(clipList.data, requestList.data);
    } catch (error) {
      if (alive) replace(clips, h("li", {}, notice("error", error.message)));
    }
  }

  function drawLists(clipData, requestData) {
    replace(clips, clipItems(clipData));
    replace(requests, requestItems(requestData, restart));
  }

  async function restart(requestId) {
    try {
      await api(`/api/v1/users/requests/${encodeURIComponent(requestId)}/restart`, {
        method: "POST",
      });
      app.toast("Restarted.");
    } catch (error) {
      replace(messages, notice("error", error.message));
    }
    loadLists();
  }

  showKind();
  showFps();
  describeSpan();
  loadMine();
  loadLists();
  return () => {
    alive = false;
    stopFollowing?.();
    if (source?.revoke) URL.revokeObjectURL(source.url);
  };
}
