// "Learn from your mistakes" on the analysis board, as Lichess has it (lila
// ui/analyse/src/retrospect/retroCtrl.ts): the judged moves of one side in turn, from the
// position before each; the player looks for a better move. The engine's best move wins at
// once, the move played in the game fails at once; any other move is searched by the server
// and wins when it loses less than 0.04 winning chances against the best (lila's threshold).

import { api } from "./api";
import { winningChances } from "./evals";
import type { ExploreView } from "./types";

export interface Mistake {
  ply: number; // the judged move
  san: string; // what was played
  played: string; // the same, UCI
  best: string | null; // the engine's best move there (UCI)
  bestSan: string | null;
  judgment: string; // inaccuracy, mistake, blunder
  before: { cp: number | null; mate: number | null }; // the best line's score, White's side
}

export interface RetroBoard {
  goto(ply: number): void;
  showBest(uci: string | null): void;
  lockTo(color: "white" | "black" | null): void;
  onMove: ((fen: string, uci: string) => void) | null;
}

export type Feedback = "find" | "eval" | "win" | "fail" | "view" | "end";

const THRESHOLD = -0.04;

export class Retro {
  index = 0;
  solved = new Set<number>();
  feedback: Feedback = "find";
  constructor(
    readonly board: RetroBoard,
    readonly color: "white" | "black",
    readonly mistakes: Mistake[],
    readonly nodes: number,
    readonly render: (retro: Retro) => void,
  ) {}

  get current(): Mistake | undefined {
    return this.mistakes[this.index];
  }

  start(): void {
    this.index = 0;
    this.jump();
  }

  jump(): void {
    const m = this.current;
    if (!m) {
      this.feedback = "end";
      this.board.lockTo(null);
      this.board.showBest(null);
      this.render(this);
      return;
    }
    this.feedback = "find";
    this.board.goto(m.ply - 1);
    this.board.showBest(null); // no spoiler: the arrow comes with the solution
    this.board.lockTo(this.color);
    this.board.onMove = (fen, uci) => void this.judge(fen, uci);
    this.render(this);
  }

  async judge(fen: string, uci: string): Promise<void> {
    const m = this.current;
    if (!m || (this.feedback !== "find" && this.feedback !== "fail")) return;
    if (uci === m.best) return this.win();
    if (uci === m.played) return this.fail();
    this.feedback = "eval";
    this.render(this);
    try {
      const found = await api<ExploreView>("POST", "/api/explore", { fen, nodes: this.nodes });
      if (this.current !== m) return;
      if (found.outcome === "checkmate") return this.win(); // the player mated
      const sign = this.color === "white" ? 1 : -1;
      const after = sign * winningChances(found.outcome === "draw" ? 0 : found.cp, found.mate);
      const best = sign * winningChances(m.before.cp, m.before.mate);
      if (after - best > THRESHOLD) this.win();
      else this.fail();
    } catch (e) {
      this.feedback = "fail";
      this.render(this);
      throw e;
    }
  }

  win(): void {
    this.feedback = "win";
    this.solved.add(this.index);
    this.board.onMove = null;
    this.board.lockTo(null);
    this.render(this);
  }

  fail(): void {
    this.feedback = "fail";
    this.render(this);
  }

  retry(): void {
    this.jump();
  }

  viewSolution(): void {
    const m = this.current;
    if (!m) return;
    this.feedback = "view";
    this.board.onMove = null;
    this.board.goto(m.ply - 1);
    this.board.showBest(m.best);
    this.board.lockTo(null);
    this.render(this);
  }

  next(): void {
    this.index++;
    this.jump();
  }

  close(): void {
    this.board.onMove = null;
    this.board.lockTo(null);
  }
}
