// The one way the pages talk to kibitz's JSON API: the signed-in token on every request,
// errors as ApiError carrying the server's {"error", "detail"}, and a 401 announced so that
// the header's sign-in box can open.

const TOKEN_KEY = "kibitz-token";

export const session = {
  token(): string {
    return localStorage.getItem(TOKEN_KEY) ?? "";
  },
  signIn(token: string): void {
    localStorage.setItem(TOKEN_KEY, token);
  },
  signOut(): void {
    localStorage.removeItem(TOKEN_KEY);
  },
};

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

export async function api<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = {};
  const bearer = token ?? session.token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let payload: BodyInit | undefined;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload });
  const data = (await res.json().catch(() => ({}))) as { error?: string; detail?: string };
  if (!res.ok) {
    if (res.status === 401 && token === undefined) document.dispatchEvent(new CustomEvent(UNAUTHORIZED));
    throw new ApiError(data.detail ?? `HTTP ${res.status}`, res.status, data.error ?? "error");
  }
  return data as T;
}
