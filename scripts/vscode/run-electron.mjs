// The same suite under desktop VS Code through @vscode/test-electron, for machines that can
// download it (it caches VS Code in .vscode-test/ too). These offline machines cannot: there,
// scripts/vscode/run-suite.mjs runs the suite in code-server instead.
// usage: node scripts/vscode/run-electron.mjs [version]   (default: stable)
import { runTests } from '@vscode/test-electron';
import { join } from 'node:path';
import { ROOT } from './host.mjs';

try {
  await runTests({
    version: process.argv[2] ?? 'stable',
    extensionDevelopmentPath: ROOT,
    extensionTestsPath: join(ROOT, 'out/test/vscode/index'),
    launchArgs: [ROOT, '--disable-extensions', '--disable-workspace-trust'],
  });
} catch (err) {
  console.error(`vscode (electron): ${err instanceof Error ? err.message : err}`);
  process.exit(1);
}
