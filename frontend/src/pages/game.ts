// The analysis board (templates/game.html): the game on a chessground board with the engine's
// numbers beside it; any move played on the board explores from there with the server's
// evaluator; clocks from the stored clocks.

import { Chessground } from "@lichess-org/chessground";
import type { Api } from "@lichess-org/chessground/api";
import type { Key } from "@lichess-org/chessground/types";
import { Chess } from "chessops/chess";
import { chessgroundDests } from "chessops/compat";
import { makeFen } from "chessops/fen";
import { makeSan } from "chessops/san";
import type { Move, NormalMove, Role } from "chessops/types";
import { makeSquare, makeUci, parseUci } from "chessops/util";
import { api, ApiError } from "../lib/api";
import { $, arrow, position, squareOf, START_FEN } from "../lib/board";
import { formatClock, formatEval, winningChances } from "../lib/evals";
import { choosePromotion, isPromotion } from "../lib/promotion";
import { Retro, type Mistake, type RetroBoard } from "../lib/retro";
import type { AnalysisView, ExploreView, GameDetail } from "../lib/types";

const RETRO_SWING = 0.075; // lila ui/analyse/src/retrospect/retroCtrl.ts
const BUDGETS = [100_000, 300_000, 1_000_000, 3_000_000];
const BUDGET_KEY = "kibitz-explore-nodes";

interface Node {
  fen: string;
  uci: string | null; // the move that led here
  san: string | null;
  cp: number | null;
  mate: number | null;
  best: string | null; // best move from here (UCI)
  line: string[]; // best line from here (SAN)
  lineUci: string[];
  depth: number | null;
  nodes: number | null;
  cached?: boolean;
}



function replay(fen: string, line: string[]): { sans: string[]; ucis: string[] } {
  // A SAN line from `fen`, checked move by move (stops at the first it can't play).
  const pos = position(fen);
  const sans: string[] = [];
  const ucis: string[] = [];
  for (const san of line) {
    const move = [...allMoves(pos)].find((m) => makeSan(pos, m) === san);
    if (!move) break;
    sans.push(san);
    ucis.push(makeUci(move));
    pos.play(move);
  }
  return { sans, ucis };
}

function* allMoves(pos: Chess): Generator<Move> {
  for (const [from, dests] of pos.allDests()) {
    for (const to of dests) {
      const piece = pos.board.get(from);
      const lastRank = piece?.role === "pawn" && (to >> 3 === 0 || to >> 3 === 7);
      if (lastRank) for (const promotion of ["queen", "rook", "bishop", "knight"] as Role[]) yield { from, to, promotion };
      else yield { from, to };
    }
  }
}

class AnalysisBoard implements RetroBoard {
  readonly root = $("game");
  readonly id = this.root.dataset.gameId!;
  game!: GameDetail;
  mainline: Node[] = [];
  ply = 0;
  explore: Node[] = []; // moves played on the board from mainline[exploreFrom]
  exploreFrom = 0;
  cg!: Api;
  orientation: "white" | "black" = "white";
  budget = Number(localStorage.getItem(BUDGET_KEY)) || 1_000_000;
  asked = 0; // the latest explore request: older answers are dropped
  analysis!: AnalysisView;
  retro: Retro | null = null;
  onMove: ((fen: string, uci: string) => void) | null = null;
  locked: "white" | "black" | null = null; // learn from your mistakes: only this side moves
  shapes: string | null | undefined = undefined; // an arrow set from outside (undefined: the engine's)

  async start(): Promise<void> {
    const [game, analysis] = await Promise.all([
      api<GameDetail>("GET", `/api/games/${this.id}`),
      api<AnalysisView>("GET", `/api/games/${this.id}/analysis`),
    ]);
    this.game = game;
    this.analysis = analysis;
    this.mainline = this.build(game, analysis);
    this.cg = Chessground($("board"), {
      coordinates: true,
      movable: { free: false, showDests: true, events: { after: (o, d) => this.played(o, d) } },
      draggable: { showGhost: true },
      highlight: { lastMove: true, check: true },
      animation: { enabled: true, duration: 150 },
      drawable: { enabled: true },
      premovable: { enabled: false },
    });
    this.controls();
    const fromHash = /ply=(\d+)/.exec(window.location.hash);
    this.goto(fromHash ? Number(fromHash[1]) : 0);
    this.root.dataset.ready = "1";
  }

