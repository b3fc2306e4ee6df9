/**
 * Module hooks for worker modules and for scripts run by the CLI. They let a module be TypeScript: `.ts`/`.mts`/`.cts` files are transpiled
 * with esbuild as they load (types are stripped, not checked), with inline source maps so stack
 * traces point at the TypeScript lines. Relative imports written the TypeScript way
 * (`./helper`, `./helper.js` for `helper.ts`) resolve too. Registered only in workers whose
 * module is TypeScript.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

type Esbuild = typeof import('esbuild');
const esbuild = createRequire(import.meta.url)('esbuild') as Esbuild;
const TS = /\.(?:ts|mts|cts)$/;

interface ResolveContext {
  parentURL?: string;
  conditions: string[];
}
type NextResolve = (specifier: string, context: ResolveContext) => Promise<{ url: string }>;
interface LoadResult {
  format: string;
  source?: string | ArrayBuffer | Uint8Array;
  shortCircuit?: boolean;
}
type NextLoad = (url: string, context: { format?: string }) => Promise<LoadResult>;

function fromTypeScript(parentURL: string | undefined): boolean {
  return (
    parentURL !== undefined && parentURL.startsWith('file:') && TS.test(new URL(parentURL).pathname)
  );
}

/** This package's root: dist/core/worker/ts-hooks.mjs is three levels down. */
const PACKAGE_ROOT = new URL('../../../', import.meta.url);

/**
 * `poolscope` for a script whose project does not install it (run by the CLI or the editor):
 * this copy. A project that installs its own keeps it.
 */
function bundledPoolscope(specifier: string): string | undefined {
  if (specifier !== 'poolscope' && !specifier.startsWith('poolscope/')) return undefined;
  const sub = specifier === 'poolscope' ? 'index' : specifier.slice('poolscope/'.length);
  if (!/^[a-z-]+$/.test(sub)) return undefined;
  return new URL(`dist/core/${sub}.js`, PACKAGE_ROOT).href;
}

export async function resolve(
  specifier: string,
  context: ResolveContext,
  next: NextResolve,
): Promise<{ url: string }> {
  try {
    return await next(specifier, context);
  } catch (err) {
    const bundled = bundledPoolscope(specifier);
    if (bundled && (err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') {
      return { url: bundled, shortCircuit: true } as { url: string };
    }
    const relative = specifier.startsWith('./') || specifier.startsWith('../');
    if (
      (err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND' ||
      !relative ||
      !fromTypeScript(context.parentURL)
    ) {
      throw err;
    }
    const candidates = [
      specifier.replace(/\.(m|c)?js$/, '.$1ts'),
      `${specifier}.ts`,
      `${specifier}/index.ts`,
    ];
    for (const candidate of candidates) {
      if (candidate === specifier) continue;
      try {
        return await next(candidate, context);
      } catch {
        // try the next spelling
      }
    }
    throw err;
  }
}

export async function load(
  url: string,
  context: { format?: string },
  next: NextLoad,
): Promise<LoadResult> {
  if (!url.startsWith('file:') || !TS.test(new URL(url).pathname)) return next(url, context);
  const file = fileURLToPath(url);
  const source = await readFile(file, 'utf8');
  let code: string;
  try {
    ({ code } = await esbuild.transform(source, {
      loader: 'ts',
      format: 'esm',
      target: 'node20',
      sourcemap: 'inline',
      sourcefile: file,
    }));
  } catch (err) {
    // Say it the way Node says a JavaScript syntax error, with the place and the line.
    const first = (err as { errors?: import('esbuild').Message[] }).errors?.[0];
    const where = first?.location;
    if (!first || !where) throw err;
    throw new SyntaxError(
      `${first.text} at ${file}:${where.line}:${where.column + 1}\n    ${where.line} | ${where.lineText}`,
    );
  }
  return { format: 'module', source: code, shortCircuit: true };
}
