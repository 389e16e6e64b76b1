// The puzzle trainer (templates/trainer.html), on a chessground board turned to the solver:
// the opponent's mistake is played, then the solver looks for the best move. Nothing gives the
// answer away before it is found (themes, rating and the source game come after); a hint shows
// the piece to move; "View the solution" plays the whole line; then on to the next puzzle
// (by itself if asked) or to the game it comes from on the analysis board.

import type { Api } from "@lichess-org/chessground/api";
import type { Key } from "@lichess-org/chessground/types";
import { Chess } from "chessops/chess";
import { chessgroundDests } from "chessops/compat";
import { makeFen } from "chessops/fen";
import { makeUci, parseUci } from "chessops/util";
import { api, ApiError } from "../lib/api";
import { Chessground } from "@lichess-org/chessground";
import { $, lastMove, position, squareOf } from "../lib/board";
import { choosePromotion, isPromotion } from "../lib/promotion";

interface MoveRef {
  uci: string;
  san: string;
}

interface Puzzle {
  id: string;
  fen: string;
  blunder: MoveRef;
  puzzle_fen: string;
  solution_length: number;
  solver: "white" | "black";
  themes: string[];
  rating: number;
  rating_kind: "estimate" | "glicko";
  game: { id: string; ply: number; white: string | null; black: string | null; url: string };
}

interface RatingChange {
  rating: number;
  rd: number;
  puzzle_rating: number;
  rated: boolean;
}

interface Attempt {
  rating?: RatingChange | null;
  correct: boolean;
  complete: boolean;
  reply: MoveRef | null;
  played: MoveRef | null;
  expected: MoveRef | null;
  fen: string;
}

type State = "loading" | "play" | "wrong" | "solved" | "viewed";

const AUTO_NEXT = "kibitz-auto-next";
const wait = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

class Trainer {
  readonly root = $("trainer");
  cg: Api = Chessground($("trainer-board"), {
    coordinates: true,
    movable: { free: false, showDests: true, events: { after: (o, d) => this.moved(o, d) } },
    premovable: { enabled: false },
    animation: { enabled: true, duration: 250 },
    highlight: { lastMove: true, check: true },
    drawable: { enabled: true },
  });
  puzzle: Puzzle | null = null;
  moves: string[] = []; // the solver's right moves so far
  fen = ""; // the position to play from
  last: string | null = null;
  state: State = "loading";
  counted = false; // a wrong move already ended this attempt
  readonly solver = this.root.dataset.solver || null; // whose rating the attempts move
  readonly streakMode = this.root.dataset.mode === "streak";
  streak = 0; // puzzles solved in a row (streak mode)
  rating: number | null = null; // the solver's, as the last attempt left it

  show(fen: string, uci: string | null, movable: boolean): void {
    const pos = position(fen);
    this.cg.set({
      fen,
      lastMove: lastMove(uci),
      turnColor: pos.turn,
      check: pos.isCheck(),
      movable: { color: movable ? pos.turn : undefined, dests: movable ? chessgroundDests(pos) : new Map() },
    });
    this.cg.setAutoShapes([]);
    this.root.dataset.fen = fen;
  }

  say(text: string, kind = ""): void {
    const f = $("trainer-feedback");
    f.textContent = text;
    f.className = `feedback ${kind}`;
  }

  setState(state: State): void {
    this.state = state;
    this.root.dataset.state = state;
    const over = state === "solved" || state === "viewed" || state === "wrong";
    $("trainer-hint").hidden = state !== "play";
    $("trainer-retry").hidden = state !== "wrong";
    $("trainer-solution").hidden = !(state === "play" || state === "wrong");
    $("trainer-after").hidden = !over; // themes, rating, the game: once solved or failed
    if (over && this.puzzle) {
      const p = this.puzzle;
      const kind = p.rating_kind === "glicko" ? "rating" : "estimated rating";
      $("trainer-meta").textContent = `${p.themes.join(", ")} · ${kind} ${p.rating} · ${p.game.white ?? "?"} – ${p.game.black ?? "?"}`;
      $<HTMLAnchorElement>("trainer-source").href = `/games/${encodeURIComponent(p.game.id)}#ply=${p.game.ply}`;
    }
  }

  async start(p: Puzzle): Promise<void> {
    this.puzzle = p;
    this.moves = [];
    this.counted = false;
    this.root.dataset.loaded = p.id;
    this.cg.set({ orientation: p.solver });
    this.setState("loading");
    $("trainer-meta").textContent = "";
    this.say("");
    $("trainer-turn").textContent = `Find the best move for ${p.solver}.`;
    this.show(p.fen, null, false);
    await wait(500); // the opponent's mistake, played on the board
    this.fen = p.puzzle_fen;
    this.last = p.blunder.uci;
    this.show(this.fen, this.last, true);
    this.setState("play");
  }

  moved(orig: Key, dest: Key): void {
    if (this.state !== "play") return;
    const pos = position(this.fen);
    const from = squareOf(orig);
    const to = squareOf(dest);
    if (isPromotion(pos.board.get(from)?.role, to)) {
      choosePromotion(
        $("promotion"),
        pos.turn,
        (role) => void this.attempt(makeUci({ from, to, promotion: role })),
        () => this.show(this.fen, this.last, true),
      );
      return;
    }
    void this.attempt(makeUci({ from, to }));
  }

