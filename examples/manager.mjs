// The Manager: a dict, a list and a Value with its lock live in a server process; a pool's
// workers use them through proxies passed as task arguments. `--threads` runs the same on threads.
import { Manager, Pool, threads } from './backend.mjs';

const manager = await Manager.start();
try {
  const lengths = await manager.dict();
  const log = await manager.list();
  const letters = await manager.Value('i', 0);
  const pool = new Pool({
    module: new URL('./workers/manager-tasks.mjs', import.meta.url),
    size: 2,
  });
  const words = ['apple', 'kiwi', 'banana', 'fig'];
  await pool.starmap(
    'measure',
    words.map((word) => [word, lengths, log, letters]),
  );
  await pool.close();
  await pool.join();
  const sorted = [...(await lengths.entries())].sort(([a], [b]) => a.localeCompare(b));
  console.log(
    `${threads ? 'threads' : 'processes'}: ${sorted.map(([w, n]) => `${w}=${n}`).join(' ')}`,
  );
  console.log(`letters: ${await letters.get()}`);
  console.log(`log: ${await log.length()} entries`);
} finally {
  await manager.stop();
}
