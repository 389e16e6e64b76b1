// A guess-the-move match (templates/match.html): the round's position on a chessground board
// turned to the side to move; the answer is played on the board (drag or click), then a reason
// is given; the page follows the match over Server-Sent Events instead of polling it.

import { Chessground } from "@lichess-org/chessground";
import type { Api } from "@lichess-org/chessground/api";
import type { Key } from "@lichess-org/chessground/types";
import { chessgroundDests } from "chessops/compat";
import { makeSan } from "chessops/san";
import { makeUci } from "chessops/util";
import { api, ApiError } from "../lib/api";
import { $, arrow, position, squareOf } from "../lib/board";
import { choosePromotion, isPromotion } from "../lib/promotion";

interface Answer {
  letter: string;
  san: string;
  reason: string;
  who: string | null;
  engine_points: number;
  votes: number;
  mine: boolean;
}

interface Round {
  number: number;
  status: string;
  fen: string;
  deadline: number | null;
  i_answered: boolean;
  i_voted: boolean;
  my_letter: string | null;
  answered: number;
  voted: number;
  letters: string[];
  answers: Answer[];
  best: string | null;
}

interface Match {
  status: string;
  rounds_total: number;
  rounds: Round[];
  standings: { who: string; score: number; rounds: number; per_round: number }[];
  ranking: string[];
}


class MatchPage {
  readonly root = $("match");
  readonly id = this.root.dataset.matchId!;
  cg: Api = Chessground($("m-board"), {
    coordinates: true,
    movable: { free: false, showDests: true, events: { after: (o, d) => this.moved(o, d) } },
    premovable: { enabled: false },
    drawable: { enabled: true },
  });
  round: Round | null = null;
  shownFen = "";
  chosen: string | null = null; // the answer played on the board (UCI)
  match: Match | null = null;

  moved(orig: Key, dest: Key): void {
    const r = this.round;
    if (!r) return;
    const pos = position(r.fen);
    const from = squareOf(orig);
    const to = squareOf(dest);
    const pick = (uci: string, san: string): void => {
      this.chosen = uci;
      $<HTMLInputElement>("m-move").value = uci;
      $("m-chosen").textContent = `Your move: ${san}`;
      this.cg.set({ fen: r.fen, lastMove: [orig, dest] });
      this.cg.setAutoShapes([arrow(uci, "green")]);
      this.syncMovable();
      $<HTMLInputElement>("m-reason").focus();
    };
    if (isPromotion(pos.board.get(from)?.role, to)) {
      choosePromotion(
        $("promotion"),
        pos.turn,
        (role) => pick(makeUci({ from, to, promotion: role }), makeSan(pos, { from, to, promotion: role })),
        () => this.cg.set({ fen: r.fen }),
      );
      return;
    }
    pick(makeUci({ from, to }), makeSan(pos, { from, to }));
  }

  syncMovable(): void {
    const r = this.round;
    const open = r !== null && r.status === "responding" && !r.i_answered;
    if (!r) return;
    const pos = position(r.fen);
    this.cg.set({ movable: { color: open ? pos.turn : undefined, dests: open ? chessgroundDests(pos) : new Map() } });
  }

  async send(path: string, body: unknown): Promise<void> {
    $("m-error").textContent = "";
    try {
      await api("POST", path, body);
      await this.refresh();
    } catch (e) {
      $("m-error").textContent = e instanceof ApiError ? e.message : String(e);
    }
  }

