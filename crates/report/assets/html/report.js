/*
 * adni-relevance, REPORT.html: every table of the page sorts by a click (or Enter) on its column
 * header, again for the other direction. Numbers sort as numbers, taking the leading number of a
 * cell such as "0.8123 [0.70, 0.91]" or "12 (6 patients)"; a column is numeric when every cell with a
 * value is. Cells without a value (empty, "n/a", "NaN …", "–") go last in both directions. A link to
 * a collapsed table (<details id="table-...">) opens it.
 */
(function () {
  'use strict';
  var NUMBER = /^\s*\**([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)/;
  var NO_VALUE = /^\**\s*(n\/a|nan|–|—|-)?\**\s*(\[|\(|$)/i;

  function key(cell) {
    var text = cell.textContent.trim();
    var m = NUMBER.exec(text);
    var missing = !m && NO_VALUE.test(text);
    return { num: m ? parseFloat(m[1]) : NaN, text: text, missing: missing };
  }

  function compare(a, b, numeric) {
    return numeric ? a.num - b.num : a.text.localeCompare(b.text, undefined, { numeric: true });
  }

  function sortBy(table, col, th) {
    var body = table.tBodies[0];
    if (!body) return;
    var rows = Array.prototype.slice.call(body.rows);
    var keys = rows.map(function (r) { return r.cells[col] ? key(r.cells[col]) : { num: NaN, text: '', missing: true }; });
    var filled = keys.filter(function (k) { return !k.missing; });
    var numeric = filled.length > 0 && filled.every(function (k) { return !isNaN(k.num); });
    var ascending = th.getAttribute('aria-sort') !== 'ascending';
    var order = rows.map(function (r, i) { return i; });
    order.sort(function (i, j) {
      // empty / NaN last in both directions; ties keep their order
      var ki = keys[i], kj = keys[j];
      var ei = ki.missing, ej = kj.missing;
      if (ei || ej) return ei === ej ? i - j : ei ? 1 : -1;
      var c = compare(ki, kj, numeric);
      return (ascending ? c : -c) || i - j;
    });
    order.forEach(function (i) { body.appendChild(rows[i]); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
  }

  function makeSortable(table) {
    if (!table.tHead || !table.tHead.rows.length) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.tabIndex = 0;
      th.title = 'sort by this column';
      th.classList.add('sortable');
      th.addEventListener('click', function () { sortBy(table, col, th); });
      th.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          sortBy(table, col, th);
        }
      });
    });
  }

  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var target = id && document.getElementById(id);
    if (target && target.tagName === 'DETAILS') {
      target.open = true;
      target.scrollIntoView();
    }
  }

  function start() {
    document.querySelectorAll('table').forEach(makeSortable);
    window.addEventListener('hashchange', openTarget);
    openTarget();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
