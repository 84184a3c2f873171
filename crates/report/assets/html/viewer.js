/*
 * adni-relevance: the glue between a report page and NiiVue (vendored beside this file as
 * niivue.umd.js). NiiVue draws everything; this file only loads the volumes and wires the
 * controls.
 *
 * A page holds one or more <div class="nv-viewer" data-base="..."> elements, each with a
 * <script type="application/json" class="nv-index"> (written by the `report` crate) naming the
 * anatomy file and one data file per method and group. Pages opened from file:// cannot fetch()
 * their neighbours, but they can load scripts: every data file is a script that calls
 * ADNI_VIEWER_DATA(key, {...}) with its volumes as base64 NIfTI (gzip) bytes.
 *
 * Volumes, in NiiVue's order: the template (grey), the atlas labels (hidden unless "atlas" is
 * ticked) and the selected mean relevance map (overlay). All share the model grid and carry its
 * affine, so NiiVue places them in world (mm) coordinates.
 */
(function () {
  'use strict';

  var registry = {};
  window.ADNI_VIEWER_DATA = function (key, value) {
    registry[key] = value;
  };

  var loading = {};
  function loadData(base, file, key) {
    if (registry[key]) return Promise.resolve(registry[key]);
    if (loading[key]) return loading[key];
    loading[key] = new Promise(function (resolve, reject) {
      var s = document.createElement('script');
      s.src = base + file;
      s.onload = function () {
        if (registry[key]) resolve(registry[key]);
        else reject(new Error(base + file + ' did not register ' + key));
      };
      s.onerror = function () {
        delete loading[key];
        reject(new Error('cannot load ' + base + file));
      };
      document.head.appendChild(s);
    });
    return loading[key];
  }

  // Distinct colours for the atlas regions (golden-angle hues), 0 = background, transparent.
  function labelColormap(names) {
    var cm = { R: [], G: [], B: [], A: [], I: [], labels: [] };
    for (var i = 0; i < names.length; i++) {
      var h = (i * 137.508) % 360;
      var rgb = hslToRgb(h / 360, 0.65, 0.55);
      cm.R.push(rgb[0]);
      cm.G.push(rgb[1]);
      cm.B.push(rgb[2]);
      cm.A.push(i === 0 ? 0 : 255);
      cm.I.push(i);
      cm.labels.push(names[i]);
    }
    return cm;
  }

  function hslToRgb(h, s, l) {
    function f(n) {
      var k = (n + h * 12) % 12;
      var a = s * Math.min(l, 1 - l);
      return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
    }
    return [f(0), f(8), f(4)];
  }

  function fmt(x) {
    if (!isFinite(x)) return String(x);
    if (x === 0) return '0';
    var a = Math.abs(x);
    return a >= 1e-3 && a < 1e4 ? x.toPrecision(4) : x.toExponential(3);
  }

  function fmtMm(x) {
    return (Math.round(x * 10) / 10).toFixed(1);
  }

  function q(root, sel) {
    return root.querySelector(sel);
  }

  async function mount(root) {
    var index = JSON.parse(q(root, 'script.nv-index').textContent);
    var base = root.getAttribute('data-base') || '';
    var useHash = root.hasAttribute('data-hash');
    var ui = {
      canvas: q(root, 'canvas'),
      method: q(root, 'select.nv-method'),
      group: q(root, 'select.nv-group'),
      cmap: q(root, 'select.nv-cmap'),
      threshold: q(root, 'input.nv-threshold'),
      opacity: q(root, 'input.nv-opacity'),
      thresholdText: q(root, '.nv-threshold-value'),
      atlas: q(root, 'input.nv-atlas'),
      info: q(root, '.nv-info'),
      status: q(root, '.nv-status'),
      full: q(root, 'a.nv-full'),
      scale: q(root, '.nv-scale'),
      scaleBar: q(root, '.nv-scale-bar'),
      scaleMin: q(root, '.nv-scale-min'),
      scaleMax: q(root, '.nv-scale-max')
    };
    var status = function (text) {
      ui.status.textContent = text;
    };

    // selectors: methods in the index's order, groups of the chosen method
    var methods = [];
    index.maps.forEach(function (m) {
      if (methods.indexOf(m.method) < 0) methods.push(m.method);
    });
    methods.forEach(function (m) {
      ui.method.add(new Option(m, m));
    });
    index.colormaps.forEach(function (c) {
      ui.cmap.add(new Option(c, c));
    });
    ui.cmap.value = index.colormaps[0];
    function groupsOf(method) {
      return index.maps.filter(function (m) { return m.method === method; }).map(function (m) { return m.group; });
    }
    function fillGroups(method, wanted) {
      var groups = groupsOf(method);
      ui.group.innerHTML = '';
      groups.forEach(function (g) {
        ui.group.add(new Option(g, g));
      });
      ui.group.value = groups.indexOf(wanted) >= 0 ? wanted : groups.indexOf('AD') >= 0 ? 'AD' : groups[0];
    }

    var NV = window.niivue;
    var nv = new NV.Niivue({
      backColor: [0, 0, 0, 1],
      show3Dcrosshair: true,
      crosshairColor: [0.25, 0.85, 1, 0.9],
      crosshairWidth: 0.6,
      crosshairWidthUnit: 'percent',
      // NiiVue's colour bar prints 6 decimals, too few for relevance (often 1e-4 to 1e-8): the
      // page draws its own scale below the canvas instead
      isColorbar: false,
      dragAndDropEnabled: false,
      multiplanarShowRender: NV.SHOW_RENDER.ALWAYS,
      multiplanarLayout: NV.MULTIPLANAR_TYPE.GRID,
      isOrientationTextVisible: true,
      logLevel: 'error'
    });
    await nv.attachToCanvas(ui.canvas);
    nv.setSliceType(nv.sliceTypeMultiplanar);

    status('loading the template…');
    var anatomy = await loadData(base, index.anatomy, 'anatomy');
    root.nvRegions = anatomy.regions.slice(1); // for scripts and tests: the atlas's names
    var template = await NV.NVImage.loadFromBase64({
      base64: anatomy.template,
      name: 'template.nii.gz',
      colormap: 'gray',
      cal_min: 0,
      cal_max: anatomy.template_display_max,
      colorbarVisible: false
    });
    nv.addVolume(template);
    var labels = null;
    if (anatomy.labels) {
      labels = await NV.NVImage.loadFromBase64({
        base64: anatomy.labels,
        name: 'atlas.nii.gz',
        opacity: 0,
        colorbarVisible: false
      });
      labels.setColormapLabel(labelColormap(anatomy.regions));
      nv.addVolume(labels);
    } else {
      ui.atlas.disabled = true;
    }
    var atlasName = anatomy.atlas || 'atlas';

    var current = null; // { entry, volume }
    var request = 0;

    function thresholdValue(entry) {
      return (Number(ui.threshold.value) / 1000) * entry.max;
    }
    function showThreshold(entry) {
      var t = thresholdValue(entry);
      ui.thresholdText.textContent =
        fmt(t) + (entry.display_max > 0 ? ' (' + Math.round((100 * t) / entry.display_max) + ' % of the 99.9th percentile)' : '');
    }
    function applyThreshold() {
      if (!current || !current.volume) return;
      var e = current.entry;
      var t = thresholdValue(e);
      current.volume.cal_min = t;
      current.volume.cal_max = Math.max(e.display_max, t + e.max / 1000);
      showThreshold(e);
      showScale();
      nv.updateGLVolume();
    }

    // the overlay's colour scale, in the map's units: threshold to full colour
    function showScale() {
      var v = current && current.volume;
      ui.scale.hidden = !v;
      if (!v) return;
      var lut = NV.cmapper.colormap(ui.cmap.value);
      var stops = [];
      for (var k = 0; k <= 16; k++) {
        var i = 4 * Math.round((k * 255) / 16);
        stops.push('rgb(' + lut[i] + ',' + lut[i + 1] + ',' + lut[i + 2] + ') ' + (100 * k) / 16 + '%');
      }
      ui.scaleBar.style.background = 'linear-gradient(to right, ' + stops.join(', ') + ')';
      ui.scaleMin.textContent = fmt(v.cal_min);
      ui.scaleMax.textContent = fmt(v.cal_max) + (v.cal_max < current.entry.max ? ' and above' : '');
    }

    async function show(method, group) {
      var entry = index.maps.find(function (m) { return m.method === method && m.group === group; });
      if (!entry) return;
      var mine = ++request;
      status('loading ' + entry.method + ' · ' + entry.group + '…');
      var data = await loadData(base, entry.file, entry.key);
      var volume = null;
      if (entry.max > 0) {
        volume = await NV.NVImage.loadFromBase64({
          base64: data.map,
          name: entry.method + ' ' + entry.group + '.nii.gz',
          colormap: ui.cmap.value,
          opacity: Number(ui.opacity.value) / 100,
          colormapNegative: entry.min < 0 ? 'winter' : '',
          cal_min: entry.display_max * index.default_threshold,
          cal_max: entry.display_max,
          colorbarVisible: true
        });
      }
      if (mine !== request) return; // a later choice won
      if (current && current.volume) nv.removeVolume(current.volume);
      current = { entry: entry, volume: volume };
      if (volume) nv.addVolume(volume);
      ui.threshold.value = String(Math.round((1000 * index.default_threshold * entry.display_max) / (entry.max || 1)));
      applyThreshold();
      showThreshold(entry);
      showScale();
      if (ui.full) ui.full.href = base + 'index.html#' + encodeURIComponent(entry.method) + '/' + encodeURIComponent(entry.group);
      if (useHash) history.replaceState(null, '', '#' + encodeURIComponent(entry.method) + '/' + encodeURIComponent(entry.group));
      root.setAttribute('data-map', entry.key);
      status(
        entry.max > 0
          ? entry.method + ' · ' + entry.group + ': mean of ' + (entry.scans != null ? entry.scans + ' ' : '') + 'scan(s); values in steps of ' + fmt(entry.max / entry.levels)
          : entry.method + ' · ' + entry.group + ': the map is zero everywhere (nothing to overlay)'
      );
      nv.createOnLocationChange();
    }

    nv.onLocationChange = function (d) {
      var iLab = labels ? nv.volumes.indexOf(labels) : -1;
      var iMap = current && current.volume ? nv.volumes.indexOf(current.volume) : -1;
      var label = iLab >= 0 ? Math.round(d.values[iLab].value) : 0;
      var region = !labels ? 'no atlas' : label > 0 && label < anatomy.regions.length ? anatomy.regions[label] : 'outside the atlas regions';
      var value = iMap >= 0 ? d.values[iMap].value : 0;
      var vox = d.values[0].vox;
      root.setAttribute('data-region', region);
      ui.info.innerHTML = '';
      [
        ['x, y, z', fmtMm(d.mm[0]) + ', ' + fmtMm(d.mm[1]) + ', ' + fmtMm(d.mm[2]) + ' mm'],
        ['voxel', '[' + vox.map(function (v) { return Math.round(v); }).join(', ') + ']'],
        ['relevance', current ? fmt(value) + ' (' + current.entry.method + ' · ' + current.entry.group + ')' : '–'],
        [atlasName + ' region', region]
      ].forEach(function (kv) {
        var dt = document.createElement('dt');
        dt.textContent = kv[0];
        var dd = document.createElement('dd');
        dd.textContent = kv[1];
        if (kv[0].endsWith('region')) dd.className = 'nv-region';
        ui.info.appendChild(dt);
        ui.info.appendChild(dd);
      });
    };

    ui.method.addEventListener('change', function () {
      fillGroups(ui.method.value, ui.group.value);
      show(ui.method.value, ui.group.value).catch(fail);
    });
    ui.group.addEventListener('change', function () {
      show(ui.method.value, ui.group.value).catch(fail);
    });
    ui.cmap.addEventListener('change', function () {
      if (current && current.volume) {
        current.volume.colormap = ui.cmap.value;
        showScale();
        nv.updateGLVolume();
      }
    });
    ui.threshold.addEventListener('input', applyThreshold);
    ui.opacity.addEventListener('input', function () {
      if (current && current.volume) nv.setOpacity(nv.volumes.indexOf(current.volume), Number(ui.opacity.value) / 100);
    });
    ui.atlas.addEventListener('change', function () {
      if (labels) nv.setOpacity(nv.volumes.indexOf(labels), ui.atlas.checked ? 0.45 : 0);
    });

    function fail(e) {
      status('viewer error: ' + e.message);
      console.error(e);
    }

    var first = index.maps.find(function (m) { return m.group === 'AD'; }) || index.maps[0];
    var wanted = [first.method, first.group];
    if (useHash && location.hash.length > 1) {
      var parts = location.hash.slice(1).split('/').map(decodeURIComponent);
      if (index.maps.some(function (m) { return m.method === parts[0] && m.group === parts[1]; })) wanted = parts;
    }
    ui.method.value = wanted[0];
    fillGroups(wanted[0], wanted[1]);
    await show(ui.method.value, ui.group.value);
    root.setAttribute('data-ready', 'true');
  }

  function start() {
    document.querySelectorAll('.nv-viewer').forEach(function (root) {
      mount(root).catch(function (e) {
        var s = root.querySelector('.nv-status');
        if (s) s.textContent = 'viewer error: ' + e.message;
        console.error(e);
      });
    });
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