  render(m: Match): void {
    this.match = m;
    const r = m.rounds[m.rounds.length - 1] ?? null;
    $("m-round").textContent = r ? `round ${r.number} of ${m.rounds_total}` : "";
    $("m-status").textContent = m.status === "completed" ? "over" : r ? r.status : "starting";
    this.root.dataset.round = String(r ? r.number : 0);
    this.root.dataset.phase = r ? r.status : "starting";
    if (r && r.fen !== this.shownFen) {
      this.shownFen = r.fen;
      this.root.dataset.fen = r.fen;
      this.chosen = null;
      $("m-chosen").textContent = "Play your move on the board.";
      $<HTMLInputElement>("m-move").value = "";
      const pos = position(r.fen);
      this.cg.set({ fen: r.fen, orientation: pos.turn, turnColor: pos.turn, lastMove: undefined, check: pos.isCheck() });
      this.cg.setAutoShapes([]);
    }
    this.round = r;
    this.syncMovable();
    const standings = $("m-standings");
    standings.replaceChildren(
      row(["", "points", "rounds", "per round"], "th"),
      ...m.standings.map((s) => row([s.who, String(s.score), String(s.rounds), String(s.per_round)])),
    );
    if (m.status === "completed") {
      const final = $("m-final");
      final.hidden = false;
      final.textContent = `Match over. Ranking: ${m.ranking.map((who, i) => `${i + 1}. ${who}`).join(", ")}`;
    }
    this.tick();
    const form = $("m-answer");
    form.hidden = !(r && r.status === "responding" && !r.i_answered);
    const phase = $("m-phase");
    const answers = $("m-answers");
    answers.replaceChildren();
    if (!r) return;
    const toMove = r.fen.split(" ")[1] === "w" ? "White" : "Black";
    if (r.status === "starting") phase.textContent = "Waiting for the robots…";
    else if (r.status === "responding")
      phase.textContent = r.i_answered
        ? `You answered as ${r.my_letter}. Waiting for the others (${r.answered} of ${r.letters.length}).`
        : `${toMove} to move: your move, and why? You are ${r.my_letter} this round.`;
    else if (r.status === "voting")
      phase.textContent = r.i_voted ? `Voted. Waiting for the others (${r.voted} votes).` : "Vote for the best answer other than yours.";
    else phase.textContent = `Round ${r.number} over.`;
    const last = [...m.rounds].reverse().find((x) => x.status === "completed");
    if (last) {
      $("m-results").hidden = false;
      $("m-results").dataset.round = String(last.number);
      $("m-results-title").textContent = `Round ${last.number} results — the engine's move: ${last.best ?? "?"}`;
      $("m-results-list").replaceChildren(
        ...last.answers.map((a) => {
          const li = document.createElement("li");
          li.className = a.mine ? "mine" : "";
          li.textContent = `${a.letter} ${a.who}: ${a.san} — ${a.engine_points} for the move + ${a.votes} votes`;
          return li;
        }),
      );
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
        button.type = "button";
        button.textContent = `Vote ${a.letter}`;
        button.addEventListener("click", () => void this.send(`/api/matches/${this.id}/rounds/${r.number}/vote`, { identity: a.letter }));
        li.append(button);
      }
      answers.append(li);
    }
  }

  tick(): void {
    const r = this.round;
    const left = r?.deadline ? Math.max(0, Math.round(r.deadline - Date.now() / 1000)) : null;
    $("m-clock").textContent = r && left !== null && r.status !== "completed" ? `${left} s left` : "";
  }

  async refresh(): Promise<void> {
    this.render(await api<Match>("GET", `/api/matches/${encodeURIComponent(this.id)}`));
  }

  start(): void {
    $("m-answer").addEventListener("submit", (e) => {
      e.preventDefault();
      const r = this.round;
      if (!r) return;
      const move = this.chosen ?? $<HTMLInputElement>("m-move").value.trim();
      if (!move) {
        $("m-error").textContent = "play your move on the board first";
        return;
      }
      const reason = $<HTMLInputElement>("m-reason").value.trim();
      void this.send(`/api/matches/${this.id}/rounds/${r.number}/response`, { move, reason }).then(() => {
        if (!$("m-error").textContent) $<HTMLInputElement>("m-reason").value = "";
      });
    });
    // An event can arrive before the view that it changed is stored (the view is written by
    // another consumer of the same topic): read the match at once and once more a moment later.
    const source = new EventSource(`/api/matches/${encodeURIComponent(this.id)}/events`);
    source.addEventListener("changed", () => {
      void this.refresh();
      setTimeout(() => void this.refresh(), 1000);
    });
    setInterval(() => this.tick(), 1000);
    // A safety net, not the way the page follows the match: a slow read while it goes on
    // (deadlines pass on the server's clock; an event may be missed across a reconnect).
    setInterval(() => {
      if (this.match?.status !== "completed") void this.refresh();
    }, 5000);
  }
}

function row(cells: string[], tag = "td"): HTMLTableRowElement {
  const tr = document.createElement("tr");
  for (const text of cells) {
    const cell = document.createElement(tag);
    cell.textContent = text;
    tr.append(cell);
  }
  return tr;
}

if (document.getElementById("match")) new MatchPage().start();
