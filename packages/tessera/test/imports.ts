/**
 * What a package's published code imports: the bare specifiers of its source files, reduced to package names.
 * TypeScript's own pre-processor finds them (static imports, `import type`, `export … from`, dynamic
 * `import()`, `require()`); `require.resolve('pkg/…')` — how the server finds uPlot's files — is matched here.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { join, relative } from 'node:path';
import ts from 'typescript';

/** Folders of a package whose files are published and run: its sources and its committed bin shims. */
export const publishedSourceDirs = ['src', 'bin'] as const;

/** Files below `dir` ending in .ts or .js (declaration files excluded: they import nothing at run time). */
export function sourceFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(?:ts|js|mjs)$/.test(name) && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** The package a bare specifier names (`@scope/name/sub` → `@scope/name`), or null for relative paths and builtins. */
export function packageOf(specifier: string): string | null {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:') || isBuiltin(specifier)) return null;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/** The packages one file's text imports. */
export function importedPackages(text: string): Set<string> {
  const specifiers = ts.preProcessFile(text, true, true).importedFiles.map((file) => file.fileName);
  for (const match of text.matchAll(/\brequire\.resolve\(\s*['"]([^'"]+)['"]/g)) specifiers.push(match[1]!);
  const packages = new Set<string>();
  for (const specifier of specifiers) {
    const name = packageOf(specifier);
    if (name !== null) packages.add(name);
  }
  return packages;
}

/** For each package a package's published sources import, the files (relative to `root`) that import it. */
export function packageImports(packageDir: string, root: string): Map<string, string[]> {
  const imports = new Map<string, string[]>();
  for (const dir of publishedSourceDirs) {
    for (const file of sourceFiles(join(packageDir, dir))) {
      for (const name of importedPackages(readFileSync(file, 'utf8'))) {
        imports.set(name, [...(imports.get(name) ?? []), relative(root, file)]);
      }
    }
  }
  return imports;
}
