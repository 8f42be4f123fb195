// The page's shared state: who is signed in, the open file and its text (shared by the code and visual editors),
// and the diagnostics of that text.
import { api, withFile } from './api.js';

export const app = $state({
  auth: null, // GET /api/auth
  me: null, // GET /api/me
  error: null,
  view: 'graph',
  files: [],
  file: null,
  nats: '',
  text: '',
  savedText: '',
  diagnostics: [],
  model: null, // the visual editor's model of `text`
  kinds: [],
  selected: null, // {workflow, agent} for the inspector
  notice: null,
});

export function notify(text, kind = 'info') {
  app.notice = { text, kind, at: Date.now() };
  setTimeout(() => {
    if (app.notice && Date.now() - app.notice.at >= 3900) app.notice = null;
  }, 4000);
}

export async function loadFile(name) {
  const data = await api(withFile('/api/file', name));
  app.file = data.file;
  app.text = data.text;
  app.savedText = data.text;
  app.diagnostics = data.diagnostics;
}

let modelSeq = 0;
/** Refresh the visual editor's model of the current text (latest request wins). */
export async function refreshModel() {
  const seq = ++modelSeq;
  const data = await api('/api/model', { method: 'POST', body: { text: app.text, file: app.file } });
  if (seq === modelSeq) {
    app.model = data;
    app.diagnostics = data.diagnostics;
  }
}

/** Apply visual-editor edits through the Spec; the new text replaces the shared text. */
export async function edit(edits) {
  const data = await api('/api/edit', { method: 'POST', body: { text: app.text, file: app.file, edits } });
  modelSeq++;
  app.text = data.text;
  app.model = data;
  app.diagnostics = data.diagnostics;
  return data;
}

export async function save(force = false) {
  const data = await api('/api/file', { method: 'PUT', body: { file: app.file, text: app.text, force } });
  app.savedText = app.text;
  app.diagnostics = data.diagnostics;
  return data;
}
