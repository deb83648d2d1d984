/**
 * Text for a terminal from data the CLI did not write (issue 12 item 6): keys, values, tags and node names read
 * from a data directory or another node may hold escape sequences (ESC [ … rewrites the screen, OSC 8 forges
 * links, CSI 0x9B does the same in one byte) or bidirectional controls (Trojan Source: U+202E shows text in
 * another order than it is). Every such character is shown as a visible JSON-style escape (`\u001b`, `\u202e`);
 * in JSON output the result is the same JSON with those characters escaped. Line feeds and tabs are kept (the
 * CLI's own tables and JSON use them).
 */

// C0 controls but tab and line feed, DEL, C1 controls, and the bidirectional and invisible direction marks.
const unsafe = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `text` with every control and bidi character replaced by its `\uXXXX` escape. */
export function terminalSafe(text: string): string {
  return text.replace(unsafe, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
