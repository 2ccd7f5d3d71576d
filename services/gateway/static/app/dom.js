// Small DOM helpers and formatters shared by the pages. Everything user-supplied goes
// into the page as text (textContent, attributes), never as HTML.

/** `h("a", { href: "#/x", class: "btn" }, "text", child)`: an element with attributes
 * (`on*` functions become listeners, `true`/`false` toggle boolean attributes) and
 * children (strings become text nodes; null and false are skipped). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's content. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A message box: `kind` is "error", "info" or "success"; errors are announced at once. */
export function notice(kind, text) {
  return h(
    "p",
    { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" },
    text,
  );
}

/** `125` → "2:05", `3725` → "1:02:05". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
  const whole = Math.max(0, Math.round(seconds));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const secs = String(whole % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

/** Seconds with millisecond precision, for trim points: `1.5` → "1.500 s". */
export function formatSeconds(seconds) {
  return seconds === null || seconds === undefined ? "—" : `${Number(seconds).toFixed(3)} s`;
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** "about 12 s left", "about 3 min left". */
export function formatEta(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 1) return "almost done";
  if (seconds < 90) return `about ${Math.ceil(seconds)} s left`;
  return `about ${Math.round(seconds / 60)} min left`;
}

export function formatDate(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** A labelled `<progress>` with a text line under it; `update(fraction, text)` (null:
 * indeterminate). With `rising`, a fraction below the one shown is ignored: a job's
 * progress events may restart at 0 for its next stage, the bar does not go back. */
export function progressBar(label, { rising = false } = {}) {
  const bar = h("progress", { max: "1", value: "0", "aria-label": label });
  const text = h("span", { class: "progress-text" });
  const element = h("div", { class: "progress" }, bar, text);
  let shown = null;
  return {
    element,
    update(fraction, line = "") {
      if (fraction === null || fraction === undefined) {
        if (shown === null) bar.removeAttribute("value");
      } else {
        if (rising && shown !== null && fraction < shown) return;
        shown = Math.min(1, Math.max(0, fraction));
        bar.value = shown;
      }
      text.textContent = line;
    },
  };
}

/** A modal confirmation (`<dialog>`); resolves true when the person confirms. */
export function confirmDialog(question, confirmLabel) {
  return new Promise((resolve) => {
    const cancel = h("button", { type: "button", class: "btn" }, "Cancel");
    const confirm = h("button", { type: "button", class: "btn btn-danger" }, confirmLabel);
    const dialog = h(
      "dialog",
      { class: "dialog", "aria-labelledby": "dialog-question" },
      h("p", { id: "dialog-question" }, question),
      h("div", { class: "actions" }, cancel, confirm),
    );
    const close = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    cancel.addEventListener("click", () => close(false));
    confirm.addEventListener("click", () => close(true));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      close(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
