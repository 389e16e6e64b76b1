// Evaluations as Lichess shows them.

// White's winning chances on [-1, 1]: lila ui/lib/src/ceval/winningChances.ts
// (cp clamped to ±1000; a mate in n counts as (21 - min(10, n)) × 100 centipawns).
const raw = (cp: number): number => 2 / (1 + Math.exp(-0.00368208 * cp)) - 1;

export function winningChances(cp: number | null, mate: number | null): number {
  if (mate !== null) {
    const signed = (21 - Math.min(10, Math.abs(mate))) * 100 * (mate > 0 ? 1 : -1);
    return raw(signed);
  }
  return raw(Math.min(1000, Math.max(-1000, cp ?? 0)));
}

// "+1.3", "-0.4", "0.0", "#3", "#-2" (White's side).
export function formatEval(cp: number | null, mate: number | null): string {
  if (mate !== null) return `#${mate}`;
  if (cp === null) return "";
  const pawns = cp / 100;
  return `${pawns > 0 ? "+" : ""}${pawns.toFixed(1)}`;
}

export function formatClock(cs: number): string {
  const s = Math.max(0, Math.round(cs / 100));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}
