// Progressive enhancements for the server-rendered pages that have no module of their own
// under frontend/src/pages yet (those are bundled into static/app/).
"use strict";

async function postJson(url, options) {
  // A signed-in browser sends its session cookie by itself; writes repeat the CSRF value.
  const csrf = (document.cookie.split(";").map((c) => c.trim().split("="))
    .find(([k]) => k === "kibitz_csrf") || [])[1] || "";
  const headers = { ...(options.headers || {}), "X-CSRF-Token": csrf };
  const res = await fetch(url, { ...options, headers, credentials: "same-origin" });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) document.dispatchEvent(new CustomEvent("kibitz:unauthorized"));
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
    set("import-notice", s.notice || "");
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
  // The board itself is app/game.js (chessground); here: the Analyse button and its progress.
  const root = document.getElementById("game");
  if (!root) return;
  initAnalysis(root, () => root.dataset.ply || 0);
}

function initAnalysis(root, currentPly) {
  const id = root.dataset.gameId;
  const button = document.getElementById("analyse");
  const bar = document.getElementById("a-progress");
  const status = document.getElementById("a-status");
  const error = document.getElementById("a-error");
  let shownPhase = root.dataset.resultsPhase;
  function reload() {
    window.location.hash = `ply=${currentPly()}`;
    window.location.reload();
  }
  function follow() {
    bar.hidden = false;
    const source = new EventSource(`/api/games/${id}/analysis/events`);
    source.addEventListener("progress", (e) => {
      const p = JSON.parse(e.data);
      status.textContent = `${p.status} · ${p.phase} pass · ${p.positions_done}/${p.positions_total}`;
      bar.value = p.progress || 0;
      // The quick pass is stored as soon as the deep pass starts: show it at once.
      if (p.status === "running" && p.phase === "deep" && shownPhase !== "quick" && shownPhase !== "deep") {
        source.close(); reload();
      }
    });
    source.addEventListener("done", () => { source.close(); reload(); });
    source.addEventListener("failed", (e) => {
      source.close();
      const p = JSON.parse(e.data);
      status.textContent = "failed"; error.textContent = p.error || "the analysis failed";
    });
  }
  button.addEventListener("click", async () => {
    error.textContent = "";
    try {
      await postJson(`/api/games/${id}/analysis`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ priority: "interactive", force: root.dataset.status === "done" }),
      });
      shownPhase = "";
      root.dataset.status = "queued";
      follow();
    } catch (e) { error.textContent = e.message; }
  });
  if (root.dataset.status === "queued" || root.dataset.status === "running") follow();
}

function initPlayer() {
  const button = document.getElementById("analyse-all");
  if (!button) return;
  button.addEventListener("click", async () => {
    const note = document.getElementById("analyse-all-note");
    try {
      const body = await postJson(`/api/players/${encodeURIComponent(button.dataset.username)}/analysis`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ priority: "batch" }),
      });
      note.textContent = `${body.queued} games queued for analysis.`;
    } catch (e) { note.textContent = e.message; }
  });
}

function initTrack() {
  const form = document.getElementById("track-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("track-error");
    error.textContent = "";
    const username = document.getElementById("track-username").value.trim();
    const speech = document.getElementById("track-speech").checked;
    try {
      await postJson("/api/tracking", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username, profile: { speech } }),
      });
      window.location.href = "/live";
    } catch (e) { error.textContent = e.message; }
  });
}

function initLiveList() {
  const body = document.getElementById("trackers");
  if (!body) return;
  setInterval(async () => {
    const res = await fetch("/api/tracking");
    if (!res.ok) return;
    const data = await res.json();
    body.replaceChildren(...data.players.map((p) => {
      const row = document.createElement("tr");
      const link = p.game_id ? `<a href="/live/${encodeURIComponent(p.game_id)}">${p.game_id}</a>` : "";
      row.innerHTML = `<td></td><td></td><td>${link}</td><td></td>`;
      row.children[0].textContent = p.username;
      row.children[1].textContent = p.status + (p.end_reason ? ` (${p.end_reason})` : "");
      row.children[3].textContent = (p.started_at || "").slice(11, 19);
      return row;
    }));
  }, 2000);
}




