// The live page (templates/live.html): a tracked player's game as it is played — the board
// turned to their side, clocks, the move list (step back and forth; it follows the game again
// at the last move), the eval gauge and number, the commentary feed, and how the game ended.

import type { Api } from "@lichess-org/chessground/api";
import { api } from "../lib/api";
import { $, lastMove, START_FEN, turnOf, viewBoard } from "../lib/board";
import { formatClock, formatEval, winningChances } from "../lib/evals";

interface Line {
  ply: number;
  san: string;
  uci: string;
  fen: string;
  text?: string;
  judgment?: string | null;
  cp?: number | null;
  mate?: number | null;
  white_clock?: number | null;
  black_clock?: number | null;
  audio_url?: string | null;
}

interface LiveView {
  game_id: string;
  username: string | null;
  white: string | null;
  black: string | null;
  status: string;
  result: string | null;
  initial_fen: string | null;
  plies: number;
  commentary: (Line & { text: string })[];
}

interface Ended {
  status?: string | null;
  result?: string | null;
  white?: string | null;
  black?: string | null;
}

// Lichess's status names (lila chess.Status) in words.
const ENDINGS: Record<string, string> = {
  mate: "checkmate",
  resign: "resignation",
  outoftime: "time forfeit",
  timeout: "the opponent left",
  stalemate: "stalemate",
  draw: "draw",
  aborted: "aborted",
  noStart: "not started in time",
  cheat: "cheat detected",
  variantEnd: "variant end",
  unknownFinish: "finished",
};


class LivePage {
  readonly root = $("live");
  readonly id = this.root.dataset.gameId!;
  lines = new Map<number, Line>();
  shown = 0; // the ply on the board
  following = true; // at the last move, moving on with the game
  view!: LiveView;
  cg!: Api;
  lastMoveAt = performance.now();
  ended = false;
  audio = new Audio();
  queue: string[] = [];

  async start(): Promise<void> {
    this.view = await api<LiveView>("GET", `/api/live/${encodeURIComponent(this.id)}`).catch(() => ({
      game_id: this.id,
      username: null,
      white: null,
      black: null,
      status: "waiting",
      result: null,
      initial_fen: null,
      plies: 0,
      commentary: [],
    }));
    for (const line of this.view.commentary) this.lines.set(line.ply, line);
    const tracked = (this.view.username ?? "").toLowerCase();
    const orientation = tracked && tracked === (this.view.black ?? "").toLowerCase() ? "black" : "white";
    this.root.dataset.orientation = orientation;
    this.cg = viewBoard($("live-board"), orientation);
    this.shown = this.last();
    this.ended = !["started", "created", "waiting", "unknown"].includes(this.view.status);
    this.controls();
    this.subscribe();
    this.render();
    setInterval(() => this.tick(), 200);
    this.root.dataset.ready = "1";
  }

  last(): number {
    return Math.max(0, ...this.lines.keys());
  }

  render(): void {
    const line = this.lines.get(this.shown);
    const fen = line?.fen ?? this.view.initial_fen ?? START_FEN;
    this.cg.set({ fen, lastMove: lastMove(line?.uci), turnColor: turnOf(fen), check: line?.san.includes("+") || line?.san.includes("#") ? turnOf(fen) : false });
    this.root.dataset.ply = String(this.shown);
    $("ply-count").textContent = String(this.shown);
    $("back-to-live").hidden = this.following;
    // The gauge and number: the latest evaluation at or before the shown ply.
    let scored: Line | undefined;
    for (let p = this.shown; p > 0 && !scored; p--) {
      const l = this.lines.get(p);
      if (l && (l.cp != null || l.mate != null)) scored = l;
    }
    const known = scored !== undefined;
    const chances = known ? winningChances(scored!.cp ?? null, scored!.mate ?? null) : 0;
    $("evalbar-white").style.height = `${(50 + 50 * chances).toFixed(1)}%`;
    $("live-eval").textContent = known ? formatEval(scored!.cp ?? null, scored!.mate ?? null) : "";
    this.renderMoves();
    this.renderClocks();
    this.renderTitle();
  }

  renderMoves(): void {
    const list = $("live-moves");
    const plies = [...this.lines.keys()].sort((a, b) => a - b);
    list.replaceChildren();
    for (const ply of plies) {
      const l = this.lines.get(ply)!;
      if (ply % 2 === 1 || ply === plies[0]) {
        const n = document.createElement("span");
        n.className = "move-number";
        n.textContent = ply % 2 === 1 ? `${(ply + 1) / 2}.` : `${ply / 2}…`;
        list.append(n);
      }
      const a = document.createElement("a");
      a.href = "#";
      a.className = `move ${(l.judgment ?? "").toLowerCase()}${ply === this.shown ? " current" : ""}`;
      a.dataset.ply = String(ply);
      a.textContent = l.san;
      a.addEventListener("click", (e) => {
        e.preventDefault();
        this.show(ply);
      });
      list.append(a, " ");
    }
    list.querySelector(".current")?.scrollIntoView({ block: "nearest" });
  }

  clockAt(color: "white" | "black"): number | null {
    for (let p = this.shown; p > 0; p--) {
      const c = this.lines.get(p)?.[color === "white" ? "white_clock" : "black_clock"];
      if (c != null) return c;
    }
    return null;
  }

