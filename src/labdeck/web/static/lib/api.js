// The one way pages talk to the server: the public JSON APIs, the same ones the CLI uses.
// Changes carry the CSRF token (from the labdeck_csrf cookie) that cookie-signed requests need.
// A 401 sends the browser to the sign-in page; any other error becomes an ApiError whose
// message is the server's own explanation.

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)labdeck_csrf=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function signIn() {
  const next = location.pathname + location.search;
  location.assign(`/auth/login?next=${encodeURIComponent(next)}`);
}

function errorMessage(status, body) {
  if (body && typeof body === "object") {
    if (body.message) return body.message;
    if (body.error) return typeof body.error === "string" ? body.error : JSON.stringify(body.error);
    if (body.detail) return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  }
  return `The server answered ${status}.`;
}

export async function request(method, url, { json, body, headers = {}, signal } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers }, signal };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRF-Token"] = csrfToken();
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(url, init);
  if (response.status === 401) {
    signIn();
    throw new ApiError(401, "Your session has ended; signing in again.");
  }
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, errorMessage(response.status, data), data);
  return data;
}

const query = (params) => {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null) continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(key, item);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
};

/** labdeck's own API, /api/v1/... */
export const v1 = {
  get: (path, params) => request("GET", `/api/v1${path}${query(params)}`),
  post: (path, json) => request("POST", `/api/v1${path}`, { json }),
  put: (path, json) => request("PUT", `/api/v1${path}`, { json }),
  patch: (path, json) => request("PATCH", `/api/v1${path}`, { json }),
  delete: (path, params) => request("DELETE", `/api/v1${path}${query(params)}`),
};

/** MLflow's REST API, /api/2.0/mlflow/... */
export const mlflow = {
  get: (path, params) => request("GET", `/api/2.0/mlflow${path}${query(params)}`),
  post: (path, json) => request("POST", `/api/2.0/mlflow${path}`, { json }),
  patch: (path, json) => request("PATCH", `/api/2.0/mlflow${path}`, { json }),
  delete: (path, json) => request("DELETE", `/api/2.0/mlflow${path}`, { json }),
};

export { query };
