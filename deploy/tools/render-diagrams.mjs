// Renders docs/diagrams/*.dot to SVG with Graphviz compiled to WebAssembly (@viz-js/viz,
// pinned in package-lock.json): the same bytes on every machine, no system fonts or
// Graphviz package involved.
//
//   node deploy/tools/render-diagrams.mjs --write   regenerate the committed SVGs
//   node deploy/tools/render-diagrams.mjs --check   fail when a committed SVG differs from its
//                                                   source's rendering (comments, such as the
//                                                   generator's version line, are ignored)
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { instance } from '@viz-js/viz';

const mode = process.argv[2];
if (mode !== '--write' && mode !== '--check') {
  console.error('usage: render-diagrams.mjs --write | --check');
  process.exit(2);
}
const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'diagrams');
const normalize = (svg) => svg.replace(/<!--[\s\S]*?-->/g, '').replace(/[ \t]+$/gm, '').replace(/\n{2,}/g, '\n').trim();

const viz = await instance();
const sources = readdirSync(dir).filter((f) => f.endsWith('.dot')).sort();
if (sources.length === 0) {
  console.error(`no .dot source in ${dir}`);
  process.exit(1);
}
let failed = 0;
for (const source of sources) {
  const svgPath = join(dir, source.replace(/\.dot$/, '.svg'));
  const result = viz.render(readFileSync(join(dir, source), 'utf8'), { format: 'svg' });
  if (result.status !== 'success') {
    console.error(`FAIL ${source}: ${result.errors.map((e) => e.message).join('; ')}`);
    failed++;
    continue;
  }
  const warnings = result.errors.filter((e) => e.level === 'warning');
  for (const w of warnings) console.error(`warning ${source}: ${w.message}`);
  if (mode === '--write') {
    writeFileSync(svgPath, result.output);
    console.log(`wrote ${svgPath}`);
  } else if (!existsSync(svgPath)) {
    console.error(`FAIL ${source}: ${svgPath} is not committed (run with --write)`);
    failed++;
  } else if (normalize(readFileSync(svgPath, 'utf8')) !== normalize(result.output)) {
    console.error(`FAIL ${source}: the committed SVG is not its rendering (run with --write and commit)`);
    failed++;
  } else {
    console.log(`ok  ${source} -> ${svgPath.split('/').slice(-3).join('/')} (Graphviz ${viz.graphvizVersion})`);
  }
}
process.exit(failed ? 1 : 0);