  build(game: GameDetail, analysis: AnalysisView): Node[] {
    const start = game.initial_fen ?? START_FEN;
    const evals = new Map((analysis.evals ?? []).map((e) => [e.ply, e]));
    const pos = position(start);
    const nodes: Node[] = [];
    const deep = analysis.results_phase === "deep" ? analysis.nodes?.deep ?? null : analysis.nodes?.quick ?? null;
    for (let ply = 0; ply <= game.moves_uci.length; ply++) {
      let san: string | null = null;
      let uci: string | null = null;
      if (ply > 0) {
        uci = game.moves_uci[ply - 1];
        const move = parseUci(uci)!;
        san = makeSan(pos, move);
        pos.play(move);
      }
      const here = ply === 0 ? analysis.start : evals.get(ply);
      const next = evals.get(ply + 1); // its best move and line are from this position
      const fen = makeFen(pos.toSetup());
      const line = next?.line ? replay(fen, next.line.split(" ")) : { sans: [], ucis: [] };
      nodes.push({
        fen,
        uci,
        san,
        cp: here?.cp ?? null,
        mate: here?.mate ?? null,
        best: next?.best ?? null,
        line: line.sans,
        lineUci: line.ucis,
        depth: null,
        nodes: here ? deep : null,
      });
    }
    return nodes;
  }

  current(): Node {
    return this.explore.length ? this.explore[this.explore.length - 1] : this.mainline[this.ply];
  }

  goto(ply: number): void {
    this.explore = [];
    this.ply = Math.max(0, Math.min(this.mainline.length - 1, ply));
    this.render();
  }

  render(): void {
    const node = this.current();
    const pos = position(node.fen);
    const last = node.uci ? parseUci(node.uci) : undefined;
    const lastMove = last && "from" in last ? ([makeSquare(last.from), makeSquare(last.to)] as Key[]) : undefined;
    this.cg.set({
      fen: node.fen,
      orientation: this.orientation,
      turnColor: pos.turn,
      lastMove,
      check: pos.isCheck(),
      movable: {
        color: this.locked === null || this.locked === pos.turn ? pos.turn : undefined,
        dests: chessgroundDests(pos),
      },
    });
    const best = this.shapes === undefined ? (this.hidingEngine() ? null : node.best) : this.shapes;
    this.cg.setAutoShapes(best ? [arrow(best)] : []);
    this.root.dataset.arrow = best ?? "";
    this.showEval(node);
    this.showClocks();
    this.showMoves();
    this.root.dataset.ply = String(this.ply);
    this.root.dataset.fen = node.fen;
    this.root.dataset.exploring = this.explore.length ? "1" : "";
    $("ply-label").textContent = this.explore.length
      ? `exploring from ply ${this.exploreFrom}`
      : `ply ${this.ply} / ${this.mainline.length - 1}`;
    if (!this.explore.length) history.replaceState(null, "", `#ply=${this.ply}`);
  }

  hidingEngine(): boolean {
    // While a mistake is being looked for, the engine's numbers would give the answer away.
    return this.retro !== null && ["find", "eval", "fail"].includes(this.retro.feedback);
  }

  showEval(node: Node): void {
    const hiding = this.hidingEngine(); // the gauge, the number, the line: no spoilers
    $("engine").classList.toggle("hidden-by-retro", hiding);
    const known = !hiding && (node.cp !== null || node.mate !== null);
    const chances = known ? winningChances(node.cp, node.mate) : 0;
    ($("evalbar").firstElementChild as HTMLElement).style.height = `${50 + 50 * chances}%`;
    $("evalbar").classList.toggle("unknown", !known);
    $("evalbar").classList.toggle("flipped", this.orientation === "black");
    $("eval-number").textContent = known ? formatEval(node.cp, node.mate) : "–";
    const info: string[] = [];
    if (node.depth !== null) info.push(`depth ${node.depth}`);
    if (node.nodes) info.push(`${node.nodes.toLocaleString("en")} nodes`);
    if (node.nodes && this.analysis.degraded) info.push("a lower budget: the engines were busy");
    if (node.cached) info.push("cached");
    $("engine-info").textContent = info.join(" · ");
    const pv = $("pv");
    pv.replaceChildren();
    const pos = position(node.fen);
    let number = pos.fullmoves;
    node.line.forEach((san, i) => {
      const white = (pos.turn === "white") === (i % 2 === 0);
      if (white || i === 0) {
        const n = document.createElement("span");
        n.className = "pv-number";
        n.textContent = white ? `${number}.` : `${number}…`;
        pv.append(n);
      }
      const a = document.createElement("a");
      a.href = "#";
      a.className = "pv-move";
      a.textContent = san;
      a.dataset.index = String(i);
      a.addEventListener("click", (e) => {
        e.preventDefault();
        this.playLine(node, i);
      });
      pv.append(a, " ");
      if (!white) number++;
    });
  }

