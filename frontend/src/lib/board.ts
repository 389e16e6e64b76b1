// Shared board helpers for the pages: a view-only chessground, squares and arrows.

import { Chessground } from "@lichess-org/chessground";
import type { Api } from "@lichess-org/chessground/api";
import type { DrawShape } from "@lichess-org/chessground/draw";
import type { Key } from "@lichess-org/chessground/types";
import { Chess } from "chessops/chess";
import { parseFen } from "chessops/fen";
import { parseSquare } from "chessops/util";

export const START_FEN = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1";

export function viewBoard(el: HTMLElement, orientation: "white" | "black"): Api {
  return Chessground(el, {
    coordinates: true,
    viewOnly: true,
    orientation,
    animation: { enabled: true, duration: 200 },
    highlight: { lastMove: true, check: true },
  });
}

export const lastMove = (uci: string | null | undefined): Key[] | undefined =>
  uci ? [uci.slice(0, 2) as Key, uci.slice(2, 4) as Key] : undefined;

export const arrow = (uci: string, brush = "paleBlue"): DrawShape => ({
  orig: uci.slice(0, 2) as Key,
  dest: uci.slice(2, 4) as Key,
  brush,
});

export function turnOf(fen: string): "white" | "black" {
  return fen.split(" ")[1] === "b" ? "black" : "white";
}


// The position of a FEN (trusted: it comes from the server, which checked it).
export function position(fen: string): Chess {
  return Chess.fromSetup(parseFen(fen).unwrap()).unwrap();
}

// chessground's square name as chessops's square number.
export const squareOf = (key: Key): number => parseSquare(key)!;

export const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
