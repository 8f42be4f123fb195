// `.kumeo` highlighting for CodeMirror 6, driven by the TextMate grammar editors/kumeo.tmLanguage.json itself:
// its rules (match, begin/end, captures) are interpreted by a StreamLanguage, so VS Code and the web editor
// highlight from one definition. The grammar's regexes are written to be valid JavaScript too (a node test checks).
import { StreamLanguage } from '@codemirror/language';
import { HighlightStyle, syntaxHighlighting } from '@codemirror/language';
import { tags as t } from '@lezer/highlight';
import grammar from '../../../editors/kumeo.tmLanguage.json';

// Scope prefixes → token names (first match wins) and token names → highlight tags.
const SCOPES = [
  ['comment', 'comment'],
  ['constant.character.escape', 'escape'],
  ['meta.template', 'template'],
  ['string', 'string'],
  ['keyword.declaration', 'declaration'],
  ['keyword', 'keyword'],
  ['entity.name.type', 'typeName'],
  ['variable.parameter', 'propertyName'],
  ['constant.numeric', 'number'],
  ['constant.language', 'bool'],
  ['support.class.agent', 'className'],
  ['support.class.endpoint', 'namespace'],
  ['entity.name.function', 'function'],
  ['variable.other', 'variableName'],
  ['punctuation.section', 'bracket'],
  ['punctuation', 'punctuation'],
];
const TOKEN_TABLE = {
  comment: t.comment, escape: t.escape, template: t.special(t.string), string: t.string,
  declaration: t.definitionKeyword, keyword: t.keyword, typeName: t.typeName, propertyName: t.propertyName,
  number: t.number, bool: t.bool, className: t.className, namespace: t.namespace,
  function: t.function(t.variableName), variableName: t.variableName, bracket: t.bracket, punctuation: t.punctuation,
};

function tokenFor(scope) {
  if (!scope) return null;
  const last = scope.split(' ').pop();
  for (const [prefix, name] of SCOPES) if (last.startsWith(prefix)) return name;
  return null;
}

function compile(rule, repository, seen = new Set()) {
  if (rule.include) {
    const name = rule.include.replace(/^#/, '');
    if (seen.has(name)) return [];
    const next = new Set(seen).add(name);
    return compile(repository[name], repository, next);
  }
  if (rule.patterns && !rule.begin) return rule.patterns.flatMap((r) => compile(r, repository, seen));
  const out = { name: rule.name || null };
  if (rule.match) {
    out.match = new RegExp(rule.match, 'yd');
    out.captures = rule.captures || null;
  } else if (rule.begin) {
    out.begin = new RegExp(rule.begin, 'y');
    out.end = new RegExp(rule.end, 'y');
    out.inner = (rule.patterns || []).flatMap((r) => compile(r, repository, seen));
  }
  return [out];
}

const RULES = grammar.patterns.flatMap((r) => compile(r, grammar.repository));

function at(regex, stream) {
  regex.lastIndex = stream.pos;
  return regex.exec(stream.string);
}

// An end pattern that can match the empty end of a line (`"|$`: a plain string stops at the line's end).
function closeAtEndOfLine(rule, stream, state) {
  if (stream.eol() && at(rule.end, stream)) state.inside = null;
}

export const kumeoStreamLanguage = StreamLanguage.define({
  name: 'kumeo',
  startState: () => ({ inside: null, queue: [] }),
  copyState: (s) => ({ inside: s.inside, queue: s.queue.slice() }),
  token(stream, state) {
    if (state.queue.length) {
      const [end, name] = state.queue.shift();
      stream.pos = end;
      return name;
    }
    if (state.inside !== null) {
      const rule = RULES[state.inside];
      const name = tokenFor(rule.name);
      const end = at(rule.end, stream);
      if (end && end[0].length) {
        stream.pos += end[0].length;
        state.inside = null;
        return name;
      }
      let style = name;
      const inner = rule.inner.find((r) => r.match && at(r.match, stream)?.[0].length);
      if (inner) {
        stream.pos += at(inner.match, stream)[0].length;
        style = tokenFor(inner.name) || name;
      } else {
        stream.next();
      }
      closeAtEndOfLine(rule, stream, state);
      return style;
    }
    if (stream.eatSpace()) return null;
    for (let i = 0; i < RULES.length; i++) {
      const rule = RULES[i];
      if (rule.begin) {
        const m = at(rule.begin, stream);
        if (m) {
          stream.pos += m[0].length;
          state.inside = i;
          closeAtEndOfLine(rule, stream, state);
          return tokenFor(rule.name);
        }
        continue;
      }
      const m = at(rule.match, stream);
      if (!m || !m[0].length) continue;
      const start = stream.pos;
      const end = start + m[0].length;
      if (!rule.captures) {
        stream.pos = end;
        return tokenFor(rule.name);
      }
      // Captures: one token per captured group, the text between them unstyled.
      const segments = [];
      let cursor = start;
      for (let g = 1; g < m.length; g++) {
        const span = m.indices[g];
        if (!span || !rule.captures[g]) continue;
        if (span[0] > cursor) segments.push([span[0], null]);
        segments.push([span[1], tokenFor(rule.captures[g].name)]);
        cursor = span[1];
      }
      if (end > cursor) segments.push([end, null]);
      const [first, name] = segments.shift();
      state.queue = segments;
      stream.pos = first;
      return name;
    }
    stream.next();
    return null;
  },
  tokenTable: TOKEN_TABLE,
  languageData: { commentTokens: { line: '//', block: { open: '/*', close: '*/' } } },
});

export const kumeoHighlight = syntaxHighlighting(HighlightStyle.define([
  { tag: t.comment, color: '#6a737d', fontStyle: 'italic' },
  { tag: [t.string], color: '#0a7b3e' },
  { tag: [t.escape, t.special(t.string)], color: '#b35c00' },
  { tag: [t.definitionKeyword, t.keyword], color: '#8a2be2', fontWeight: 'bold' },
  { tag: t.typeName, color: '#005cc5', fontWeight: 'bold' },
  { tag: t.propertyName, color: '#9a3412' },
  { tag: [t.number, t.bool], color: '#1d4ed8' },
  { tag: t.className, color: '#0e7490', fontWeight: 'bold' },
  { tag: t.namespace, color: '#0369a1', fontWeight: 'bold' },
  { tag: t.function(t.variableName), color: '#0e7490' },
  { tag: t.variableName, color: '#334155' },
  { tag: [t.bracket, t.punctuation], color: '#64748b' },
]));
