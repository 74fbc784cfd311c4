/**
 * Text that came from a server (command output, error messages holding it) is shown to the
 * operator through these, so a server cannot move the cursor, clear or retitle the terminal, or
 * make a line read backwards: every character a terminal acts on is written as a visible escape.
 *
 *   ESC → \e   CR → \r   other C0 controls and DEL → \xHH   C1 controls (U+0080–U+009F), the bidi
 *   embeddings, overrides, isolates and marks (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
 *   U+061C) and U+FFFD (a byte that was not UTF-8, replaced when the output was captured) → \uHHHH
 *
 * Newlines and tabs are kept in multi-line text (command output) and escaped as \n and \t in
 * one-line text (table cells, progress lines). Everything else, other languages included, is
 * left as it is. The journal keeps the original text; `logs --raw` prints it unchanged.
 */

// eslint-disable-next-line no-control-regex
const ACTIVE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufffd]/g;
// eslint-disable-next-line no-control-regex
const ACTIVE_NOT_NL_TAB = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufffd]/g;

function escapeOne(ch: string): string {
  const code = ch.charCodeAt(0);
  if (ch === '\x1b') return '\\e';
  if (ch === '\r') return '\\r';
  if (ch === '\n') return '\\n';
  if (ch === '\t') return '\\t';
  if (code < 0x80) return `\\x${code.toString(16).padStart(2, '0')}`;
  return `\\u${code.toString(16).padStart(4, '0')}`;
}

/** Multi-line remote text (command output) with every terminal control made visible; \n and \t kept. */
export function visibleText(text: string): string {
  return text.replace(ACTIVE_NOT_NL_TAB, escapeOne);
}

/** One-line remote text (an error in a table cell or a progress line): \n and \t escaped too. */
export function visibleLine(text: string): string {
  return text.replace(ACTIVE, escapeOne);
}

/** Characters JSON.stringify leaves raw that a terminal acts on, escaped as JSON \u escapes. */
const JSON_ACTIVE = /[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** JSON text safe on a terminal: the same document, with DEL, C1 and bidi controls as \u escapes. */
export function terminalSafeJson(json: string): string {
  return json.replace(JSON_ACTIVE, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
