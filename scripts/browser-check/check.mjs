// Opens a run's REPORT.html from file:// in headless Debian Chromium (driven by playwright-core)
// and checks what a researcher relies on:
//   1. the page loads with no console error, no page error and no request off the machine;
//   2. the NiiVue viewer's canvas draws: its pixels vary, and the relevance overlay is there;
//   3. a click on a voxel shows the mm coordinates and an atlas region name;
//   4. a table sorts (ascending, then descending) on a click on its header;
//      and a numeric column with "n/a" or NaN cells sorts as numbers, those cells last;
//   5. every method's AD map shows in the viewer, and every map's data file is there;
//   6. every viewer page REPORT.html links exists, and one opens full-window without errors.
// Screenshots go to <run>/report/screenshots/. Usage:
//   node check.mjs results/reproduce-quick/REPORT.html [--chromium /usr/bin/chromium]
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : fallback;
};
const executablePath = option('--chromium', process.env.CHROMIUM || '/usr/bin/chromium');
const reportPath = resolve(args[0] || 'results/reproduce-quick/REPORT.html');
if (!existsSync(reportPath)) {
  console.error(`browser check: ${reportPath} does not exist (run \`cargo xtask reproduce-paper --quick\` first)`);
  process.exit(2);
}
if (!existsSync(executablePath)) {
  console.error(`browser check: no Chromium at ${executablePath} (apt-get install chromium)`);
  process.exit(2);
}
const runDir = dirname(reportPath);
const shots = join(runDir, 'report', 'screenshots');
mkdirSync(shots, { recursive: true });

const started = Date.now();
const results = [];
const check = async (name, fn) => {
  const t = Date.now();
  try {
    const detail = await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name}${detail ? ` (${detail})` : ''} [${((Date.now() - t) / 1000).toFixed(1)} s]`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name}: ${e.message}`);
  }
};
const assert = (cond, message) => {
  if (!cond) throw new Error(message);
};

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--no-sandbox',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-quic',
    // WebGL2 without a GPU: SwiftShader, which Chromium only enables for WebGL when asked
    '--use-angle=swiftshader',
    '--enable-unsafe-swiftshader',
    '--ignore-gpu-blocklist',
  ],
});

/** A page that records console errors, page errors and every request that leaves file://. */
async function openPage(url) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    if (r.url().startsWith('file:')) problems.push(`failed to load ${r.url()}: ${r.failure()?.errorText}`);
  });
  await context.route(/^(?!file:|data:|blob:)/, (route) => {
    problems.push(`network request ${route.request().url()}`);
    return route.abort();
  });
  await page.goto(url, { waitUntil: 'load', timeout: 60_000 });
  return { page, context, problems };
}

/** Pixel statistics of a PNG screenshot, decoded by the page itself (no image library needed). */
async function pixelStats(page, png) {
  return page.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width;
    c.height = img.height;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let n = 0, sum = 0, sum2 = 0, nonBlack = 0, warm = 0;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 4) {
      const [r, gg, b] = [d[i], d[i + 1], d[i + 2]];
      const y = 0.299 * r + 0.587 * gg + 0.114 * b;
      n++;
      sum += y;
      sum2 += y * y;
      if (y > 8) nonBlack++;
      // overlay colours (warm/hot/red maps): red well above blue, unlike the grey template
      if (r > 120 && r - b > 60) warm++;
      if (colours.size < 5000) colours.add((r << 16) | (gg << 8) | b);
    }
    const mean = sum / n;
    return { width: c.width, height: c.height, sd: Math.sqrt(sum2 / n - mean * mean), nonBlack: nonBlack / n, warm: warm / n, colours: colours.size };
  }, png.toString('base64'));
}

const { page, context, problems } = await openPage(pathToFileURL(reportPath).href);
const viewer = page.locator('.nv-viewer').first();

await check('page loads without console errors or network requests', async () => {
  await page.waitForSelector('.nv-viewer[data-ready="true"]', { timeout: 60_000 });
  await page.waitForTimeout(500);
  assert(problems.length === 0, problems.join('; '));
  const h2 = await page.locator('h2').count();
  const tables = await page.locator('table').count();
  const figures = await page.locator('img').count();
  assert(h2 >= 5 && tables >= 5 && figures >= 5, `only ${h2} sections, ${tables} tables, ${figures} figures`);
  await page.screenshot({ path: join(shots, 'report-top.png') });
  return `${h2} sections, ${tables} tables, ${figures} figures`;
});