  showClocks(): void {
    const clocks = this.game.clocks_cs;
    const top = $("clock-top");
    const bottom = $("clock-bottom");
    const names = { white: this.game.white ?? "White", black: this.game.black ?? "Black" };
    const upper = this.orientation === "white" ? "black" : "white";
    const lower = upper === "white" ? "black" : "white";
    const at = (color: "white" | "black"): string => {
      if (!clocks || !clocks.length) return "";
      const firstPly = this.startTurn() === color ? 1 : 2;
      let shown: number | null = null;
      for (let p = firstPly; p <= this.ply; p += 2) shown = clocks[p - 1] ?? shown;
      const initial = this.game.clock?.initial;
      return shown !== null ? formatClock(shown) : initial != null ? formatClock(initial * 100) : "";
    };
    top.innerHTML = "";
    bottom.innerHTML = "";
    top.append(label(names[upper]), clockBox(at(upper)));
    bottom.append(label(names[lower]), clockBox(at(lower)));
  }

  startTurn(): "white" | "black" {
    return position(this.mainline[0].fen).turn;
  }

  spent(ply: number): number | null {
    const clocks = this.game.clocks_cs;
    if (!clocks || ply < 1 || clocks[ply - 1] === undefined) return null;
    const increment = (this.game.clock?.increment ?? 0) * 100;
    const before = ply > 2 ? clocks[ply - 3] : this.game.clock?.initial != null ? this.game.clock.initial * 100 : null;
    return before === null || before === undefined ? null : before - clocks[ply - 1] + increment;
  }

  showMoves(): void {
    for (const a of document.querySelectorAll<HTMLAnchorElement>("#moves .move")) {
      const ply = Number(a.dataset.ply);
      a.classList.toggle("current", !this.explore.length && ply === this.ply);
      a.classList.toggle("explored-from", this.explore.length > 0 && ply === this.exploreFrom);
    }
    const current = document.querySelector<HTMLElement>(`#moves .move[data-ply="${this.ply}"]`);
    $("comment").textContent = this.explore.length ? "" : current?.dataset.comment ?? "";
    current?.scrollIntoView({ block: "nearest" });
    const bar = $("explore-bar");
    bar.hidden = !this.explore.length;
    $("explore-moves").textContent = this.explore.map((n) => n.san).join(" ");
    const cursor = document.getElementById("graph-cursor");
    const graph = document.getElementById("eval-graph");
    if (cursor && graph) {
      const x = String(this.ply * Number(graph.dataset.step));
      cursor.setAttribute("x1", x);
      cursor.setAttribute("x2", x);
    }
  }

  decorateMoves(): void {
    for (const a of document.querySelectorAll<HTMLAnchorElement>("#moves .move")) {
      const ply = Number(a.dataset.ply);
      const node = this.mainline[ply];
      if (!node) continue;
      if (node.cp !== null || node.mate !== null) {
        const e = document.createElement("span");
        e.className = "move-eval";
        e.textContent = formatEval(node.cp, node.mate);
        a.append(e);
      }
      const spent = this.spent(ply);
      if (spent !== null) {
        const t = document.createElement("span");
        t.className = "move-time";
        t.textContent = `${(Math.max(0, spent) / 100).toFixed(spent < 1000 ? 1 : 0)}s`;
        t.title = "time spent on this move";
        a.append(t);
      }
      a.addEventListener("click", (e) => {
        e.preventDefault();
        this.goto(ply);
      });
    }
  }

  played(orig: Key, dest: Key): void {
    const pos = position(this.current().fen);
    const from = squareOf(orig);
    const to = squareOf(dest);
    if (isPromotion(pos.board.get(from)?.role, to)) {
      choosePromotion(
        $("promotion"),
        pos.turn,
        (role) => this.play({ from, to, promotion: role }),
        () => this.render(),
      );
      return;
    }
    this.play({ from, to });
  }

