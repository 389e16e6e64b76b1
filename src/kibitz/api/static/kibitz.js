// Small progressive enhancements for the server-rendered pages; no build step.
"use strict";

async function postJson(url, options) {
  const res = await fetch(url, options);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.detail || `HTTP ${res.status}`);
  return body;
}

function initHome() {
  const syncForm = document.getElementById("sync-form");
  if (!syncForm) return;
  syncForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = document.getElementById("username").value.trim();
    const max = parseInt(document.getElementById("max").value, 10);
    const error = document.getElementById("sync-error");
    error.textContent = "";
    try {
      const body = await postJson(`/api/players/${encodeURIComponent(name)}/sync`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(Number.isFinite(max) ? { max } : {}),
      });
      window.location = `/imports/${body.id}`;
    } catch (e) { error.textContent = e.message; }
  });
  document.getElementById("pgn-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("pgn-error");
    error.textContent = "";
    const data = new FormData();
    data.append("file", document.getElementById("pgn-file").files[0]);
    try {
      const body = await postJson("/api/imports/pgn", { method: "POST", body: data });
      window.location = `/imports/${body.id}`;
    } catch (e) { error.textContent = e.message; }
  });
}

function initImport() {
  const root = document.getElementById("import");
  if (!root) return;
  const id = root.dataset.syncId;
  const set = (el, v) => { document.getElementById(el).textContent = v; };
  async function tick() {
    const res = await fetch(`/api/syncs/${id}`);
    if (!res.ok) return setTimeout(tick, 1000);
    const s = await res.json();
    set("status", s.status); set("stored", s.games_stored); set("received", s.games_received);
    set("new", s.games_new); set("rejected", s.games_rejected); set("import-error", s.error || "");
    const bar = document.getElementById("progress");
    bar.value = s.games_received ? s.accounted / s.games_received : 0;
    const list = document.getElementById("rejections");
    list.innerHTML = "";
    for (const r of s.rejected) {
      const li = document.createElement("li");
      li.textContent = `game ${r.index}: ${r.reason}`;
      list.appendChild(li);
    }
    if (s.status === "done" || s.status === "failed") {
      bar.value = s.status === "done" ? 1 : bar.value;
      document.getElementById("next").hidden = s.status !== "done";
      return;
    }
    setTimeout(tick, 300);
  }
  tick();
}

function initGame() {
  const root = document.getElementById("game");
  if (!root) return;
  const id = root.dataset.gameId;
  const plies = parseInt(root.dataset.plies, 10);
  let ply = 0;
  const board = document.getElementById("board");
  function show(n) {
    ply = Math.max(0, Math.min(plies, n));
    board.src = `/games/${id}/board.svg?ply=${ply}`;
    document.getElementById("ply-label").textContent = `ply ${ply} / ${plies}`;
    for (const a of document.querySelectorAll(".move")) {
      a.classList.toggle("current", parseInt(a.dataset.ply, 10) === ply);
    }
  }
  document.getElementById("first").onclick = () => show(0);
  document.getElementById("prev").onclick = () => show(ply - 1);
  document.getElementById("next").onclick = () => show(ply + 1);
  document.getElementById("last").onclick = () => show(plies);
  for (const a of document.querySelectorAll(".move")) {
    a.addEventListener("click", (e) => { e.preventDefault(); show(parseInt(a.dataset.ply, 10)); });
  }
  document.addEventListener("keydown", (e) => {
    if (e.key === "ArrowLeft") show(ply - 1);
    else if (e.key === "ArrowRight") show(ply + 1);
    else if (e.key === "Home") show(0);
    else if (e.key === "End") show(plies);
  });
}

initHome();
initImport();
initGame();