await check('viewer canvas draws the template with the overlay', async () => {
  await viewer.scrollIntoViewIfNeeded();
  await page.waitForTimeout(300);
  const png = await page.locator('.nv-viewer canvas').first().screenshot();
  const s = await pixelStats(page, png);
  await viewer.screenshot({ path: join(shots, 'viewer.png') });
  assert(s.sd > 10 && s.colours > 50, `canvas looks blank: sd ${s.sd.toFixed(1)}, ${s.colours} colours`);
  assert(s.nonBlack > 0.05, `canvas nearly black: ${(100 * s.nonBlack).toFixed(1)} % non-black pixels`);
  assert(s.warm > 0.0005, `no overlay colour on the canvas (${(100 * s.warm).toFixed(2)} % warm pixels)`);
  const map = await viewer.getAttribute('data-map');
  return `${s.width}×${s.height} px, luminance sd ${s.sd.toFixed(1)}, ${s.colours} colours, ${(100 * s.nonBlack).toFixed(0)} % non-black, ${(100 * s.warm).toFixed(1)} % overlay; map ${map}`;
});

await check('a click on a voxel shows its mm coordinates and atlas region', async () => {
  const canvas = page.locator('.nv-viewer canvas').first();
  const box = await canvas.boundingBox();
  const regions = await viewer.evaluate((el) => el.nvRegions || null);
  const before = await page.locator('.nv-info').innerText();
  // NiiVue's 2×2 grid: three slice tiles and the 3-D render; try points inside the slice tiles
  // until one lands in an atlas region (the phantom's regions do not fill the brain).
  const tried = [];
  for (const [fx, fy] of [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.2, 0.3], [0.3, 0.2], [0.7, 0.3], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8], [0.22, 0.22], [0.28, 0.28], [0.72, 0.22], [0.78, 0.28]]) {
    await page.mouse.click(box.x + fx * box.width, box.y + fy * box.height);
    await page.waitForTimeout(150);
    const region = (await page.locator('.nv-info .nv-region').innerText().catch(() => '')).trim();
    tried.push(region);
    if (region && !region.startsWith('outside')) {
      const info = await page.locator('.nv-info').innerText();
      assert(info !== before, 'the info panel did not change');
      assert(/-?\d+\.\d, -?\d+\.\d, -?\d+\.\d mm/.test(info), `no mm coordinates in ${JSON.stringify(info)}`);
      assert(!regions || regions.includes(region), `${region} is not one of the atlas's regions`);
      await viewer.screenshot({ path: join(shots, 'viewer-click.png') });
      return `${info.replace(/\s+/g, ' ').trim()}`;
    }
  }
  throw new Error(`no click showed a region: ${tried.join(' | ')}`);
});

