/**
 * The panel's HTML: a strict Content Security Policy (nothing but this extension's own script,
 * with a nonce, and its own styles), no remote content. Pure, so the browser tests load the
 * exact page the extension serves.
 */
export interface PanelHtmlOptions {
  /** The webview's `cspSource` (where local resources may come from). */
  cspSource: string;
  /** A fresh random nonce per page. */
  nonce: string;
  /** URIs, as the webview sees them, of the bundled script and stylesheet. */
  scriptUri: string;
  styleUri: string;
}

const escapeAttr = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function panelHtml(o: PanelHtmlOptions): string {
  const csp = [
    "default-src 'none'",
    `script-src 'nonce-${o.nonce}'`,
    `style-src ${o.cspSource}`,
    `img-src ${o.cspSource} data:`,
    `font-src ${o.cspSource}`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${escapeAttr(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${escapeAttr(o.styleUri)}">
<title>Poolscope</title>
</head>
<body>
<div id="app" role="application" aria-label="Poolscope concurrency panel"></div>
<script nonce="${escapeAttr(o.nonce)}" src="${escapeAttr(o.scriptUri)}"></script>
</body>
</html>`;
}
