// The dashboard API client: a bearer token on every request, and the two ways to get one.
//
// Local mode: `kumeo dashboard` prints http://127.0.0.1:PORT/#token=…; the token is moved from the URL fragment
// (never sent to a server) into sessionStorage. OIDC mode: authorization code flow with PKCE against the provider
// the server names in GET /api/auth; the access token is kept in sessionStorage for this tab only.

const KEY = 'kumeo.token';

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

/** Take a token handed over in the URL fragment (#token=…) and remove it from the address bar. */
export function adoptTokenFromUrl() {
  const params = new URLSearchParams(location.hash.slice(1));
  const value = params.get('token');
  if (value) {
    setToken(value);
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
  }
}

export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || `${response.status} ${response.statusText}`, data);
  }
  return data;
}

export function withFile(path, file) {
  if (!file) return path;
  return `${path}${path.includes('?') ? '&' : '?'}file=${encodeURIComponent(file)}`;
}

// -- OIDC (authorization code + PKCE) ---------------------------------------------------------------------------

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(n = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(n)));
}

export async function oidcSignIn(config) {
  const verifier = randomString(48);
  const state = randomString(16);
  const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  sessionStorage.setItem('kumeo.pkce', JSON.stringify({ verifier, state }));
  const redirect = location.origin + location.pathname;
  const url = new URL(config.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: config.client_id,
    redirect_uri: redirect,
    scope: config.scopes || 'openid',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
  }).toString();
  location.assign(url.toString());
}

/** Finish a sign-in redirect (?code=…&state=…): exchange the code for tokens. True when a token was obtained. */
export async function oidcCompleteSignIn(config) {
  const params = new URLSearchParams(location.search);
  const code = params.get('code');
  if (!code) return false;
  const saved = JSON.parse(sessionStorage.getItem('kumeo.pkce') || '{}');
  history.replaceState(null, '', location.pathname + location.hash);
  if (!saved.verifier || saved.state !== params.get('state')) throw new Error('the sign-in answer does not match this tab; sign in again');
  const response = await fetch(config.token_endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: location.origin + location.pathname,
      client_id: config.client_id,
      code_verifier: saved.verifier,
    }),
  });
  const data = await response.json();
  if (!response.ok || !data.access_token) throw new Error(data.error_description || data.error || 'sign-in failed');
  sessionStorage.removeItem('kumeo.pkce');
  setToken(data.access_token);
  return true;
}
