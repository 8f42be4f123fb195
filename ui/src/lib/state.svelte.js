// The page's shared state: who is signed in, the open file and its text (shared by the code and visual editors),
// and the diagnostics of that text.
import { api, withFile } from './api.js';

export const app = $state({
  auth: null, // GET /api/auth
  me: null, // GET /api/me
  error: null,
  view: 'graph',
  files: [],
  root: '',
  file: null,
  nats: '',
  text: '',
  savedText: '',
  diagnostics: [],
  model: null, // the visual editor's model of `text`
  kinds: [],
  selected: null, // {workflow, agent} for the inspector
  notice: null,
  picked: null, // {file, count, root}: the dashboard opened a directory and chose this file itself
});

/** Show one of the pages (and keep it in the address bar, so a reload comes back to it). */
export function go(view) {
  app.view = view;
  history.replaceState(null, '', `${location.pathname}${location.search}#view=${view}`);
}

export function notify(text, kind = 'info') {
  app.notice = { text, kind, at: Date.now() };
  setTimeout(() => {
    if (app.notice && Date.now() - app.notice.at >= 3900) app.notice = null;
  }, 4000);
}

/** Open a file: everything shown about the previous one (selection, model, an error notice) is dropped. */
export async function loadFile(name) {
  const data = await api(withFile('/api/file', name));
  app.file = data.file;
  app.text = data.text;
  app.savedText = data.text;
  app.diagnostics = data.diagnostics;
  modelSeq++; // a model still on its way is the previous file's
  app.model = null;
  app.selected = null;
  if (app.notice?.kind === 'error') app.notice = null;
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
