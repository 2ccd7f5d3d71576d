// Playing a hosted video: its HLS ladder (`hls_url`) through hls.js, the gateway's own
// copy at /static/vendor/hls.min.js, loaded the first time a page plays something;
// Safari-style native HLS where the browser has it; otherwise, or when HLS fails, the
// progressive file (`watchable_url`). hls.js runs without its Web Worker, so the page's
// Content-Security-Policy needs no `worker-src`.

const HLS_SCRIPT = "/static/vendor/hls.min.js";
let hlsLoading = null;

function loadHls() {
  if (window.Hls) return Promise.resolve(window.Hls);
  if (!hlsLoading) {
    hlsLoading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = HLS_SCRIPT;
      script.addEventListener("load", () => resolve(window.Hls));
      script.addEventListener("error", () => reject(new Error("hls.js did not load")));
      document.head.append(script);
    });
  }
  return hlsLoading;
}

/**
 * Play `record` (a `GET /video/watch/` answer) in `video`. Returns `{mode, destroy}`;
 * `mode` is "hls", "native-hls" or "progressive" and the video element's
 * `data-playback` says the same (for people debugging, and tests).
 */
export async function attachPlayer(video, record) {
  const progressive = () => {
    video.src = record.watchable_url;
    video.dataset.playback = "progressive";
    return { mode: "progressive", destroy() {} };
  };
  if (!record.hls_url) return progressive();
  let Hls = null;
  try {
    Hls = await loadHls();
  } catch {
    Hls = null;
  }
  if (Hls && Hls.isSupported()) {
    const hls = new Hls({ enableWorker: false });
    let fellBack = false;
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (data.fatal && !fellBack) {
        fellBack = true;
        hls.destroy();
        const at = video.currentTime;
        progressive();
        if (at) video.currentTime = at;
      }
    });
    hls.loadSource(record.hls_url);
    hls.attachMedia(video);
    video.dataset.playback = "hls";
    return { mode: "hls", destroy: () => hls.destroy() };
  }
  if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = record.hls_url;
    video.dataset.playback = "native-hls";
    video.addEventListener("error", progressive, { once: true });
    return { mode: "native-hls", destroy() {} };
  }
  return progressive();
}
