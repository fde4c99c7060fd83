// histo serve: one slide in OpenSeadragon with Histo's overlays drawn on a canvas above it.
// State in the URL hash, so a view can be shared or opened by a test:
// #layers=tissue:0.6,attention:0.5&zoom=full&x=..&y=..&select=x,y
(async function () {
  'use strict';
  const id = document.body.dataset.slide;
  const api = '/api/slides/' + encodeURIComponent(id);
  const info = await (await fetch(api)).json();
  const hash = new URLSearchParams(location.hash.slice(1));
  const wanted = new Map((hash.get('layers') || '').split(',').filter(Boolean).map(s => {
    const [name, opacity] = s.split(':');
    return [name, opacity === undefined ? 0.6 : Number(opacity)];
  }));
  const defaultOpacity = { tissue: 0.8, tiles: 0.5, heatmap: 0.5, cells: 0.8, geojson: 0.7 };

  const meta = document.getElementById('meta');
  meta.innerHTML = '';
  const facts = [['size', info.width + ' × ' + info.height + ' px'], ['mpp', info.mpp ? info.mpp.toFixed(3) + ' µm/px' : 'unknown'],
    ['objective', info.objectivePower ? info.objectivePower + '×' : null], ['vendor', info.vendor], ['levels', info.levels.length],
    ['label', info.label], ['predicted', info.predicted]];
  for (const [k, v] of facts) if (v !== null && v !== undefined) {
    const row = document.createElement('div');
    row.textContent = k + ': ' + v;
    meta.appendChild(row);
  }

  const viewer = OpenSeadragon({
    id: 'osd', prefixUrl: '/static/openseadragon/images/', tileSources: '/dz/' + encodeURIComponent(id) + '.dzi',
    showNavigator: true, navigatorPosition: 'TOP_RIGHT', maxZoomPixelRatio: 4, animationTime: 0.3, crossOriginPolicy: false,
  });
  window.histoViewer = viewer;

  const canvas = document.createElement('canvas');
  canvas.id = 'overlay';
  canvas.style.cssText = 'position:absolute;left:0;top:0;pointer-events:none';
  viewer.canvas.appendChild(canvas);
  const ctx = canvas.getContext('2d');

  // Layers: one per overlay, fetched when first switched on; each feature keeps its rings and bounding box in level-0 px.
  const layers = info.overlays.map(o => ({ name: o.name, kind: o.kind, on: wanted.has(o.name),
    opacity: wanted.get(o.name) ?? defaultOpacity[o.kind] ?? 0.6, features: null, drawn: 0 }));
  const list = document.getElementById('layers');
  for (const layer of layers) {
    const row = document.createElement('div');
    row.className = 'layer';
    row.innerHTML = '<input type="checkbox"><label></label><input type="range" min="0" max="1" step="0.05">';
    const [box, label, slider] = row.children;
    box.id = 'layer-' + layer.name; box.checked = layer.on; box.dataset.layer = layer.name;
    label.htmlFor = box.id; label.textContent = layer.name + ' (' + layer.kind + ')';
    slider.value = layer.opacity; slider.dataset.layer = layer.name;
    box.addEventListener('change', async () => { layer.on = box.checked; await load(layer); draw(); });
    slider.addEventListener('input', () => { layer.opacity = Number(slider.value); draw(); });
    list.appendChild(row);
  }
  if (layers.length === 0) list.textContent = 'none (give --outputs with histo tissue, tile, heatmap or nuclei folders)';

  async function load(layer) {
    if (!layer.on || layer.features) return;
    const json = await (await fetch(api + '/overlays/' + encodeURIComponent(layer.name))).json();
    layer.features = (json.features || []).map(f => {
      const g = f.geometry || {};
      const polygons = g.type === 'Polygon' ? [g.coordinates] : g.type === 'MultiPolygon' ? g.coordinates : [];
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      for (const poly of polygons) for (const [x, y] of poly[0] || []) {
        x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
      }
      const p = f.properties || {};
      const c = p.classification && p.classification.color;
      const color = Array.isArray(c) ? 'rgb(' + c.join(',') + ')' : '#ff5722';
      return { polygons, box: [x0, y0, x1, y1], color, properties: p };
    });
    if (layer.kind === 'heatmap') showLegend();
  }

  function showLegend() {
    document.getElementById('legend').innerHTML =
      '<div>attention (percentile within the slide)</div><div class="bar"></div><div class="ends"><span>low</span><span>high</span></div>';
  }

  // Image (level-0) to canvas pixels: an affine map taken from two points, so each vertex costs two multiply-adds.
  function transform() {
    const vp = viewer.viewport;
    const o = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
    const e = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(1000, 0));
    return { ox: o.x, oy: o.y, s: (e.x - o.x) / 1000 };
  }

  function draw() {
    const ratio = window.devicePixelRatio || 1;
    const w = viewer.container.clientWidth, h = viewer.container.clientHeight;
    if (canvas.width !== w * ratio || canvas.height !== h * ratio) {
      canvas.width = w * ratio; canvas.height = h * ratio; canvas.style.width = w + 'px'; canvas.style.height = h + 'px';
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const t = transform();
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    const view = [-t.ox / t.s, -t.oy / t.s, (w - t.ox) / t.s, (h - t.oy) / t.s]; // visible level-0 box
    for (const layer of layers) {
      layer.drawn = 0;
      if (!layer.on || !layer.features) continue;
      ctx.globalAlpha = layer.opacity;
      const filled = layer.kind === 'heatmap' || layer.kind === 'cells';
      ctx.lineWidth = layer.kind === 'tissue' ? 3 : 1;
      for (const f of layer.features) {
        const b = f.box;
        if (b[2] < view[0] || b[0] > view[2] || b[3] < view[1] || b[1] > view[3]) continue;
        if ((b[2] - b[0]) * t.s < 0.5 && layer.kind === 'cells') continue; // sub-pixel cells at low zoom
        ctx.beginPath();
        for (const poly of f.polygons) for (const ring of poly) {
          ring.forEach(([x, y], i) => {
            const px = t.ox + x * t.s, py = t.oy + y * t.s;
            if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
          });
          ctx.closePath();
        }
        if (filled) { ctx.fillStyle = f.color; ctx.fill('evenodd'); }
        if (!filled || layer.kind === 'cells') { ctx.strokeStyle = f.color; ctx.stroke(); }
        layer.drawn++;
      }
    }
    ctx.globalAlpha = 1;
    document.body.dataset.drawn = layers.map(l => l.name + ':' + l.drawn).join(',');
    document.body.dataset.imageZoom = t.s.toFixed(3); // screen pixels per slide pixel
    scalebar();
  }

  // A scale bar of a round number of microns, 80-200 screen px long.
  function scalebar() {
    const bar = document.getElementById('scalebar');
    if (!info.mpp) { bar.style.display = 'none'; return; }
    const umPerScreenPx = info.mpp / transform().s;
    let length = 1;
    for (const step of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000])
      if (step / umPerScreenPx <= 200) length = step;
    bar.firstElementChild.style.width = (length / umPerScreenPx) + 'px';
    bar.lastElementChild.textContent = length >= 1000 ? (length / 1000) + ' mm' : length + ' µm';
  }

  // Clicking a tile or a cell shows its measurements (the topmost layer that holds the point).
  function inside(ring, x, y) {
    let hit = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) hit = !hit;
    }
    return hit;
  }
  viewer.addHandler('canvas-click', e => {
    if (e.quick) select(viewer.viewport.viewerElementToImageCoordinates(e.position));
  });
  // Also from the address (#select=x,y in level-0 px), so a shared link or a test shows the same measurements.
  function select(p) {
    for (const layer of [...layers].reverse()) {
      if (!layer.on || !layer.features) continue;
      const f = layer.features.find(f => p.x >= f.box[0] && p.x <= f.box[2] && p.y >= f.box[1] && p.y <= f.box[3]
        && f.polygons.some(poly => inside(poly[0], p.x, p.y)));
      if (!f) continue;
      const rows = [['layer', layer.name], ['class', f.properties.classification && f.properties.classification.name]]
        .concat(Object.entries(f.properties.measurements || {}));
      const table = document.createElement('table');
      for (const [k, v] of rows) {
        const tr = table.insertRow();
        tr.insertCell().textContent = k;
        tr.insertCell().textContent = typeof v === 'number' ? (Math.round(v * 1e4) / 1e4) : v;
      }
      const details = document.getElementById('details');
      details.replaceChildren(table);
      return;
    }
  }

  for (const event of ['animation', 'update-viewport', 'resize', 'open']) viewer.addHandler(event, draw);
  let tilesLoaded = 0, lastTile = Date.now();
  viewer.addHandler('tile-loaded', () => { tilesLoaded++; lastTile = Date.now(); });
  viewer.addHandler('tile-load-failed', () => { lastTile = Date.now(); });
  // #zoom=full: one screen pixel per slide pixel at (x, y), once the viewer has its size (a page still being laid out
  // has none, and a zoom computed then is lost).
  let zoomed = hash.get('zoom') !== 'full';
  function zoomToFull() {
    if (zoomed || !viewer.container.clientWidth || !viewer.world.getItemAt(0)) return;
    const x = Number(hash.get('x') ?? info.width / 2), y = Number(hash.get('y') ?? info.height / 2);
    viewer.viewport.panTo(viewer.viewport.imageToViewportCoordinates(x, y), true);
    viewer.viewport.zoomTo(viewer.viewport.imageToViewportZoom(1), null, true);
    zoomed = true;
    tilesLoaded = 0;
    lastTile = Date.now();
  }
  viewer.addHandler('open', async () => {
    zoomToFull();
    await Promise.all(layers.map(load));
    draw();
    if (hash.get('select')) {
      const [x, y] = hash.get('select').split(',').map(Number);
      select(new OpenSeadragon.Point(x, y));
    }
    // Ready (for people and tests) once every tile the view needs is drawn; polled, since the event can fire while the
    // overlays load.
    // Or once tiles have stopped arriving for 1.5 s: a tile whose load was cancelled by a jump of the view can leave the
    // image never "fully loaded".
    const item = viewer.world.getItemAt(0);
    const timer = setInterval(() => {
      zoomToFull();
      if (!zoomed || tilesLoaded === 0 || !(item.getFullyLoaded() || Date.now() - lastTile > 1500)) return;
      clearInterval(timer);
      draw();
      document.body.dataset.ready = '1';
    }, 100);
  });
  viewer.addHandler('open-failed', e => { document.body.dataset.error = e.message || 'open failed'; });
})();
