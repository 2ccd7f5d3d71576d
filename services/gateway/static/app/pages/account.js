// Sign up (`POST /api/v1/users/registration`, then signed in at once) and sign in
// (`POST /api/v1/users/session`).

import { api } from "../api.js";
import { h, notice, replace } from "../dom.js";
import { signedIn } from "../session.js";

export function render(main, { mode }, app) {
  const signup = mode === "signup";
  const messages = h("div", { class: "messages" });
  const email = h("input", {
    id: "email",
    name: "email",
    type: "email",
    autocomplete: "email",
    required: true,
  });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: signup ? "new-password" : "current-password",
    minlength: signup ? "8" : false,
    required: true,
  });
  const confirmation = h("input", {
    id: "password-confirmation",
    name: "password_confirmation",
    type: "password",
    autocomplete: "new-password",
    required: true,
  });
  const submit = h(
    "button",
    { type: "submit", class: "btn btn-primary" },
    signup ? "Create account" : "Sign in",
  );

  const form = h(
    "form",
    { class: "card form narrow", novalidate: true },
    h("h1", {}, signup ? "Create your Kino account" : "Sign in to Kino"),
    messages,
    h("label", { for: "email" }, "Email"),
    email,
    h("label", { for: "password" }, "Password"),
    password,
    signup ? h("p", { class: "hint", id: "password-hint" }, "At least 8 characters.") : null,
    signup ? h("label", { for: "password-confirmation" }, "Repeat the password") : null,
    signup ? confirmation : null,
    h("div", { class: "actions" }, submit),
    h(
      "p",
      { class: "hint" },
      signup ? "Already have an account? " : "New to Kino? ",
      h("a", { href: signup ? "#/signin" : "#/signup" }, signup ? "Sign in" : "Create an account"),
    ),
  );
  if (signup) password.setAttribute("aria-describedby", "password-hint");

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(messages);
    if (!email.value || !password.value) {
      replace(messages, notice("error", "Please enter your email and password."));
      return;
    }
    if (signup && password.value !== confirmation.value) {
      replace(messages, notice("error", "The two passwords are not the same."));
      confirmation.focus();
      return;
    }
    submit.disabled = true;
    try {
      if (signup) {
        await api("/api/v1/users/registration", {
          method: "POST",
          auth: false,
          form: {
            email: email.value,
            password: password.value,
            password_confirmation: confirmation.value,
          },
        });
      }
      const session = await api("/api/v1/users/session", {
        method: "POST",
        auth: false,
        form: { email: email.value, password: password.value },
      });
      signedIn(session.data.attributes.access, email.value);
      app.toast(signup ? "Welcome to Kino!" : "Signed in.");
      app.afterSignIn();
    } catch (error) {
      replace(messages, notice("error", error.message));
      password.focus();
    } finally {
      submit.disabled = false;
    }
  });

  main.append(form);
  email.focus();
}
