// Webhooks (`/api/v1/users/webhooks`): the endpoints that receive my results
// (`video.ready`, `video.failed`, `trim.done`, `trim.failed`), each with its signing
// secret shown once when it is added, its deliveries, and delete.

import { api } from "../api.js";
import { confirmDialog, formatDate, h, notice, replace } from "../dom.js";

const EVENT_TYPES = [
  ["video.ready", "A video is ready"],
  ["video.failed", "A video failed"],
  ["trim.done", "A clip is cut"],
  ["trim.failed", "A trim failed"],
];

export function render(main, _params, app) {
  let alive = true;
  const messages = h("div", { class: "messages" });
  const created = h("div", { "aria-live": "polite" });
  const list = h("ul", { class: "my-list", "aria-label": "My webhooks" });
  const url = h("input", {
    id: "webhook-url",
    type: "url",
    required: true,
    placeholder: "https://example.org/kino-hook",
    inputmode: "url",
  });
  const boxes = EVENT_TYPES.map(([type]) =>
    h("input", { type: "checkbox", id: `event-${type}`, value: type, checked: true }),
  );
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, "Add the webhook");
  const form = h(
    "form",
    { class: "card form", novalidate: true },
    h("h1", {}, "Webhooks"),
    h(
      "p",
      { class: "hint" },
      "Kino POSTs each result to these addresses, signed per Standard Webhooks.",
    ),
    messages,
    h("label", { for: "webhook-url" }, "Address"),
    url,
    h(
      "fieldset",
      {},
      h("legend", {}, "Events"),
      EVENT_TYPES.map(([type, label], index) =>
        h("label", { class: "check", for: `event-${type}` }, boxes[index], label),
      ),
    ),
    h("div", { class: "actions" }, submit),
    created,
  );
  main.append(
    form,
    h(
      "section",
      { "aria-labelledby": "hooks-heading" },
      h("h2", { id: "hooks-heading" }, "My webhooks"),
      list,
    ),
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(messages);
    const eventTypes = boxes.filter((box) => box.checked).map((box) => box.value);
    if (!url.value)
      return replace(messages, notice("error", "Please enter the address to send results to."));
    if (!eventTypes.length)
      return replace(messages, notice("error", "Please choose at least one event."));
    submit.disabled = true;
    try {
      const document_ = await api("/api/v1/users/webhooks", {
        method: "POST",
        json: {
          data: { type: "webhooks", attributes: { url: url.value, event_types: eventTypes } },
        },
      });
      const secret = document_.data.attributes.secret;
      replace(
        created,
        notice("success", "Added. Keep its signing secret now: Kino shows it only once."),
        h("p", {}, h("code", { class: "secret" }, secret)),
      );
      url.value = "";
      load();
    } catch (error) {
      replace(messages, notice("error", error.message));
    } finally {
      submit.disabled = false;
    }
  });

  async function load() {
    try {
      const found = await api("/api/v1/users/webhooks");
      if (!alive) return;
      replace(
        list,
        found.data.length ? found.data.map(item) : h("li", { class: "hint" }, "No webhooks yet."),
      );
    } catch (error) {
      if (alive) replace(messages, notice("error", error.message));
    }
  }

  function item(webhook) {
    const attributes = webhook.attributes;
    const deliveries = h("div", {});
    const show = h(
      "button",
      { type: "button", class: "btn", "aria-expanded": "false" },
      "Deliveries",
    );
    show.addEventListener("click", async () => {
      if (show.getAttribute("aria-expanded") === "true") {
        show.setAttribute("aria-expanded", "false");
        return replace(deliveries);
      }
      show.setAttribute("aria-expanded", "true");
      try {
        const found = await api(
          `/api/v1/users/webhooks/${encodeURIComponent(webhook.id)}/deliveries`,
        );
        replace(
          deliveries,
          found.data.length
            ? deliveryTable(found.data)
            : h("p", { class: "hint" }, "Nothing sent yet."),
        );
      } catch (error) {
        replace(deliveries, notice("error", error.message));
      }
    });
    const remove = h("button", { type: "button", class: "btn btn-danger" }, "Delete");
    remove.addEventListener("click", async () => {
      if (!(await confirmDialog(`Stop sending results to ${attributes.url}?`, "Delete"))) return;
      try {
        await api(`/api/v1/users/webhooks/${encodeURIComponent(webhook.id)}`, { method: "DELETE" });
        app.toast("Webhook deleted.");
      } catch (error) {
        replace(messages, notice("error", error.message));
      }
      load();
    });
    return h(
      "li",
      { class: "my-item webhook-item" },
      h(
        "div",
        { class: "my-item-body" },
        h("strong", { class: "break" }, attributes.url),
        h(
          "span",
          { class: "meta" },
          `${attributes.event_types.join(", ")} · added ${formatDate(attributes.created_at)}`,
        ),
        attributes.enabled
          ? null
          : h("span", { class: "status status-failed" }, "Disabled: the address answered 410 Gone"),
        deliveries,
      ),
      h("div", { class: "actions" }, show, remove),
    );
  }

  load();
  return () => {
    alive = false;
  };
}

function deliveryTable(items) {
  return h(
    "div",
    { class: "table-scroll" },
    h(
      "table",
      { class: "cut-table" },
      h("caption", {}, "Deliveries, newest first"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Event", "Attempt", "Status", "Answer", "When"].map((label) =>
            h("th", { scope: "col" }, label),
          ),
        ),
      ),
      h(
        "tbody",
        {},
        items.map(({ attributes }) =>
          h(
            "tr",
            {},
            h("td", {}, attributes.event_type),
            h("td", {}, String(attributes.attempt)),
            h("td", {}, attributes.status),
            h(
              "td",
              {},
              attributes.response_code ? String(attributes.response_code) : attributes.error || "",
            ),
            h("td", {}, formatDate(attributes.time)),
          ),
        ),
      ),
    ),
  );
}
