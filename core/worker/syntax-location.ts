/**
 * Node 20 reports a syntax error in an ES module without its file or line. When a worker module
 * fails to load with a SyntaxError, esbuild parses the module and the local files it imports,
 * and says where the first syntax error is.
 */
import type { Message } from 'esbuild';
import { resolve } from 'node:path';

export interface SyntaxLocation {
  file: string;
  line: number;
  column: number;
  lineText: string;
}

export async function locateSyntaxError(file: string): Promise<SyntaxLocation | undefined> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const esbuild = require('esbuild') as typeof import('esbuild');
  try {
    await esbuild.build({
      entryPoints: [file],
      bundle: true,
      write: false,
      packages: 'external',
      platform: 'node',
      format: 'esm',
      logLevel: 'silent',
    });
  } catch (err) {
    const first = (err as { errors?: Message[] }).errors?.find((m) => m.location);
    if (first?.location) {
      const { file: where, line, column, lineText } = first.location;
      return { file: resolve(where), line, column: column + 1, lineText };
    }
  }
  return undefined;
}
