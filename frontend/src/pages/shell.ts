// On every page: the header's sign-in (the API token that kibitz serve asks for on a shared
// server), kept in this browser; it opens by itself when a request is refused for want of it.

import { api, ApiError, session, UNAUTHORIZED } from "../lib/api";

function mount(): void {
  const header = document.querySelector("header");
  if (!header) return;
  const box = document.createElement("span");
  box.className = "signin";
  box.id = "signin";
  const status = document.createElement("a");
  status.href = "#";
  status.id = "signin-status";
  const form = document.createElement("form");
  form.id = "signin-form";
  form.hidden = true;
  const input = document.createElement("input");
  input.type = "password";
  input.id = "signin-token";
  input.placeholder = "API token";
  input.autocomplete = "current-password";
  const submit = document.createElement("button");
  submit.type = "submit";
  submit.textContent = "Sign in";
  const error = document.createElement("span");
  error.className = "signin-error";
  error.id = "signin-error";
  form.append(input, submit, error);
  box.append(status, form);
  header.append(box);

  const show = (): void => {
    const signedIn = session.token() !== "";
    status.textContent = signedIn ? "signed in · sign out" : "sign in";
    box.dataset.signedIn = signedIn ? "1" : "";
  };
  const open = (why = ""): void => {
    form.hidden = false;
    error.textContent = why;
    input.focus();
  };
  status.addEventListener("click", (e) => {
    e.preventDefault();
    if (session.token()) {
      session.signOut();
      show();
    } else open();
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    try {
      await api("POST", "/api/session", {}, token);
      session.signIn(token);
      form.hidden = true;
      input.value = "";
      error.textContent = "";
      show();
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 401 ? "wrong token" : String(err);
    }
  });
  document.addEventListener(UNAUTHORIZED, () => {
    session.signOut();
    show();
    open("this needs the API token: sign in, then try again");
  });
  show();
}

mount();
