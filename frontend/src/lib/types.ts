// The API's answers as the pages read them (see /openapi.json for the whole of each).

export interface GameDetail {
  id: string;
  white: string | null;
  black: string | null;
  result: string;
  initial_fen: string | null;
  moves_uci: string[];
  moves_san: string[];
  clocks_cs: number[] | null;
  clock: { initial: number | null; increment: number | null } | null;
  opening: { eco: string | null; name: string | null } | null;
}

export interface MoveEval {
  ply: number;
  cp: number | null;
  mate: number | null;
  best: string | null;
  line: string | null;
}

export interface AnalysisView {
  game_id: string;
  status: string;
  phase: string | null;
  progress: number;
  engine: string | null;
  nodes: { quick: number | null; deep: number | null } | null;
  degraded?: boolean | null; // the deep pass ran at the batch budget: the engines were busy
  start: { cp: number | null; mate: number | null } | null;
  results_phase: string | null;
  evals: MoveEval[] | null;
}

export interface ExploreView {
  fen: string;
  nodes: number;
  searched_nodes: number;
  depth: number | null;
  cached: boolean;
  engine: string;
  cp: number | null;
  mate: number | null;
  best: string | null;
  line_uci: string[];
  line_san: string[];
  game_over: boolean;
  outcome: "checkmate" | "draw" | null;
}