  play(move: NormalMove, search = true): void {
    const from = this.current();
    const uci = makeUci(move);
    // The game's own next move: just step forward in the game.
    if (!this.explore.length && this.mainline[this.ply + 1]?.uci === uci && !this.onMove) {
      this.goto(this.ply + 1);
      return;
    }
    const pos = position(from.fen);
    const san = makeSan(pos, move);
    pos.play(move);
    if (!this.explore.length) this.exploreFrom = this.ply;
    this.explore.push({
      fen: makeFen(pos.toSetup()),
      uci,
      san,
      cp: null,
      mate: null,
      best: null,
      line: [],
      lineUci: [],
      depth: null,
      nodes: null,
    });
    this.render();
    const added = this.explore[this.explore.length - 1];
    if (this.onMove) this.onMove(added.fen, uci);
    else if (search) void this.search(added);
  }

  playLine(node: Node, upto: number): void {
    // The engine line clicked up to its move `upto`: played on the board from `node`.
    if (this.current() !== node) return;
    for (let i = 0; i <= upto; i++) {
      const move = parseUci(node.lineUci[i]);
      if (!move || !("from" in move)) return;
      this.play(move, i === upto);
    }
  }

  async search(node: Node): Promise<void> {
    const asked = ++this.asked;
    $("engine-status").textContent = `searching ${this.budget.toLocaleString("en")} nodes…`;
    try {
      const found = await api<ExploreView>("POST", "/api/explore", { fen: node.fen, nodes: this.budget });
      Object.assign(node, {
        cp: found.cp,
        mate: found.mate,
        best: found.best,
        line: found.line_san,
        lineUci: found.line_uci,
        depth: found.depth,
        nodes: found.nodes,
        cached: found.cached,
      });
      if (asked === this.asked) $("engine-status").textContent = found.game_over ? "game over" : "";
    } catch (e) {
      if (asked === this.asked) $("engine-status").textContent = e instanceof ApiError ? e.message : String(e);
    }
    if (this.current() === node) this.render();
  }

  showBest(uci: string | null): void {
    this.shapes = uci;
    this.render();
  }

  lockTo(color: "white" | "black" | null): void {
    this.locked = color;
    if (color === null && this.retro?.feedback !== "view") this.shapes = undefined;
    this.render();
  }

  mistakes(color: "white" | "black"): Mistake[] {
    // lila's retrospection picks the player's own moves that lost more than 0.075 winning
    // chances (on [-1, 1]) against the position's evaluation before them.
    const out: Mistake[] = [];
    const whiteFirst = this.startTurn() === "white";
    const sign = color === "white" ? 1 : -1;
    for (let ply = 1; ply < this.mainline.length; ply++) {
      const mover = (ply % 2 === 1) === whiteFirst ? "white" : "black";
      const before = this.mainline[ply - 1];
      const played = this.mainline[ply];
      if (mover !== color || !played.uci) continue;
      if ((before.cp === null && before.mate === null) || (played.cp === null && played.mate === null)) continue;
      const lost = sign * (winningChances(before.cp, before.mate) - winningChances(played.cp, played.mate));
      if (lost <= RETRO_SWING || !before.best || before.best === played.uci) continue;
      const judged = document.querySelector<HTMLElement>(`#moves a.move[data-ply="${ply}"]`);
      const judgment = ["blunder", "mistake", "inaccuracy"].find((j) => judged?.classList.contains(j)) ?? "move";
      const move = parseUci(before.best);
      out.push({
        ply,
        san: played.san ?? "",
        played: played.uci,
        best: before.best,
        bestSan: move ? makeSan(position(before.fen), move) : null,
        judgment,
        before: { cp: before.cp, mate: before.mate },
      });
    }
    return out;
  }

  startRetro(color: "white" | "black"): void {
    this.retro?.close();
    const budget = this.analysis.nodes?.deep ?? this.budget;
    this.retro = new Retro(this, color, this.mistakes(color), Math.max(10_000, budget), (r) => this.showRetro(r));
    if (this.orientation !== color) this.flip();
    this.retro.start();
  }

  stopRetro(): void {
    this.retro?.close();
    this.retro = null;
    this.shapes = undefined;
    $("retro").hidden = true;
    this.render();
  }

