// Worker side of examples/manager.mjs: the proxies arrive as arguments and reconnect here.
export async function measure(word, lengths, log, letters) {
  await lengths.set(word, word.length);
  await log.append(`${word} (pid ${process.pid})`);
  // Read-modify-write under the Value's own lock: two awaited calls are not atomic otherwise.
  await letters.withLock(async () => letters.set((await letters.get()) + word.length));
}
