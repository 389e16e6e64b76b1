// The one way the pages talk to kibitz's JSON API. A signed-in browser carries its session
// cookie by itself; every write repeats the CSRF value (the `kibitz_csrf` cookie) in the
// X-CSRF-Token header. Errors arrive as ApiError with the server's {"error", "detail"}; a 401
// is announced so that the header can say why.

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}

export const UNAUTHORIZED = "kibitz:unauthorized";

export function cookie(name: string): string {
  for (const part of document.cookie.split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return value.join("=");
  }
  return "";
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = cookie("kibitz_csrf");
  let payload: BodyInit | undefined;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  const data = (await res.json().catch(() => ({}))) as { error?: string; detail?: string };
  if (!res.ok) {
    if (res.status === 401 && path !== "/api/session") document.dispatchEvent(new CustomEvent(UNAUTHORIZED));
    throw new ApiError(data.detail ?? `HTTP ${res.status}`, res.status, data.error ?? "error");
  }
  return data as T;
}

export interface SessionState {
  signed_in: boolean;
  token_required: boolean;
}