  showRetro(r: Retro): void {
    const box = $("retro");
    box.hidden = false;
    box.dataset.feedback = r.feedback;
    const m = r.current;
    const total = r.mistakes.length;
    const side = r.color === "white" ? "White" : "Black";
    const text = $("retro-text");
    const show = (id: string, on: boolean): void => {
      $(id).hidden = !on;
    };
    $("retro-score").textContent = `${r.solved.size} solved of ${total}`;
    if (r.feedback === "end" || !m) {
      text.textContent = total
        ? `Done reviewing ${side}'s mistakes: ${r.solved.size} of ${total} found.`
        : `${side} made no inaccuracy, mistake or blunder in this game.`;
    } else if (r.feedback === "find") {
      text.textContent = `${cap(m.judgment)} ${r.index + 1} of ${total}: ${side} played ${m.san}. Find a better move for ${side}.`;
      $("retro-score").textContent = `${r.solved.size} solved of ${total}`;
    } else if (r.feedback === "eval") {
      text.textContent = "Evaluating your move…";
    } else if (r.feedback === "win") {
      text.textContent = `Good move! (${m.bestSan ?? "the engine's move"} was the engine's choice.)`;
    } else if (r.feedback === "fail") {
      text.textContent = `You can do better: try another move for ${side}.`;
    } else {
      text.textContent = `Solution: ${m.bestSan ?? "?"}.`;
    }
    show("retro-solution", r.feedback === "fail" || r.feedback === "find");
    show("retro-skip", r.feedback === "fail" || r.feedback === "find");
    show("retro-retry", r.feedback === "fail");
    show("retro-next", r.feedback === "win" || r.feedback === "view");
    show("retro-close", true);
    this.render();
  }

  flip(): void {
    this.orientation = this.orientation === "white" ? "black" : "white";
    this.root.dataset.orientation = this.orientation;
    this.render();
  }

  controls(): void {
    this.decorateMoves();
    const step = (n: number): void => {
      if (this.explore.length) {
        if (n < 0) {
          this.explore.pop();
          this.render();
        }
        return;
      }
      this.goto(this.ply + n);
    };
    $("first").onclick = () => this.goto(0);
    $("prev").onclick = () => step(-1);
    $("next").onclick = () => step(1);
    $("last").onclick = () => this.goto(this.mainline.length - 1);
    $("flip").onclick = () => this.flip();
    $("back-to-game").onclick = () => this.goto(this.exploreFrom);
    const retroStart = document.getElementById("retro-start");
    if (retroStart) {
      retroStart.onclick = () => this.startRetro($<HTMLSelectElement>("retro-color").value as "white" | "black");
      $("retro-solution").onclick = () => this.retro?.viewSolution();
      $("retro-skip").onclick = () => this.retro?.next();
      $("retro-retry").onclick = () => this.retro?.retry();
      $("retro-next").onclick = () => this.retro?.next();
      $("retro-close").onclick = () => this.stopRetro();
    }
    const budget = $<HTMLSelectElement>("budget");
    for (const n of BUDGETS) budget.append(new Option(`${n.toLocaleString("en")} nodes`, String(n), false, n === this.budget));
    budget.onchange = () => {
      this.budget = Number(budget.value);
      localStorage.setItem(BUDGET_KEY, budget.value);
      if (this.explore.length) void this.search(this.current());
    };
    document.addEventListener("keydown", (e) => {
      if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
      if (e.key === "ArrowLeft") step(-1);
      else if (e.key === "ArrowRight") step(1);
      else if (e.key === "ArrowUp" || e.key === "Home") this.goto(0);
      else if (e.key === "ArrowDown" || e.key === "End") this.goto(this.mainline.length - 1);
      else if (e.key === "f") this.flip();
      else if (e.key === "Escape" && this.explore.length) this.goto(this.exploreFrom);
      else return;
      e.preventDefault();
    });
    const graph = document.getElementById("eval-graph") as SVGSVGElement | null;
    graph?.addEventListener("click", (e) => {
      const box = graph.getBoundingClientRect();
      const scale = graph.viewBox.baseVal.width / box.width;
      this.goto(Math.round(((e.clientX - box.left) * scale) / Number(graph.dataset.step)));
    });
    for (const a of document.querySelectorAll<HTMLAnchorElement>(".goto")) {
      a.addEventListener("click", (e) => {
        e.preventDefault();
        this.goto(Number(a.dataset.ply));
      });
    }
  }
}

const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

function label(text: string): HTMLElement {
  const s = document.createElement("span");
  s.className = "clock-name";
  s.textContent = text;
  return s;
}

function clockBox(text: string): HTMLElement {
  const s = document.createElement("span");
  s.className = "clock";
  s.textContent = text;
  s.hidden = !text;
  return s;
}

if (document.getElementById("game")) {
  const board = new AnalysisBoard();
  board.start().catch((e) => {
    $("comment").textContent = `the board could not load: ${e instanceof Error ? e.message : e}`;
  });
}
