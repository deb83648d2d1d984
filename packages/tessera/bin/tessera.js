#!/usr/bin/env node
// The `tessera` command. Plain JavaScript, committed: npm links a package's bins at install time, before the
// TypeScript build exists; a bin pointing into dist/ would then be a dangling link, and `npx tessera` would
// look past it for a package named `tessera` (an unrelated one on the registry).
try {
  await import('@tessera/cli/bin');
} catch (error) {
  // Only the entry itself being absent is a missing build; anything else is the CLI's own failure.
  if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !String(error.message).includes('@tessera/cli')) throw error;
  process.stderr.write('tessera: the CLI is not built yet: run `npm run build` in the repository\n');
  process.exitCode = 1;
}
