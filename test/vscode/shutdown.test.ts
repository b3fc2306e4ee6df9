// Runs last (files load in name order): two runs live at once, one stopped, and the other left
// running on purpose. When the runner then closes VS Code, scripts/vscode/run-suite.mjs fails
// the suite if that script or any of its workers outlives the editor.
import * as assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { PoolscopeApi } from '../../extension/extension';
import type { RunSession } from '../../extension/run-session';

suite('Poolscope when VS Code closes', () => {
  test('two runs at once: Stop ends one, the other is left running for the editor to end', async () => {
    await vscode.extensions.getExtension<PoolscopeApi>('poolscope.poolscope')!.activate();
    const dir = mkdtempSync(join(tmpdir(), 'poolscope-shutdown-'));
    writeFileSync(join(dir, 'work.mjs'), 'export function forever() { for (;;) {} }\n');
    const script = join(dir, 'busy.mjs');
    writeFileSync(
      script,
      [
        "import { Pool } from 'poolscope';",
        "const pool = new Pool({ module: new URL('./work.mjs', import.meta.url), size: 1 });",
        "pool.applyAsync('forever');",
        'await new Promise(() => setInterval(() => {}, 1000));',
      ].join('\n'),
    );
    const start = (): Thenable<RunSession> =>
      vscode.commands.executeCommand<RunSession>(
        'poolscope.runCurrentFile',
        vscode.Uri.file(script),
      );
    const first = await start();
    const second = await start();
    assert.ok(first && second && first !== second);
    const busy = (s: RunSession): boolean =>
      [...(s.run?.pools.values() ?? [])].some((p) => p.counts.running === 1);
    for (let i = 0; i < 300 && !(busy(first) && busy(second)); i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.ok(busy(first) && busy(second), 'both runs have a busy worker');
    await first.stop();
    assert.equal(first.running, false);
    assert.equal(second.running, true, 'stopping one run leaves the other alone');
    // `second` stays running: closing the editor must end it (checked by the runner).
  });
});
