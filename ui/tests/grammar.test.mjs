// The TextMate grammar (editors/kumeo.tmLanguage.json) tokenizes .kumeo as intended, with the real engine VS Code
// uses (vscode-textmate + Oniguruma), and every regex also compiles as a JavaScript RegExp (the web editor runs the
// same grammar). Run: `cd ui && npm test` (node --test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import vsctm from 'vscode-textmate';
import oniguruma from 'vscode-oniguruma';

const here = path.dirname(fileURLToPath(import.meta.url));
const grammarPath = path.resolve(here, '../../editors/kumeo.tmLanguage.json');
const require = createRequire(import.meta.url);

async function loadGrammar() {
  const wasm = readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm')).buffer;
  await oniguruma.loadWASM(wasm);
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scopeName) =>
      scopeName === 'source.kumeo' ? vsctm.parseRawGrammar(readFileSync(grammarPath, 'utf8'), grammarPath) : null,
  });
  return registry.loadGrammar('source.kumeo');
}

function tokenize(grammar, text) {
  let state = vsctm.INITIAL;
  const out = [];
  for (const line of text.split('\n')) {
    const result = grammar.tokenizeLine(line, state);
    for (const t of result.tokens) {
      out.push({ text: line.slice(t.startIndex, t.endIndex), scopes: t.scopes });
    }
    state = result.ruleStack;
  }
  return out;
}

function scopeOf(tokens, text) {
  const token = tokens.find((t) => t.text === text);
  assert.ok(token, `no token ${JSON.stringify(text)} in ${JSON.stringify(tokens.map((t) => t.text))}`);
  return token.scopes.join(' ');
}

const SAMPLE = `// a comment
workflow OrderReview {
  source: NATS("orders.submitted")
  /* block
     comment */
  agents: [
    RuleEngine(
      id: "score",
      input: validate.output,
      retry = 3,
      threshold: -1.5e3,
      enabled: true,
      prompt: """
        Amount {{amount}} is "large"
      """,
      rules: [{ when: "amount > 1000", set: { risk: "high" } }]
    )
  ]
}`;

test('the grammar file is valid JSON with the Kumeo scope', () => {
  const grammar = JSON.parse(readFileSync(grammarPath, 'utf8'));
  assert.equal(grammar.scopeName, 'source.kumeo');
  assert.deepEqual(grammar.fileTypes, ['kumeo']);
});

test('every regex of the grammar is also a JavaScript RegExp', () => {
  const grammar = JSON.parse(readFileSync(grammarPath, 'utf8'));
  const seen = [];
  const walk = (node) => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node && typeof node === 'object') {
      for (const key of ['match', 'begin', 'end']) if (typeof node[key] === 'string') seen.push(node[key]);
      Object.values(node).forEach(walk);
    }
  };
  walk(grammar.repository);
  assert.ok(seen.length > 10);
  for (const source of seen) assert.doesNotThrow(() => new RegExp(source, 'y'), source);
});

test('keywords, kinds, strings, comments, numbers and named arguments get their scopes', async () => {
  const grammar = await loadGrammar();
  const tokens = tokenize(grammar, SAMPLE);
  assert.match(scopeOf(tokens, '// a comment'), /comment\.line\.double-slash/);
  assert.match(scopeOf(tokens, 'workflow'), /keyword\.declaration/);
  assert.match(scopeOf(tokens, 'OrderReview'), /entity\.name\.type\.workflow/);
  assert.match(scopeOf(tokens, 'source'), /keyword\.other\.block/);
  assert.match(scopeOf(tokens, 'NATS'), /support\.class\.endpoint/);
  assert.match(scopeOf(tokens, 'orders.submitted'), /string\.quoted\.double/);
  assert.match(scopeOf(tokens, '     comment '), /comment\.block/);
  assert.match(scopeOf(tokens, 'RuleEngine'), /support\.class\.agent/);
  assert.match(scopeOf(tokens, 'id'), /variable\.parameter/);
  assert.match(scopeOf(tokens, 'retry'), /variable\.parameter/);
  assert.match(scopeOf(tokens, 'validate.output'), /variable\.other\.reference/);
  assert.match(scopeOf(tokens, '-1.5e3'), /constant\.numeric/);
  assert.match(scopeOf(tokens, 'true'), /constant\.language/);
  assert.match(scopeOf(tokens, '        Amount '), /string\.quoted\.triple/);
  assert.match(scopeOf(tokens, '{{amount}}'), /string\.quoted\.triple.*meta\.template/);
  assert.match(scopeOf(tokens, ' is "large"'), /string\.quoted\.triple/);  // a quote inside stays in the string
  assert.match(scopeOf(tokens, 'amount > 1000'), /string\.quoted\.double/);
});

test('every example .kumeo file tokenizes without leaving a string or comment open', async () => {
  const grammar = await loadGrammar();
  const root = path.resolve(here, '../..');
  const files = readdirSync(path.join(root, 'examples'), { recursive: true })
    .filter((f) => String(f).endsWith('.kumeo'))
    .map((f) => path.join('examples', String(f)));
  assert.ok(files.length >= 2, 'the examples are where they should be');
  for (const file of files) {
    let state = vsctm.INITIAL;
    for (const line of readFileSync(path.join(root, file), 'utf8').split('\n')) {
      state = grammar.tokenizeLine(line, state).ruleStack;
    }
    assert.equal(state.depth, 1, `${file}: a string or comment is still open at the end`);
  }
});
