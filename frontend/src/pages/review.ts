// "Review my mistakes" (templates/review.html): the player's cards due today, one by one on a
// chessground board turned to the side to move. A mistake card shows the move they played in
// that game and asks for a better one; a puzzle card asks for the best move. The server checks
// the answer (the engine's move, or any within 0.04 winning chances of it) and reschedules the
// card with FSRS; the page shows the verdict, the engine's move as an arrow, and when the card
// comes back.

import { Chessground } from "@lichess-org/chessground";
import type { Api } from "@lichess-org/chessground/api";
import type { Key } from "@lichess-org/chessground/types";
import { chessgroundDests } from "chessops/compat";
import { makeUci } from "chessops/util";
import { api, ApiError } from "../lib/api";
import { $, arrow, lastMove, position, squareOf } from "../lib/board";
import { choosePromotion, isPromotion } from "../lib/promotion";

interface MoveRef {
  uci: string;
  san: string;
}

interface Card {
  id: string;
  kind: "mistake" | "puzzle";
  fen: string;
  turn: "white" | "black";
  game: { id: string; ply: number; url: string };
  played: MoveRef | null;
  judgment: string | null;
  reviews: number;
}

interface Due {
  now: number;
  due: number;
  total: number;
  cards: Card[];
}

interface Answered {
  correct: boolean;
  loss: number | null;
  answer: MoveRef;
  best: MoveRef | null;
  due: number;
}

// How far the server's clock is from this browser's (the server says when cards are due).
let skew = 0;

function when(due: number): string {
  const seconds = due - (Date.now() / 1000 + skew);
  if (seconds < 3600) return `in ${Math.max(1, Math.round(seconds / 60))} min`;
  if (seconds < 86400 * 1.5) return `in ${Math.round(seconds / 3600)} h`;
  return `in ${Math.round(seconds / 86400)} days`;
}

class Review {
  readonly root = $("review");
  readonly player = this.root.dataset.player ?? "";
  cg: Api = Chessground($("review-board"), {
    coordinates: true,
    movable: { free: false, showDests: true, events: { after: (o, d) => this.moved(o, d) } },
    premovable: { enabled: false },
    animation: { enabled: true, duration: 200 },
    highlight: { lastMove: true, check: true },
    drawable: { enabled: true },
  });
  cards: Card[] = [];
  card: Card | null = null;
  left = 0;
  right = 0;
  wrong = 0;

  say(text: string, kind = ""): void {
    const f = $("review-feedback");
    f.textContent = text;
    f.className = `feedback ${kind}`;
  }

  count(): void {
    $("review-count").textContent = `${this.left} due · ${this.right} right · ${this.wrong} wrong`;
  }

  async load(): Promise<void> {
    try {
      const due = await api<Due>("GET", `/api/training/${encodeURIComponent(this.player)}/due?limit=50`);
      skew = due.now - Date.now() / 1000;
      this.cards = due.cards;
      this.left = due.due;
      this.count();
      if (!due.cards.length) {
        this.root.dataset.state = "empty";
        $("review-question").textContent = due.total
          ? `Nothing due now: all ${due.total} cards are scheduled for later.`
          : "No cards yet: they are made from the mistakes of your analysed games.";
        $("review-next").hidden = true;
        return;
      }
      this.show(this.cards.shift()!);
    } catch (e) {
      $("review-question").textContent = e instanceof ApiError ? e.message : String(e);
    }
  }

  show(card: Card): void {
    this.card = card;
    const pos = position(card.fen);
    this.root.dataset.card = card.id;
    this.root.dataset.state = "ask";
    this.cg.set({
      fen: card.fen,
      orientation: card.turn,
      turnColor: pos.turn,
      check: pos.isCheck(),
      lastMove: undefined,
      movable: { color: pos.turn, dests: chessgroundDests(pos) },
    });
    this.cg.setAutoShapes([]);
    const move = Math.ceil(card.game.ply / 2);
    const side = card.turn === "white" ? "White" : "Black";
    $("review-question").textContent =
      card.kind === "mistake"
        ? `${side} to move. In this game you played ${move}${card.turn === "white" ? "." : "…"} ${card.played?.san}, a ${card.judgment?.toLowerCase()}. Find a better move.`
        : `${side} to move: a puzzle from your game. Find the best move.`;
    $<HTMLAnchorElement>("review-source").href = card.game.url;
    $("review-after").hidden = true;
    $("review-next").hidden = true;
    this.say("");
  }

  moved(orig: Key, dest: Key): void {
    const card = this.card;
    if (!card || this.root.dataset.state !== "ask") return;
    const pos = position(card.fen);
    const from = squareOf(orig);
    const to = squareOf(dest);
    if (isPromotion(pos.board.get(from)?.role, to)) {
      choosePromotion($("promotion"), pos.turn, (role) => void this.answer(makeUci({ from, to, promotion: role })), () => this.show(card));
      return;
    }
    void this.answer(makeUci({ from, to }));
  }

  async answer(uci: string): Promise<void> {
    const card = this.card!;
    this.root.dataset.state = "checking";
    this.cg.set({ movable: { color: undefined, dests: new Map() } });
    this.say("Checking…");
    let result: Answered;
    try {
      result = await api<Answered>("POST", `/api/training/cards/${encodeURIComponent(card.id)}/answer`, { move: uci });
    } catch (e) {
      this.say(e instanceof ApiError ? e.message : String(e), "bad");
      this.show(card);
      return;
    }
    this.left = Math.max(0, this.left - 1);
    if (result.correct) this.right++;
    else this.wrong++;
    this.count();
    const best = result.best;
    if (best) this.cg.setAutoShapes([arrow(best.uci, result.correct ? "green" : "paleBlue")]);
    this.cg.set({ lastMove: lastMove(uci) });
    const verdict = result.correct
      ? `✓ ${result.answer.san} is right${best && best.uci !== result.answer.uci ? ` (the engine prefers ${best.san})` : ""}.`
      : `✗ ${result.answer.san} is not it: ${best?.san ?? "?"} was the move.`;
    this.say(`${verdict} Back ${when(result.due)}.`, result.correct ? "good" : "bad");
    this.root.dataset.state = result.correct ? "right" : "wrong";
    this.root.dataset.due = String(result.due);
    $("review-after").hidden = false;
    $("review-next").hidden = false;
  }

  async next(): Promise<void> {
    if (this.cards.length) this.show(this.cards.shift()!);
    else await this.load();
  }
}

if (document.getElementById("review")) {
  const review = new Review();
  $("review-next").onclick = () => void review.next();
  void review.load();
}
