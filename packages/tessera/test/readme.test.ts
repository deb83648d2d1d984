// Goal: the README's TypeScript snippets are code a user can paste: each compiles under `strict` against the
// published types of `tesseradb` (what `npm install tesseradb` gives), and any drift between the README and the
// API fails here with the README's line number.
// Method: extract every ```ts block of README.md into its own module (in node_modules/.cache, so that
// 'tesseradb' resolves to this repository's package and its built types) and run tsc --strict over them.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
t.setTimeout(180_000);

/** A fenced block of a Markdown text: its first line number (1-based, the line after the fence) and its code. */
export interface Snippet {
  readonly line: number;
  readonly code: string;
}

/** The ```ts and ```typescript blocks of a Markdown text. */
export function typeScriptSnippets(markdown: string): Snippet[] {
  const snippets: Snippet[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(?:ts|typescript)\s*$/.test(lines[i]!)) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !lines[end]!.startsWith('```')) end++;
    snippets.push({ line: start + 1, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return snippets;
}

t.test('the extractor finds fenced TypeScript blocks and their lines', async (t) => {
  t.same(typeScriptSnippets('# a\n```ts\nconst a = 1;\n```\ntext\n```sh\nls\n```\n```typescript\nlet b;\nlet c;\n```\n'), [
    { line: 3, code: 'const a = 1;' },
    { line: 10, code: 'let b;\nlet c;' },
  ]);
});

t.test('every TypeScript snippet of the README compiles under strict', async (t) => {
  const snippets = typeScriptSnippets(await readFile(join(root, 'README.md'), 'utf8'));
  t.ok(snippets.length >= 2, `the README has TypeScript snippets (${snippets.length})`);
  const dir = join(root, 'node_modules', '.cache', 'tessera-readme-snippets');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const files: string[] = [];
  for (const snippet of snippets) {
    const file = join(dir, `readme-line-${snippet.line}.ts`);
    // `export {}` makes each a module of its own (top-level await; no names shared between snippets).
    await writeFile(file, `${snippet.code}\nexport {};\n`);
    files.push(file);
  }
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const output = await run(
    process.execPath,
    [
      tsc,
      '--noEmit',
      '--strict',
      '--skipLibCheck',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
      '--typeRoots',
      join(root, 'node_modules', '@types'),
      '--types',
      'node',
      ...files,
    ],
    { cwd: dir },
  ).then(
    () => '',
    (error: { stdout?: string }) => error.stdout ?? String(error),
  );
  // Report errors at the README's own lines: readme-line-345.ts(3,5) is README.md line 347.
  const readable = output.replace(
    /readme-line-(\d+)\.ts\((\d+),(\d+)\)/g,
    (_all, start: string, line: string, column: string) => `README.md:${Number(start) + Number(line) - 1}:${column}`,
  );
  t.equal(readable, '', 'tsc --strict reports nothing');
});