await check('a table sorts on a click on its header', async () => {
  // the first table with a numeric column of at least three different values
  const target = await page.evaluate(() => {
    const num = (t) => {
      const m = /^\s*\**([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)/.exec(t);
      return m ? parseFloat(m[1]) : NaN;
    };
    const tables = [...document.querySelectorAll('main table')];
    for (let ti = 0; ti < tables.length; ti++) {
      const t = tables[ti];
      if (!t.tHead || !t.tBodies[0] || t.closest('.nv-viewer') || t.closest('details:not([open])')) continue;
      const rows = [...t.tBodies[0].rows];
      for (let c = 0; c < t.tHead.rows[0].cells.length; c++) {
        const v = rows.map((r) => num(r.cells[c]?.textContent ?? ''));
        if (v.every((x) => !isNaN(x)) && new Set(v).size >= 3) {
          const sorted = [...v].sort((a, b) => a - b);
          if (v.some((x, i) => x !== sorted[i])) return { table: ti, column: c };
        }
      }
    }
    return null;
  });
  assert(target, 'no table with an unsorted numeric column');
  const table = page.locator('main table').nth(target.table);
  const header = table.locator('thead th').nth(target.column);
  const values = () =>
    table.evaluate((t, c) => [...t.tBodies[0].rows].map((r) => parseFloat(/[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?/.exec(r.cells[c].textContent)[0])), target.column);
  await header.scrollIntoViewIfNeeded();
  await header.click();
  const up = await values();
  assert(up.every((x, i) => i === 0 || up[i - 1] <= x), `not ascending after one click: ${up}`);
  assert((await header.getAttribute('aria-sort')) === 'ascending', 'header not marked ascending');
  await header.click();
  const down = await values();
  assert(down.every((x, i) => i === 0 || down[i - 1] >= x), `not descending after two clicks: ${down}`);
  await table.screenshot({ path: join(shots, 'table-sorted.png') });
  return `table ${target.table + 1}, column "${(await header.innerText()).trim()}", ${up.length} rows`;
});

await check('a numeric column with "n/a" or NaN cells sorts as numbers, those cells last', async () => {
  // every table column whose valued cells are numbers (at least three different) and that has
  // cells without a value: a click must sort the numbers as numbers, not as text
  const columns = await page.evaluate(() => {
    const num = (t) => {
      const m = /^\s*\**([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)/.exec(t);
      return m ? parseFloat(m[1]) : NaN;
    };
    const none = (t) => /^\**\s*(n\/a|nan|–|—|-)?\**\s*(\[|\(|$)/i.test(t.trim());
    const found = [];
    const tables = [...document.querySelectorAll('main table')];
    tables.forEach((t, ti) => {
      if (!t.tHead || !t.tBodies[0] || t.closest('.nv-viewer')) return;
      const rows = [...t.tBodies[0].rows];
      for (let c = 0; c < t.tHead.rows[0].cells.length; c++) {
        const cells = rows.map((r) => (r.cells[c]?.textContent ?? '').trim());
        const valued = cells.filter((x) => isNaN(num(x)) ? !none(x) : true);
        const numbers = cells.map(num).filter((x) => !isNaN(x));
        const missing = cells.length - numbers.length;
        if (valued.length === numbers.length && missing > 0 && new Set(numbers).size >= 3) found.push({ table: ti, column: c });
      }
    });
    return found;
  });
  if (columns.length === 0) return 'no such column on this page (nothing to check)';
  for (const target of columns) {
    const ok = await page.evaluate(({ table, column }) => {
      const t = [...document.querySelectorAll('main table')][table];
      const details = t.closest('details');
      if (details) details.open = true;
      const th = t.tHead.rows[0].cells[column];
      th.click();
      const cells = [...t.tBodies[0].rows].map((r) => r.cells[column].textContent.trim());
      const num = (x) => {
        const m = /^\s*\**([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)/.exec(x);
        return m ? parseFloat(m[1]) : NaN;
      };
      const v = cells.map(num);
      const firstMissing = v.findIndex((x) => isNaN(x));
      const numbers = firstMissing < 0 ? v : v.slice(0, firstMissing);
      const ascending = numbers.every((x, i) => i === 0 || numbers[i - 1] <= x);
      const missingLast = firstMissing < 0 || v.slice(firstMissing).every((x) => isNaN(x));
      return ascending && missingLast ? null : cells.join(' | ');
    }, target);
    assert(ok === null, `table ${target.table + 1}, column ${target.column + 1} not sorted as numbers: ${ok}`);
  }
  return `${columns.length} column(s)`;
});

await check("every method's AD map shows in the viewer; every map's data file is there", async () => {
  const index = JSON.parse(await page.locator('.nv-viewer script.nv-index').first().textContent());
  const base = await viewer.getAttribute('data-base');
  const missing = index.maps.filter((m) => {
    const file = join(runDir, base, m.file);
    return !existsSync(file) || !readFileSync(file, 'utf8').startsWith(`ADNI_VIEWER_DATA(${JSON.stringify(m.key)}, `);
  });
  assert(missing.length === 0, `bad or missing data files: ${missing.map((m) => m.file).join(', ')}`);
  const before = problems.length;
  const ad = index.maps.filter((m) => m.group === 'AD');
  for (const m of ad) {
    await page.selectOption('.nv-viewer select.nv-method', m.method);
    await page.selectOption('.nv-viewer select.nv-group', m.group);
    await page
      .waitForFunction((k) => document.querySelector('.nv-viewer').getAttribute('data-map') === k, m.key, { timeout: 20_000 })
      .catch((e) => {
        throw new Error(`${m.key} did not show: ${problems.slice(before).join('; ') || e.message}`);
      });
  }
  assert(problems.length === before, problems.slice(before).join('; '));
  const status = await page.locator('.nv-viewer .nv-status').innerText();
  return `${ad.length} AD maps shown, ${index.maps.length} data files; last: ${status}`;
});

await check('viewer pages linked from REPORT.html exist and open', async () => {
  const links = await page.$$eval('a[href*="viewer/index.html"]', (as) => [...new Set(as.map((a) => a.getAttribute('href')))]);
  assert(links.length >= 1, 'REPORT.html links no viewer page');
  const missing = links.filter((h) => !existsSync(join(runDir, decodeURIComponent(h.split('#')[0]))));
  assert(missing.length === 0, `missing: ${missing.join(', ')}`);
  const last = links[links.length - 1];
  const other = await openPage(pathToFileURL(join(runDir, last.split('#')[0])).href + (last.includes('#') ? `#${last.split('#')[1]}` : ''));
  await other.page.waitForSelector('.nv-viewer[data-ready="true"]', { timeout: 60_000 });
  await other.page.waitForTimeout(300);
  await other.page.screenshot({ path: join(shots, 'viewer-page.png') });
  assert(other.problems.length === 0, other.problems.join('; '));
  const map = await other.page.locator('.nv-viewer').getAttribute('data-map');
  await other.context.close();
  return `${links.length} links; opened ${last} → ${map}`;
});

await context.close();
await browser.close();
const failed = results.filter((r) => !r.ok).length;
writeFileSync(join(shots, 'check.json'), JSON.stringify({ report: reportPath, results, seconds: (Date.now() - started) / 1000 }, null, 2));
console.log(`screenshots: ${shots}`);
console.log(`browser check: ${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
