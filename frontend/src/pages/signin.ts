// The sign-in page (templates/signin.html): the API token, once; then back where the user was.

import { api, ApiError } from "../lib/api";

const form = document.getElementById("signin-page") as HTMLFormElement | null;
if (form) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const error = document.getElementById("signin-error")!;
    const input = document.getElementById("signin-token") as HTMLInputElement;
    error.textContent = "";
    try {
      await api("POST", "/api/session", { token: input.value.trim() });
      const next = new URLSearchParams(location.search).get("next") ?? "/";
      location.assign(next.startsWith("/") && !next.startsWith("//") ? next : "/");
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 401 ? "That is not this server's token." : String(err);
    }
  });
}
