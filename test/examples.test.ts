/** The examples in examples/ run as documented, on processes and on threads. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const examples = join(__dirname, '..', '..', 'examples');

function run(name: string, threads: boolean): string {
  const result = spawnSync(
    process.execPath,
    [join(examples, `${name}.mjs`), ...(threads ? ['--threads'] : [])],
    {
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  assert.equal(result.status, 0, `${name} failed:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

for (const threads of [false, true]) {
  describe(`examples on ${threads ? 'threads' : 'processes'}`, () => {
    it('apply-async-callbacks: callbacks for successes, errorCallback with the whole error for failures', () => {
      const out = run('apply-async-callbacks', threads);
      assert.match(out, new RegExp(`pool of 2 ${threads ? 'threads' : 'processes'}`));
      assert.match(out, /callback: sqrt\(81\) = 9/);
      assert.match(
        out,
        /errorCallback: RangeError E_NEGATIVE: cannot take the square root of -4 detail=\{"input":-4,"hint":"pass a number >= 0"\}/,
      );
      assert.match(out, /succeeded: 3 of 5/);
    });

    it('get-timeout: TimeoutError while the task runs on, then its value', () => {
      const out = run('get-timeout', threads);
      assert.match(out, /get\(100\): TimeoutError: .*still running/);
      assert.match(out, /get\(\) = 144/);
    });

    it('worker-killed: the task is rejected with the exit code or signal and the pool refills', () => {
      const out = run('worker-killed', threads);
      if (!threads)
        assert.match(
          out,
          /was killed by SIGKILL while running task #\d+ longJob\(\)\n {2}exitCode=-9 signal=SIGKILL/,
        );
      assert.match(out, /exited with code 3 while running task #\d+ exitWorker\(\)/);
      assert.match(out, /square\(7\) = 49/);
    });

    it('failing-tasks: every failure reaches its errorCallback; the shared counter and exit code', () => {
      const out = run('failing-tasks', threads);
      assert.match(out, /process exporter ended with exit code 2/);
      assert.match(out, /records parsed by workers: 3/);
      assert.match(out, /4 tasks failed:/);
      assert.match(out, /RangeError: cannot take the square root of -16/);
      assert.match(out, /TypeError: record "\{id:2\}" is not valid JSON/);
      assert.match(out, /WorkerExitError: worker \d+ \((pid|thread) \d+\) exited with code 3/);
    });

    it('process-exit-code: 0, 1 with the error, n, and -9', () => {
      const out = run('process-exit-code', threads);
      assert.match(out, /works: exitCode=0 signal=null/);
      assert.match(
        out,
        /throws: exitCode=1 signal=null error=Error\(E_GAVE_UP\): the target gave up/,
      );
      assert.match(out, /exits: exitCode=7/);
      assert.match(out, /hangs: exitCode=-9 signal=SIGKILL/);
    });

    it('manager: a dict, a list and a locked Value shared by the workers through proxies', () => {
      const out = run('manager', threads);
      assert.match(
        out,
        new RegExp(`${threads ? 'threads' : 'processes'}: apple=5 banana=6 fig=3 kiwi=4`),
      );
      assert.match(out, /letters: 18\nlog: 4 entries/);
    });
  });
}
