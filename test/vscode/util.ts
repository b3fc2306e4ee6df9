// What the suites inside VS Code share: polling for a condition, and whether a pid lives.

/** Polls `probe` every 50 ms until it returns something truthy; fails after `ms`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false,
  ms = 60_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