  async attempt(uci: string): Promise<void> {
    const p = this.puzzle!;
    this.cg.set({ movable: { color: undefined, dests: new Map() } }); // one move at a time
    let body: Attempt;
    try {
      body = await api<Attempt>("POST", `/api/problems/${encodeURIComponent(p.id)}/attempts`, {
        moves: [...this.moves, uci],
        ...(this.solver ? { player: this.solver } : {}),
      });
    } catch (e) {
      this.say(e instanceof ApiError ? e.message : String(e), "bad");
      this.show(this.fen, this.last, true);
      return;
    }
    this.rated(body.rating);
    if (!body.correct) {
      this.counted = true;
      this.say(`✗ ${body.played?.san ?? uci} is not the move.`, "bad");
      this.setState("wrong");
      if (this.streakMode) await this.streakOver();
      await wait(600); // the wrong move stays on the board a moment, then is taken back,
      if (this.state === "wrong") this.show(this.fen, this.last, false); // unless retried
      return;
    }
    this.moves.push(uci);
    if (body.complete) {
      this.fen = body.fen;
      this.last = uci;
      this.show(this.fen, this.last, false);
      this.say(`✓ ${body.played?.san ?? uci}: solved!`, "good");
      $("trainer-turn").textContent = "Puzzle solved.";
      this.setState("solved");
      if (this.streakMode) {
        this.streak++;
        $("trainer-streak").textContent = `Streak: ${this.streak}`;
        void wait(1200).then(() => this.next());
        return;
      }
      this.maybeNext();
      return;
    }
    this.say(`✓ ${body.played?.san ?? uci} is right. Keep going.`, "good");
    await wait(300);
    this.fen = body.fen;
    this.last = body.reply?.uci ?? uci;
    this.show(this.fen, this.last, true);
  }

  async hint(): Promise<void> {
    const p = this.puzzle!;
    const h = await api<{ square: string }>("GET", `/api/problems/${encodeURIComponent(p.id)}/hint?step=${this.moves.length}`);
    this.cg.setAutoShapes([{ orig: h.square as Key, brush: "green" }]);
    this.root.dataset.hint = h.square;
  }

  async solution(): Promise<void> {
    const p = this.puzzle!;
    const body = await api<{ solution: MoveRef[]; rating?: RatingChange | null }>(
      "POST",
      `/api/problems/${encodeURIComponent(p.id)}/solution`,
      { counted: this.counted, ...(this.solver ? { player: this.solver } : {}) },
    );
    this.rated(body.rating);
    if (this.streakMode && !this.counted) await this.streakOver();
    this.setState("viewed");
    this.say(`The solution: ${body.solution.map((m) => m.san).join(" ")}`);
    $("trainer-turn").textContent = "The solution, played out.";
    let pos = position(p.puzzle_fen);
    let last = p.blunder.uci;
    this.show(p.puzzle_fen, last, false);
    for (const m of body.solution) {
      await wait(450);
      pos = pos.clone();
      pos.play(parseUci(m.uci)!);
      last = m.uci;
      this.show(fenOf(pos), last, false);
    }
    this.root.dataset.played = "1";
  }

  maybeNext(): void {
    if ($<HTMLInputElement>("trainer-auto").checked) void wait(1500).then(() => this.next());
  }

  // The solver's rating after an attempt that ended, and how much it moved.
  rated(change: RatingChange | null | undefined): void {
    if (!change) return;
    const before = this.rating;
    this.rating = change.rating;
    const delta = before === null || !change.rated ? "" : ` (${change.rating >= before ? "+" : ""}${change.rating - before})`;
    $("trainer-rating").textContent = `Your puzzle rating: ${change.rating}${delta}${change.rated ? "" : " · not rated: played before"}`;
  }

  async streakOver(): Promise<void> {
    const body = await api<{ best: number }>("POST", `/api/training/${encodeURIComponent(this.solver!)}/streak`, { score: this.streak });
    $("trainer-streak").textContent = `Streak over: ${this.streak} solved in a row (best ${body.best}).`;
    this.root.dataset.streakOver = String(this.streak);
    this.streak = 0;
  }

  async next(): Promise<void> {
    const params = new URLSearchParams();
    if (this.root.dataset.player) params.set("player", this.root.dataset.player);
    if (this.root.dataset.theme) params.set("theme", this.root.dataset.theme);
    if (this.streakMode) params.set("above", String(this.streak === 0 || !this.puzzle ? 0 : this.puzzle.rating));
    else if (this.solver) params.set("near", this.solver);
    try {
      await this.start(await api<Puzzle>("GET", `/api/problems/random?${params}`));
    } catch (e) {
      if (this.streakMode && this.streak > 0 && e instanceof ApiError && e.status === 404) {
        await this.streakOver(); // no harder puzzle left: the streak ends there, unbroken
        $("trainer-turn").textContent = "No harder puzzle left.";
        return;
      }
      $("trainer-turn").textContent = e instanceof ApiError ? e.message : "No puzzle yet.";
    }
  }

  controls(): void {
    $("trainer-next").onclick = () => void this.next();
    $("trainer-retry").onclick = () => {
      this.say("Try again.");
      this.setState("play");
      this.show(this.fen, this.last, true);
    };
    $("trainer-solution").onclick = () => void this.solution();
    $("trainer-hint").onclick = () => void this.hint();
    const auto = $<HTMLInputElement>("trainer-auto");
    auto.checked = localStorage.getItem(AUTO_NEXT) === "1";
    auto.onchange = () => localStorage.setItem(AUTO_NEXT, auto.checked ? "1" : "0");
  }
}

const fenOf = (pos: Chess): string => makeFen(pos.toSetup());

if (document.getElementById("trainer")) {
  const trainer = new Trainer();
  trainer.controls();
  const id = trainer.root.dataset.problemId;
  if (id) api<Puzzle>("GET", `/api/problems/${encodeURIComponent(id)}`).then((p) => trainer.start(p)).catch((e) => {
    $("trainer-turn").textContent = e instanceof Error ? e.message : String(e);
  });
  else void trainer.next();
}
