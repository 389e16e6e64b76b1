// The promotion choice over a board (a pawn on the last rank): queen, knight, rook, bishop.

import type { Role } from "chessops/types";

export const isPromotion = (role: Role | undefined, to: number): boolean =>
  role === "pawn" && (to >> 3 === 0 || to >> 3 === 7);

export function choosePromotion(
  box: HTMLElement,
  color: "white" | "black",
  then: (role: Role) => void,
  cancelled: () => void,
): void {
  box.replaceChildren();
  for (const role of ["queen", "knight", "rook", "bishop"] as Role[]) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `promote ${role}`;
    b.title = role;
    b.dataset.role = role;
    const p = document.createElement("piece");
    p.className = `${role} ${color}`;
    b.append(p);
    b.addEventListener("click", () => {
      box.hidden = true;
      then(role);
    });
    box.append(b);
  }
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "promote cancel";
  cancel.textContent = "×";
  cancel.addEventListener("click", () => {
    box.hidden = true;
    cancelled();
  });
  box.append(cancel);
  box.hidden = false;
}