function initMatchForm() {
  const form = document.getElementById("match-form");
  if (!form) return;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const error = document.getElementById("m-error");
    error.textContent = "";
    const body = {
      rounds: Number(form.rounds.value),
      robots_per_round: Number(form.robots_per_round.value),
      source: form.source.value,
    };
    if (form.player.value.trim()) body.player = form.player.value.trim();
    try {
      const made = await postJson("/api/matches", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      window.location.href = `/matches/${made.id}`;
    } catch (err) { error.textContent = err.message; }
  });
}


function initOps() {
  const root = document.getElementById("ops");
  if (!root) return;
  const chart = document.getElementById("ops-chart");
  const groups = document.querySelector("#ops-groups tbody");
  const dlq = document.querySelector("#ops-dlq tbody");
  const failures = document.getElementById("ops-failures");
  const error = document.getElementById("ops-error");
  const token = document.getElementById("ops-token");
  token.value = localStorage.getItem("kibitz-token") || "";
  token.addEventListener("change", () => localStorage.setItem("kibitz-token", token.value));
  const colours = ["#2f6f4f", "#d55e00", "#0072b2", "#cc79a7", "#e69f00", "#56b4e9", "#009e73", "#7a3cc2", "#444", "#b3261e", "#8c6d1f", "#1f78b4"];
  const history = {};  // group -> [[t, committed]]
  const rates = {};    // group -> [msg/s]
  function cell(tr, text) { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); return td; }
  async function act(topic, what) {
    error.textContent = "";
    const headers = token.value ? { Authorization: `Bearer ${token.value}` } : {};
    try {
      const body = await postJson(`/api/ops/dlq/${encodeURIComponent(topic)}/${what}`, { method: "POST", headers });
      error.textContent = `${topic}: ${body.replayed ?? body.discarded} message(s) ${what === "replay" ? "replayed" : "discarded"}`;
      await refresh();
    } catch (err) { error.textContent = err.message; }
  }
  function draw() {
    const names = Object.keys(rates);
    const max = Math.max(1, ...names.flatMap((g) => rates[g]));
    chart.replaceChildren();
    names.forEach((g, i) => {
      const values = rates[g].slice(-60);
      if (values.length < 2) return;
      const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      line.setAttribute("points", values.map((v, j) => `${(j * 600) / 59},${118 - (v / max) * 112}`).join(" "));
      line.setAttribute("stroke", colours[i % colours.length]);
      line.dataset.group = g;
      chart.appendChild(line);
    });
  }
  async function refresh() {
    const res = await fetch("/api/ops");
    if (!res.ok) return;
    const view = await res.json();
    const now = Date.now() / 1000;
    groups.replaceChildren();
    view.groups.forEach((g, i) => {
      const seen = history[g.group] || (history[g.group] = []);
      seen.push([now, g.committed]);
      if (seen.length > 2) seen.shift();
      const rate = seen.length === 2 ? Math.max(0, (seen[1][1] - seen[0][1]) / (seen[1][0] - seen[0][0])) : 0;
      (rates[g.group] || (rates[g.group] = [])).push(rate);
      const tr = document.createElement("tr");
      tr.dataset.group = g.group;
      cell(tr, g.group).style.color = colours[i % colours.length];
      cell(tr, g.alive); cell(tr, g.lag); cell(tr, g.committed); cell(tr, rate.toFixed(1));
      groups.appendChild(tr);
    });
    draw();
    dlq.replaceChildren();
    for (const q of view.dlq) {
      const tr = document.createElement("tr");
      tr.dataset.topic = q.topic;
      cell(tr, q.topic); cell(tr, `${q.parked} parked`);
      const actions = cell(tr, "");
      if (q.parked) {
        for (const what of ["replay", "discard"]) {
          const b = document.createElement("button");
          b.type = "button"; b.textContent = what; b.className = what;
          b.addEventListener("click", () => act(q.topic, what));
          actions.appendChild(b);
        }
      }
      dlq.appendChild(tr);
    }
    failures.replaceChildren(...view.failures.map((f) => {
      const li = document.createElement("li");
      li.textContent = `${f.topic} · ${f.key} · ${f.error} (attempts ${f.attempts || 0})`;
      return li;
    }));
    root.dataset.loaded = "1";
  }
  refresh();
  setInterval(refresh, 2000);
}

initHome();
initOps();
initMatchForm();
initTrack();
initLiveList();
initImport();
initGame();
initPlayer();