  renderClocks(): void {
    const orientation = this.root.dataset.orientation as "white" | "black";
    const top = orientation === "white" ? "black" : "white";
    const bottom = top === "white" ? "black" : "white";
    for (const [slot, color] of [["top", top], ["bottom", bottom]] as const) {
      const name = color === "white" ? this.view.white : this.view.black;
      $(`live-name-${slot}`).textContent = name ?? (color === "white" ? "White" : "Black");
      let seconds = this.clockAt(color);
      const fen = this.lines.get(this.shown)?.fen ?? START_FEN;
      const running = !this.ended && this.following && this.shown > 1 && turnOf(fen) === color;
      if (seconds !== null && running) seconds = Math.max(0, seconds - (performance.now() - this.lastMoveAt) / 1000);
      const clock = $(`live-clock-${slot}`);
      clock.textContent = seconds === null ? "" : formatClock(seconds * 100);
      clock.classList.toggle("running", running);
      clock.hidden = seconds === null;
    }
  }

  renderTitle(): void {
    const white = this.view.white ?? "White";
    const black = this.view.black ?? "Black";
    const status = this.view.status;
    let said: string;
    if (this.ended) {
      const how = ENDINGS[status] ?? status;
      said = this.view.result ? `${this.view.result} · ${how}` : how;
    } else said = status === "waiting" ? "waiting for the game" : "playing";
    $("live-status").textContent = said;
    document.title = `${white} – ${black} · ${this.ended ? this.view.result ?? "ended" : "live"} · kibitz`;
  }

  tick(): void {
    if (!this.ended && this.following) this.renderClocks();
  }

  show(ply: number): void {
    const last = this.last();
    this.shown = Math.max(0, Math.min(last, ply));
    this.following = this.shown === last;
    this.render();
  }

  add(line: Line): void {
    const had = this.lines.get(line.ply);
    this.lines.set(line.ply, { ...had, ...line });
    if (!had) this.lastMoveAt = performance.now();
    if (this.following) this.shown = this.last();
    this.render();
  }

  subscribe(): void {
    const source = new EventSource(`/api/live/${encodeURIComponent(this.id)}/events`);
    source.addEventListener("move", (e) => {
      const m = JSON.parse((e as MessageEvent).data);
      this.view.white ??= m.white;
      this.view.black ??= m.black;
      if (this.view.status === "waiting") this.view.status = "started";
      this.add({ ply: m.ply, san: m.san, uci: m.uci, fen: m.fen, white_clock: m.white_clock, black_clock: m.black_clock });
    });
    source.addEventListener("commentary", (e) => {
      const c = JSON.parse((e as MessageEvent).data);
      this.add(c);
      this.feed(c);
    });
    source.addEventListener("state", (e) => {
      const s = JSON.parse((e as MessageEvent).data) as Partial<LiveView>;
      this.view = { ...this.view, ...s, commentary: this.view.commentary };
      this.ended = !["started", "created", "waiting", "unknown"].includes(this.view.status);
      this.render();
    });
    source.addEventListener("started", (e) => {
      const s = JSON.parse((e as MessageEvent).data) as Ended;
      this.view.white ??= s.white ?? null;
      this.view.black ??= s.black ?? null;
      this.view.status = "started";
      this.render();
    });
    source.addEventListener("ended", (e) => {
      const s: Ended = JSON.parse((e as MessageEvent).data);
      this.ended = true;
      this.view.status = s.status ?? "unknownFinish";
      this.view.result = s.result ?? null;
      this.render();
    });
  }

  feed(c: Line & { text: string }): void {
    const feed = $("feed");
    if (feed.querySelector(`li[data-ply="${c.ply}"]`)) return;
    const item = document.createElement("li");
    item.dataset.ply = String(c.ply);
    item.className = (c.judgment ?? "").toLowerCase();
    item.textContent = c.text;
    const later = [...feed.children].find((li) => Number((li as HTMLElement).dataset.ply) < c.ply);
    feed.insertBefore(item, later ?? null);
    const toggle = $("audio-toggle") as HTMLInputElement;
    if (toggle.checked && c.audio_url) {
      if (this.audio.paused && !this.queue.length) {
        this.audio.src = c.audio_url;
        this.audio.play().catch(() => undefined);
      } else this.queue.push(c.audio_url);
    }
  }

  controls(): void {
    this.audio.addEventListener("ended", () => {
      const next = this.queue.shift();
      if (next) {
        this.audio.src = next;
        void this.audio.play();
      }
    });
    $("live-prev").onclick = () => this.show(this.shown - 1);
    $("live-next").onclick = () => this.show(this.shown + 1);
    $("live-first").onclick = () => this.show(0);
    $("back-to-live").onclick = () => this.show(this.last());
    $("live-flip").onclick = () => this.flip();
    document.addEventListener("keydown", (e) => {
      if (e.target instanceof HTMLInputElement) return;
      if (e.key === "ArrowLeft") this.show(this.shown - 1);
      else if (e.key === "ArrowRight") this.show(this.shown + 1);
      else if (e.key === "Home" || e.key === "ArrowUp") this.show(0);
      else if (e.key === "End" || e.key === "ArrowDown") this.show(this.last());
      else if (e.key === "f") this.flip();
      else return;
      e.preventDefault();
    });
  }

  flip(): void {
    const next = this.root.dataset.orientation === "white" ? "black" : "white";
    this.root.dataset.orientation = next;
    this.cg.set({ orientation: next });
    this.render();
  }
}

if (document.getElementById("live")) {
  new LivePage().start().catch((e) => {
    $("live-status").textContent = `the page could not load: ${e instanceof Error ? e.message : e}`;
  });
}
