// Progressive enhancements for the server-rendered pages that have no module of their own
// under frontend/src/pages yet (those are bundled into static/app/).
"use strict";

async function postJson(url, options) {
  // The signed-in token (the header's sign-in, app/shell.js) goes with every write.
  const token = localStorage.getItem("kibitz-token");
  const headers = { ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(url, { ...options, headers });
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

function initLive() {
  const root = document.getElementById("live");
  if (!root) return;
  const id = root.dataset.gameId;
  const board = document.getElementById("live-board");
  const feed = document.getElementById("feed");
  const bar = document.getElementById("evalbar-white");
  const plyCount = document.getElementById("ply-count");
  const audioToggle = document.getElementById("audio-toggle");
  let shownPly = Number(plyCount.textContent) || 0;
  const player = new Audio();
  const queue = [];
  player.addEventListener("ended", () => { if (queue.length) { player.src = queue.shift(); player.play(); } });

  function showPosition(fen, uci, ply) {
    if (ply < shownPly) return;
    shownPly = ply;
    plyCount.textContent = ply;
    board.src = `/board.svg?fen=${encodeURIComponent(fen)}&lastmove=${uci}`;
  }
  const source = new EventSource(`/api/live/${encodeURIComponent(id)}/events`);
  source.addEventListener("move", (e) => {
    const m = JSON.parse(e.data);
    showPosition(m.fen, m.uci, m.ply);
  });
  source.addEventListener("commentary", (e) => {
    const c = JSON.parse(e.data);
    if (feed.querySelector(`li[data-ply="${c.ply}"]`)) return;
    const item = document.createElement("li");
    item.dataset.ply = c.ply;
    item.className = (c.judgment || "").toLowerCase();
    item.textContent = c.text;
    const later = [...feed.children].find((li) => Number(li.dataset.ply) < c.ply);
    feed.insertBefore(item, later || null);
    showPosition(c.fen, c.uci, c.ply);
    const percent = c.white_percent;  // computed by the server: one win-chance curve
    if (percent != null) bar.style.height = `${percent.toFixed(1)}%`;
    if (audioToggle.checked && c.audio_url) {
      if (player.paused && !queue.length) { player.src = c.audio_url; player.play().catch(() => {}); }
      else queue.push(c.audio_url);
    }
  });
  source.addEventListener("ended", (e) => {
    const s = JSON.parse(e.data);
    document.getElementById("live-status").textContent = s.result || s.status;
  });
}

function fenPieces(fen) {
  const pieces = {};
  fen.split(" ")[0].split("/").forEach((row, i) => {
    let file = 0;
    for (const c of row) {
      if (/\d/.test(c)) { file += Number(c); continue; }
      pieces["abcdefgh"[file] + (8 - i)] = c;
      file += 1;
    }
  });
  return pieces;
}

function initTrainer() {
  const root = document.getElementById("trainer");
  if (!root) return;
  const img = document.getElementById("trainer-board");
  const grid = document.getElementById("trainer-grid");
  const turn = document.getElementById("trainer-turn");
  const feedback = document.getElementById("trainer-feedback");
  const meta = document.getElementById("trainer-meta");
  const source = document.getElementById("trainer-source");
  const retry = document.getElementById("trainer-retry");
  const solution = document.getElementById("trainer-solution");
  let puzzle = null, fen = null, moves = [], selected = null, lastmove = null, busy = false;
  let done = false, expected = null;

  function say(text, kind) { feedback.textContent = text; feedback.className = `feedback ${kind || ""}`; }
  function draw() {
    const flip = puzzle && puzzle.solver === "black" ? "&flipped=1" : "";
    const last = lastmove ? `&lastmove=${lastmove}` : "";
    img.src = `/board.svg?coords=0&fen=${encodeURIComponent(fen)}${last}${flip}`;
    for (const cell of grid.children) cell.classList.toggle("selected", cell.dataset.square === selected);
  }
  function buildGrid() {
    grid.replaceChildren();
    const flipped = puzzle.solver === "black";
    for (let row = 0; row < 8; row++) {
      for (let col = 0; col < 8; col++) {
        const square = "abcdefgh"[flipped ? 7 - col : col] + (flipped ? row + 1 : 8 - row);
        const cell = document.createElement("button");
        cell.type = "button"; cell.className = "sq"; cell.dataset.square = square;
        cell.setAttribute("aria-label", square);
        cell.addEventListener("click", () => click(square));
        grid.appendChild(cell);
      }
    }
  }
  function isMine(piece) {
    return piece && (piece === piece.toUpperCase()) === (puzzle.solver === "white");
  }
  async function click(square) {
    if (busy || !puzzle || done) return;
    const pieces = fenPieces(fen);
    if (isMine(pieces[square])) { selected = square === selected ? null : square; draw(); return; }
    if (!selected) return;
    let uci = selected + square;
    const piece = pieces[selected].toLowerCase();
    if (piece === "p" && (square[1] === "8" || square[1] === "1")) uci += "q";
    selected = null;
    await play(uci);
  }
  async function play(uci) {
    busy = true;
    try {
      const body = await postJson(`/api/problems/${encodeURIComponent(puzzle.id)}/attempts`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ moves: [...moves, uci] }),
      });
      if (!body.correct) {
        expected = body.expected;
        say(`✗ ${body.played.san} is not the move.`, "bad");
        retry.hidden = false; solution.hidden = false; done = true;
        draw();
        return;
      }
      moves.push(uci);
      fen = body.fen;
      lastmove = body.reply ? body.reply.uci : uci;
      if (body.complete) {
        say(`✓ ${body.played.san} — solved!`, "good"); done = true; solution.hidden = true;
        turn.textContent = "Puzzle solved.";
      } else {
        say(`✓ ${body.played.san} is right. The reply: ${body.reply.san}. Keep going.`, "good");
      }
      draw();
    } catch (err) {
      say(err.message, "bad"); draw();
    } finally { busy = false; }
  }
  function start(p) {
    puzzle = p; moves = []; selected = null; done = false; expected = null;
    retry.hidden = true; solution.hidden = true;
    fen = p.fen; lastmove = null;
    buildGrid(); draw();
    turn.textContent = `${p.blunder.san} was just played. Find the best move for ${p.solver}.`;
    say("");
    meta.textContent = `${p.themes.join(", ")} · estimated rating ${p.rating} · ${p.game.white || "?"} – ${p.game.black || "?"}`;
    source.href = p.game.url; source.hidden = false;
    root.dataset.loaded = p.id;
    busy = true;
    setTimeout(() => { fen = p.puzzle_fen; lastmove = p.blunder.uci; busy = false; draw(); }, 500);
  }
  async function next() {
    const params = new URLSearchParams();
    if (root.dataset.player) params.set("player", root.dataset.player);
    if (root.dataset.theme) params.set("theme", root.dataset.theme);
    // Serving marks the puzzle served: with KIBITZ_API_TOKEN set it needs the token (the one
    // saved on the ops page).
    const token = localStorage.getItem("kibitz-token");
    const res = await fetch(`/api/problems/random?${params}`, {
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) { turn.textContent = body.detail || "No puzzle yet."; return; }
    start(body);
  }
  retry.addEventListener("click", () => {
    done = false; retry.hidden = true; solution.hidden = true; say("Try again.");
  });
  solution.addEventListener("click", () => {
    if (expected) say(`The move was ${expected.san}.`, "");
    solution.hidden = true;
  });
  document.getElementById("trainer-next").addEventListener("click", next);
  const id = root.dataset.problemId;
  if (id) {
    fetch(`/api/problems/${encodeURIComponent(id)}`).then((r) => r.json()).then(start);
  } else {
    next();
  }
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

function initMatch() {
  const root = document.getElementById("match");
  if (!root) return;
  const id = root.dataset.matchId;
  const board = document.getElementById("m-board");
  const phase = document.getElementById("m-phase");
  const clock = document.getElementById("m-clock");
  const form = document.getElementById("m-answer");
  const answers = document.getElementById("m-answers");
  const error = document.getElementById("m-error");
  const standings = document.getElementById("m-standings");
  const final = document.getElementById("m-final");
  let current = null, shownFen = null, done = false;

  function row(cells, tag) {
    const tr = document.createElement("tr");
    for (const text of cells) {
      const cell = document.createElement(tag || "td");
      cell.textContent = text;
      tr.appendChild(cell);
    }
    return tr;
  }
  async function send(url, body) {
    error.textContent = "";
    try {
      await postJson(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      await refresh();
    } catch (err) { error.textContent = err.message; }
  }
  function render(m) {
    const r = m.rounds[m.rounds.length - 1];
    document.getElementById("m-round").textContent = r ? `round ${r.number} of ${m.rounds_total}` : "";
    document.getElementById("m-status").textContent = m.status === "completed" ? "over" : (r ? r.status : "starting");
    root.dataset.round = r ? r.number : 0;
    root.dataset.phase = r ? r.status : "starting";
    if (r && r.fen !== shownFen) {
      shownFen = r.fen;
      const flip = r.fen.split(" ")[1] === "b" ? "&flipped=1" : "";
      board.src = `/board.svg?fen=${encodeURIComponent(r.fen)}${flip}`;
    }
    standings.replaceChildren(
      row(["", "points", "rounds", "per round"], "th"),
      ...m.standings.map((s) => row([s.who, s.score, s.rounds, s.per_round])),
    );
    if (m.status === "completed") {
      final.hidden = false;
      final.textContent = `Match over. Ranking: ${m.ranking.map((who, i) => `${i + 1}. ${who}`).join(", ")}`;
      done = true;
    }
    if (!r) return;
    const toMove = r.fen.split(" ")[1] === "w" ? "White" : "Black";
    const left = r.deadline ? Math.max(0, Math.round(r.deadline - Date.now() / 1000)) : null;
    clock.textContent = left !== null && r.status !== "completed" ? `${left} s left` : "";
    form.hidden = !(r.status === "responding" && !r.i_answered);
    answers.replaceChildren();
    if (r.status === "starting") phase.textContent = "Waiting for the robots…";
    else if (r.status === "responding") {
      phase.textContent = r.i_answered
        ? `You answered as ${r.my_letter}. Waiting for the others (${r.answered} of ${r.letters.length}).`
        : `${toMove} to move: your move, and why? You are ${r.my_letter} this round.`;
    } else if (r.status === "voting") {
      phase.textContent = r.i_voted ? `Voted. Waiting for the others (${r.voted} votes).` : "Vote for the best answer other than yours.";
    } else {
      phase.textContent = `Round ${r.number} over.`;
    }
    const last = [...m.rounds].reverse().find((x) => x.status === "completed");
    const results = document.getElementById("m-results");
    if (last) {
      results.hidden = false;
      results.dataset.round = last.number;
      document.getElementById("m-results-title").textContent =
        `Round ${last.number} results — the engine's move: ${last.best || "?"}`;
      document.getElementById("m-results-list").replaceChildren(...last.answers.map((a) => {
        const li = document.createElement("li");
        li.className = a.mine ? "mine" : "";
        li.textContent = `${a.letter} ${a.who}: ${a.san} — ${a.engine_points} for the move + ${a.votes} votes`;
        return li;
      }));
    }
    if (r.status === "completed") return;
    for (const a of r.answers) {
      const li = document.createElement("li");
      li.className = a.mine ? "mine" : "";
      li.dataset.letter = a.letter;
      const who = a.who ? ` — ${a.who}: ${a.engine_points} + ${a.votes} votes` : "";
      li.textContent = `${a.letter}: ${a.san} — “${a.reason}”${who}`;
      if (r.status === "voting" && !r.i_voted && !a.mine) {
        const button = document.createElement("button");
        button.type = "button"; button.textContent = `Vote ${a.letter}`;
        button.addEventListener("click", () => send(`/api/matches/${id}/rounds/${r.number}/vote`, { identity: a.letter }));
        li.appendChild(button);
      }
      answers.appendChild(li);
    }
    current = r;
  }
  async function refresh() {
    const res = await fetch(`/api/matches/${encodeURIComponent(id)}`);
    if (res.ok) render(await res.json());
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!current) return;
    send(`/api/matches/${id}/rounds/${current.number}/response`, {
      move: form.move.value.trim(), reason: form.reason.value.trim(),
    }).then(() => { if (!error.textContent) form.reset(); });
  });
  async function loop() {
    await refresh();
    if (!done) setTimeout(loop, 500);
  }
  loop();
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
initMatch();
initTrainer();
initTrack();
initLiveList();
initLive();
initImport();
initGame();
initPlayer();
