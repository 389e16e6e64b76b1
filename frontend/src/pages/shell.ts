// On every page: the header's sign-in state. On a server that asks for its API token, a
// signed-out browser sees the write buttons disabled, each saying why, and a link to sign in.

import { api, type SessionState, UNAUTHORIZED } from "../lib/api";

const WHY = "Sign in first: this server asks for its API token before it changes anything.";

function signInLink(): string {
  return `/signin?next=${encodeURIComponent(location.pathname + location.search + location.hash)}`;
}

function disableWrites(): void {
  for (const b of document.querySelectorAll<HTMLButtonElement>("[data-write]")) {
    b.disabled = true;
    b.title = WHY;
  }
  if (document.getElementById("signed-out")) return;
  const note = document.createElement("p");
  note.id = "signed-out";
  note.className = "signed-out";
  note.innerHTML = `This server asks for its API token before anything is imported, analysed or played: <a href="${signInLink()}">sign in</a>.`;
  document.querySelector("main")?.prepend(note);
}

async function mount(): Promise<void> {
  const header = document.querySelector("header");
  if (!header) return;
  const box = document.createElement("span");
  box.className = "signin";
  box.id = "signin";
  header.append(box);
  const state = await api<SessionState>("GET", "/api/session");
  box.dataset.signedIn = state.signed_in ? "1" : "";
  if (!state.token_required) return;
  if (state.signed_in) {
    const out = document.createElement("a");
    out.href = "#";
    out.id = "signin-status";
    out.textContent = "signed in · sign out";
    out.addEventListener("click", async (e) => {
      e.preventDefault();
      await api("DELETE", "/api/session");
      location.reload();
    });
    box.append(out);
  } else {
    const link = document.createElement("a");
    link.href = signInLink();
    link.id = "signin-status";
    link.textContent = "sign in";
    box.append(link);
    disableWrites();
  }
  document.addEventListener(UNAUTHORIZED, disableWrites);
}

void mount();
