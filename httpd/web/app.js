// bootstrapd operator page. Plain ES2020, no build step, no third-party code: it is embedded in
// the daemon and must work on a LAN without internet.
//
// Safety rules kept throughout: data from the server or the user only ever reaches the DOM as
// text (textContent, setAttribute of plain attributes, element.value), never as HTML; the admin
// token lives in memory (or, if asked, sessionStorage) and is never put in a cookie.
'use strict';

(() => {
  // ---- small DOM helpers ----------------------------------------------------------------

  const $ = (sel, root = document) => root.querySelector(sel);

  // el builds an element. attrs: "class", "text", "dataset", properties like "hidden"/"checked",
  // "on<event>" listeners, everything else via setAttribute. Children: nodes or strings (text).
  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'hidden' || k === 'checked' || k === 'disabled' || k === 'value') e[k] = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function showMsg(node, text) {
    node.textContent = text || '';
    node.hidden = !text;
  }

  let uid = 0;
  const nextId = (prefix) => `${prefix}-${++uid}`;

  // ---- formatting ---------------------------------------------------------------------------

  const pad = (n, w = 2) => String(n).padStart(w, '0');

  // Go's zero time.Time marshals as 0001-01-01T00:00:00Z: treat it as "never".
  function parseTime(s) {
    if (!s) return null;
    const d = new Date(s);
    if (Number.isNaN(d.getTime()) || d.getUTCFullYear() <= 1) return null;
    return d;
  }

  function fmtTime(d, ms = false) {
    const s = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return ms ? `${s}.${pad(d.getMilliseconds(), 3)}` : s;
  }

  function fmtAgo(d, now = Date.now()) {
    const s = Math.round((now - d.getTime()) / 1000);
    if (s < 0) return 'in the future';
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }

  // timeCell shows "12 s ago" with the exact local time in a <time> element.
  function timeCell(s, relative = true) {
    const d = parseTime(s);
    if (!d) return el('td', { class: 'muted', text: '—' });
    return el('td', {}, el('time', { datetime: d.toISOString(), title: fmtTime(d) },
      relative ? fmtAgo(d) : fmtTime(d)));
  }

  function fmtDuration(ms) {
    if (ms < 1000) return `${ms} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    if (ms < 3600000) return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
    return `${(ms / 3600000).toFixed(1)} h`;
  }

  function fmtSize(n) {
    if (typeof n !== 'number' || !Number.isFinite(n)) return '?';
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let v = n;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
  }

  const badge = (kind, text, title) => el('span', { class: `badge ${kind}`, title }, text);

  // ---- validation, the same rules as the server (ipxe.ParseFarm, ipxe.ValidateArgs) ----------

  const MAX_FARM = 18446744073709551615n; // uint64
  const MAX_ARGS = 512;
  const REFUSED = '$;&|\\"\'`#{}';

  // checkFarm returns {farm: "42"} or {error: "..."}. Leading zeros are accepted, as by the
  // server, and dropped from the URL.
  function checkFarm(raw) {
    const s = raw.trim();
    if (s === '') return { error: 'Enter a farm id: a positive integer.' };
    if (!/^[0-9]+$/.test(s)) return { error: `The farm id must be a positive integer (digits only), not “${s}”.` };
    const v = BigInt(s);
    if (v === 0n) return { error: 'The farm id must be a positive integer: 0 is not a farm.' };
    if (v > MAX_FARM) return { error: 'The farm id is too large (at most 18446744073709551615).' };
    return { farm: v.toString() };
  }

  function describeChar(c) {
    const cp = c.codePointAt(0);
    if (c === '\n' || c === '\r') return 'a line break';
    if (c === '\t') return 'a tab';
    if (cp < 0x20 || cp === 0x7f) return `control character U+${cp.toString(16).padStart(4, '0').toUpperCase()}`;
    return `“${c}”`;
  }

  // checkArgs returns {args, warnings} or {error}.
  function checkArgs(raw) {
    const s = raw.trim();
    if (s.length > MAX_ARGS) return { error: `Extra arguments are ${s.length} characters long, at most ${MAX_ARGS}.` };
    let i = 0;
    for (const c of s) {
      const cp = c.codePointAt(0);
      if (cp < 0x20 || cp > 0x7e) {
        return { error: `Refused: ${describeChar(c)} at position ${i + 1}: only printable ASCII is allowed.` };
      }
      if (REFUSED.includes(c)) {
        return { error: `Refused: ${describeChar(c)} at position ${i + 1}: iPXE would interpret it.` };
      }
      i++;
    }
    // A path segment that is only dots is removed by URL normalisation before it is sent.
    if (s === '.' || s === '..') return { error: 'Refused: “.” and “..” alone cannot be sent in a URL.' };
    const warnings = [];
    if (s.includes('___')) warnings.push('“___” stands for “/” in the URL: the kernel will see a “/” there.');
    if (s.includes('/')) warnings.push('Each “/” is written “___” in the URLs below; the server turns it back into “/”.');
    return { args: s, warnings };
  }

  // bootPath is <network>/<farm>[/<args>] for /ipxe/ and the media endpoints: "/" in the
  // arguments becomes "___" (a path segment cannot hold "/"), then the segment is URL-encoded.
  // A kernel (the /expert choice) is a fourth segment, after an arguments segment that may
  // be empty.
  function bootPath(network, farm, args, kernel) {
    let p = `/${encodeURIComponent(network)}/${farm}`;
    if (args || kernel) p += `/${encodeURIComponent((args || '').replaceAll('/', '___'))}`;
    if (kernel) p += `/${kernel.split('/').map(encodeURIComponent).join('/')}`;
    return p;
  }

  // ---- API --------------------------------------------------------------------------------

  class APIError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  const state = {
    token: '',
    networks: [], // [{name, display, kernel}]
    networksError: '',
    expanded: new Set(), // "<table>:<mac>" of open rows
    details: new Map(), // "<table>:<mac>" -> {row, assign} kept across refreshes
    timer: 0,
  };

  async function api(path, { method = 'GET', body, auth = true } = {}) {
    const headers = new Headers({ Accept: 'application/json' });
    if (auth) {
      if (!state.token) throw new APIError(401, 'Enter the admin token first.');
      try {
        headers.set('Authorization', `Bearer ${state.token}`);
      } catch {
        throw new APIError(401, 'token refused: it holds characters that cannot be sent in a header');
      }
    }
    if (body !== undefined) headers.set('Content-Type', 'application/json');
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (e) {
      throw new APIError(0, `Cannot reach bootstrapd: ${e.message}`);
    }
    if (res.status === 401) throw new APIError(401, 'token refused');
    if (!res.ok) {
      let msg = `${res.status} ${res.statusText}`.trim();
      try {
        const text = (await res.text()).trim();
        try {
          const j = JSON.parse(text);
          if (j && typeof j.error === 'string' && j.error) msg = j.error;
        } catch {
          if (text) msg = text;
        }
      } catch { /* keep the status line */ }
      throw new APIError(res.status, msg);
    }
    if (res.status === 204) return null;
    try {
      return await res.json();
    } catch (e) {
      throw new APIError(res.status, `Bad JSON from ${path}: ${e.message}`);
    }
  }

  // ---- generator ----------------------------------------------------------------------------

  const MEDIA = [
    { ep: 'ipxe', name: 'iPXE script', download: false,
      use: 'Plain text. Chain it from another iPXE, or give the URL to a hosting provider that boots an iPXE script URL.' },
    { ep: 'iso', name: 'ISO image', file: (n) => `ipxe-${n}.iso`,
      use: 'For a virtual machine\'s CD drive or a CD; also boots when written to a USB stick. BIOS and UEFI.' },
    { ep: 'usb', name: 'USB image', file: (n) => `ipxe-${n}.img`,
      use: 'Write it over a whole USB stick (dd if=FILE of=/dev/sdX bs=4M conv=fsync). BIOS and UEFI.' },
    { ep: 'uefimg', name: 'UEFI disk image', file: (n) => `uefiusb-${n}.img`,
      use: 'GPT disk with one FAT EFI partition, for UEFI-only machines. Write it like the USB image.' },
    { ep: 'uefi', name: 'EFI program (x86-64)', file: (n) => `ipxe-${n}.efi`,
      use: 'Copy it to a FAT partition as EFI/BOOT/BOOTX64.EFI, or start it from the UEFI shell.' },
    { ep: 'uefi', query: '?arch=arm64', name: 'EFI program (arm64)', file: (n) => `ipxe-${n}.efi`,
      use: 'The same for 64-bit ARM machines: EFI/BOOT/BOOTAA64.EFI.' },
    { ep: 'snponly', name: 'EFI program, firmware NIC driver (x86-64)', file: (n) => `snponly-${n}.efi`,
      use: 'For network cards iPXE\'s own drivers do not run: this iPXE (snponly.efi) uses the firmware\'s driver. Copy it like the EFI program.' },
    { ep: 'krn', name: 'iPXE kernel (.lkrn)', file: (n) => `ipxe-${n}.lkrn`,
      use: 'Boot it as a Linux kernel from GRUB, SYSLINUX or PXELINUX.' },
  ];

  const STATIC = [
    { path: '/krn-provision', name: 'Provisioning iPXE (.lkrn)', file: 'ipxe-zero-os-provision.lkrn',
      use: 'Tries each network card and asks this appliance for /provision/<its MAC>: one medium for every node whose record is here.' },
    { path: '/uefi-provision', name: 'Provisioning iPXE (.efi)', file: 'ipxe-zero-os-provision.efi',
      use: 'The same as an EFI program.' },
    { path: '/krn-generic', name: 'Generic iPXE (.lkrn)', file: 'ipxe-zero-os-generic.lkrn',
      use: 'iPXE without a script: it does DHCP and boots whatever the LAN offers.' },
    { path: '/uefi-generic', name: 'Generic iPXE (.efi)', file: 'ipxe-zero-os-generic.efi',
      use: 'The same as an EFI program.' },
  ];

  // breakable lets long URLs wrap after a "/" rather than anywhere.
  function breakable(url) {
    const out = [];
    url.split('/').forEach((part, i) => {
      if (i) out.push('/', el('wbr'));
      out.push(part);
    });
    return out;
  }

  function linkRow(name, path, use, download) {
    const url = location.origin + path;
    const a = el('a', { href: path, class: 'url', download: download || undefined }, breakable(url));
    return el('tr', {}, el('th', { scope: 'row' }, name), el('td', {}, a), el('td', { class: 'use' }, use));
  }

  function renderStaticLinks() {
    $('#static-links tbody').replaceChildren(...STATIC.map((m) => linkRow(m.name, m.path, m.use, m.file)));
  }

  const gen = { farmTouched: false };

  function networkByName(name) {
    return state.networks.find((n) => n.name === name);
  }

  function updateGenerator() {
    const netSel = $('#gen-network');
    const farmIn = $('#gen-farm');
    const argsIn = $('#gen-args');
    const table = $('#gen-links');
    const status = $('#gen-status');

    const network = netSel.value;
    const farm = checkFarm(farmIn.value);
    const args = checkArgs(argsIn.value);

    const showFarmErr = farm.error && (gen.farmTouched || farmIn.value !== '');
    showMsg($('#gen-farm-error'), showFarmErr ? farm.error : '');
    farmIn.setAttribute('aria-invalid', showFarmErr ? 'true' : 'false');
    showMsg($('#gen-args-error'), args.error || '');
    argsIn.setAttribute('aria-invalid', args.error ? 'true' : 'false');
    showMsg($('#gen-args-warn'), args.warnings ? args.warnings.join(' ') : '');

    const net = networkByName(network);
    const netMsg = $('#gen-network-msg');
    if (state.networksError) {
      netMsg.textContent = state.networksError;
      netMsg.className = 'msg error';
    } else if (net && !net.kernel && !net.kernelArm64) {
      netMsg.textContent = `No kernel is set for ${net.name} (net/${net.name}.efi, net/${net.name}-arm64.efi): its boots fail until one is set.`;
      netMsg.className = 'msg warn';
    } else if (net) {
      // The script picks the kernel by the CPU of the iPXE that runs it.
      netMsg.textContent = (net.kernel ? `x86-64 nodes boot ${net.kernel}` : `x86-64 nodes: no kernel (net/${net.name}.efi)`) +
        (net.kernelArm64 ? `; arm64 nodes boot ${net.kernelArm64}.` : `; arm64 nodes: no kernel (net/${net.name}-arm64.efi), they are told so on their console.`);
      netMsg.className = 'msg help';
    } else {
      netMsg.textContent = '';
      netMsg.className = 'msg help';
    }

    if (!net || farm.error || args.error) {
      updateShareLink();
      table.hidden = true;
      $('tbody', table).replaceChildren();
      if (!net) status.textContent = state.networksError ? 'No network to choose from.' : 'Choose a network.';
      else if (farm.error) status.textContent = 'Enter a valid farm id to see the links.';
      else status.textContent = 'Fix the extra arguments to see the links.';
      return;
    }
    const kernel = $('#gen-kernel').value;
    const p = bootPath(net.name, farm.farm, args.args, kernel);
    const rows = MEDIA.map((m) => linkRow(m.name, `/${m.ep}${p}${m.query || ''}`, m.use,
      m.file ? m.file(net.name) : false));
    markFormat(rows);
    $('tbody', table).replaceChildren(...rows);
    table.hidden = false;
    status.textContent = `Links for network ${net.name}, farm ${farm.farm}` +
      (args.args ? `, extra arguments “${args.args}”` : ', no extra arguments') +
      (kernel ? `, kernel ${kernel}.` : ', the network\'s default kernel.');
    updateShareLink(net.name, farm.farm, args.args, kernel);
  }

  function networkOption(n) {
    const label = n.display && n.display !== n.name ? `${n.name} — ${n.display}` : n.name;
    return el('option', { value: n.name }, n.kernel || n.kernelArm64 ? label : `${label} (no kernel)`);
  }

  async function loadNetworks() {
    try {
      const list = await api('/api/v1/networks', { auth: false });
      if (!Array.isArray(list)) throw new APIError(0, 'unexpected answer from /api/v1/networks');
      state.networks = list.filter((n) => n && typeof n.name === 'string')
        .map((n) => ({ name: n.name, display: String(n.display || ''), kernel: String(n.kernel || ''),
          kernelArm64: String(n.kernel_arm64 || '') }));
      state.networksError = state.networks.length ? '' : 'No network is configured (appliance.yaml: networks).';
    } catch (e) {
      state.networks = [];
      state.networksError = `Cannot load the networks: ${e.message}`;
    }
    const sel = $('#gen-network');
    const prev = sel.value;
    sel.replaceChildren(...state.networks.map(networkOption));
    if (networkByName(prev)) sel.value = prev;
    else if (networkByName(gen.want.network)) sel.value = gen.want.network; // from /expert
    // Assign forms already open keep their choice.
    for (const s of document.querySelectorAll('select.assign-network')) {
      const v = s.value;
      s.replaceChildren(...state.networks.map(networkOption));
      if (networkByName(v)) s.value = v;
    }
    updateGenerator();
  }

  // ---- generator: a kernel file and a format, as the predecessor's /expert -----------------
  // /expert?network=&farm=&args=&kernel=&format= checks its query and redirects here with
  // gen_* parameters; the kernel list is the public /images.json.

  gen.want = { network: '', kernel: '', format: '' };

  function readGenParams() {
    const p = new URLSearchParams(location.search);
    gen.want.network = p.get('gen_network') || '';
    gen.want.kernel = p.get('gen_kernel') || '';
    gen.want.format = p.get('gen_format') || '';
    if (p.get('gen_farm')) $('#gen-farm').value = p.get('gen_farm');
    if (p.get('gen_args')) $('#gen-args').value = p.get('gen_args');
    if (gen.want.kernel) $('#gen-kernel').append(el('option', { value: gen.want.kernel }, gen.want.kernel));
    $('#gen-kernel').value = gen.want.kernel;
  }

  async function loadImages() {
    const sel = $('#gen-kernel');
    const chosen = sel.value;
    try {
      const list = await api('/images.json', { auth: false });
      const imgs = Array.isArray(list && list.images) ? list.images.filter((k) => k && typeof k.name === 'string') : [];
      sel.replaceChildren(el('option', { value: '' }, 'the network\'s default'),
        ...imgs.map((k) => el('option', { value: k.name },
          `${k.name} (${fmtSize(Number(k.size) || 0)}${parseTime(k.mtime) ? `, ${fmtTime(parseTime(k.mtime))}` : ''})`)));
      if (chosen && !imgs.some((k) => k.name === chosen)) sel.append(el('option', { value: chosen }, `${chosen} (not listed)`));
      sel.value = chosen;
      showMsg($('#gen-kernel-msg'), '');
    } catch (e) {
      showMsg($('#gen-kernel-msg'), `Cannot load the kernel list: ${e.message}`);
    }
    updateGenerator();
  }

  // markFormat highlights the row of the format an /expert link named.
  function markFormat(rows) {
    if (!gen.want.format) return;
    MEDIA.forEach((m, i) => {
      if (m.ep === gen.want.format && !m.query) rows[i].classList.add('chosen');
    });
  }

  function updateShareLink(network, farm, args, kernel) {
    const a = $('#gen-share-link');
    if (!network) {
      $('#gen-share').hidden = true;
      return;
    }
    const p = new URLSearchParams({ network, farm: String(farm) });
    if (args) p.set('args', args);
    if (kernel) p.set('kernel', kernel);
    const path = `/expert?${p}`;
    a.href = path;
    a.textContent = location.origin + path;
    $('#gen-share').hidden = false;
  }

  // ---- token --------------------------------------------------------------------------------

  const TOKEN_KEY = 'bootstrapd.token';

  function setTokenStatus(text, bad) {
    const s = $('#token-status');
    s.textContent = text;
    s.classList.toggle('error', !!bad);
    s.classList.toggle('ok', !bad && !!text);
  }

  function lock(message, bad) {
    $('#nodes-body').hidden = true;
    $('#kernels-body').hidden = true;
    $('#kernels-locked').hidden = false;
    setTokenStatus(message, bad);
  }

  // onAPIError handles what every admin call shares: a 401 locks the page again.
  function onAPIError(e, target) {
    if (e.status === 401) {
      lock('token refused', true);
      return;
    }
    showMsg(target, e.message);
  }

  async function useToken(token, keep) {
    state.token = token;
    try {
      if (keep) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch { /* storage disabled: memory only */ }
    if (!token) {
      lock('Enter the token.', true);
      return;
    }
    setTokenStatus('Checking the token…', false);
    const ok = await refreshNodes();
    if (!ok) return;
    setTokenStatus('Token accepted.', false);
    $('#nodes-body').hidden = false;
    $('#kernels-body').hidden = false;
    $('#kernels-locked').hidden = true;
    refreshKernels();
  }

  function forgetToken() {
    state.token = '';
    $('#token').value = '';
    $('#token-keep').checked = false;
    try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* nothing stored */ }
    state.expanded.clear();
    state.details.clear();
    for (const name of Object.keys(TABLES)) {
      Object.assign(view[name], { cursors: [''], url: '', etag: '', data: null, rows: new Map() });
      $(`#${name} tbody`).replaceChildren();
    }
    view.fleetEtag = '';
    $('#nodes-counts').replaceChildren();
    delete $('#nodes-counts').dataset.sig;
    lock('Token forgotten.', false);
  }

  // ---- nodes: search, filters, sorting and pages, all done by the server --------------------
  //
  // Each table shows one page (PAGE_SIZE rows) of its endpoint, asked with the shared search
  // and state filter. A refresh asks for the same page with the ETag of the last answer: when
  // nothing changed the server answers 304 with no body, and when something did, rows are
  // updated in place, so the scroll position, open timelines and half-typed forms stay.

  const PAGE_SIZE = 50;

  // The sort order of each column when it is first chosen: newest and largest first.
  const DESC_FIRST = new Set(['last_seen', 'first_seen', 'count', 'updated']);

  const TABLES = {
    discovered: { path: '/api/v1/discovered', sort: 'last_seen', order: 'desc', cols: 9, param: 'd',
      empty: 'No node has asked for a script yet.' },
    known: { path: '/api/v1/nodes', sort: 'mac', order: 'asc', cols: 8, param: 'k',
      empty: 'No node records yet.' },
  };

  const view = {
    q: '',
    state: '',
    fleetEtag: '',
    searchTimer: 0,
  };
  for (const [name, t] of Object.entries(TABLES)) {
    // cursors: the cursor of each page up to the current one ('' for the first), so
    // "Previous" can go back; rows: MAC → {tr, sig} of the rows on the page.
    view[name] = { sort: t.sort, order: t.order, cursors: [''], url: '', etag: '', data: null, rows: new Map(), seq: 0 };
  }

  // apiTagged is a GET that sends the ETag of the last answer: {notModified} or {body, etag}.
  async function apiTagged(path, etag) {
    const headers = new Headers({ Accept: 'application/json' });
    if (!state.token) throw new APIError(401, 'Enter the admin token first.');
    try {
      headers.set('Authorization', `Bearer ${state.token}`);
    } catch {
      throw new APIError(401, 'token refused: it holds characters that cannot be sent in a header');
    }
    if (etag) headers.set('If-None-Match', etag);
    let res;
    try {
      res = await fetch(path, { headers, cache: 'no-store', credentials: 'omit' });
    } catch (e) {
      throw new APIError(0, `Cannot reach bootstrapd: ${e.message}`);
    }
    if (res.status === 304) return { notModified: true };
    if (res.status === 401) throw new APIError(401, 'token refused');
    let text = '';
    try { text = await res.text(); } catch { /* the status says enough */ }
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch { /* below */ }
    if (!res.ok) {
      const msg = body && typeof body.error === 'string' && body.error ? body.error : `${res.status} ${res.statusText}`.trim();
      throw new APIError(res.status, msg);
    }
    if (body === null) throw new APIError(res.status, `Bad JSON from ${path}`);
    return { body, etag: res.headers.get('ETag') || '' };
  }

  // ---- the URL keeps the search, the filter and the sort orders, so a link can be shared ---

  function readURL() {
    const p = new URLSearchParams(location.search);
    view.q = (p.get('q') || '').slice(0, 100);
    const st = p.get('state') || '';
    view.state = ['known', 'unknown', 'stuck', 'booted'].includes(st) ? st : '';
    for (const [name, t] of Object.entries(TABLES)) {
      const s = p.get(`${t.param}sort`);
      const o = p.get(`${t.param}order`);
      if (s && /^[a-z_]{1,20}$/.test(s)) view[name].sort = s;
      if (o === 'asc' || o === 'desc') view[name].order = o;
    }
    $('#node-q').value = view.q;
    $('#node-state').value = view.state;
  }

  function writeURL() {
    const p = new URLSearchParams();
    if (view.q) p.set('q', view.q);
    if (view.state) p.set('state', view.state);
    for (const [name, t] of Object.entries(TABLES)) {
      if (view[name].sort !== t.sort || view[name].order !== t.order) {
        p.set(`${t.param}sort`, view[name].sort);
        p.set(`${t.param}order`, view[name].order);
      }
    }
    const qs = p.toString();
    history.replaceState(null, '', `${location.pathname}${qs ? `?${qs}` : ''}${location.hash}`);
  }

  // ---- loading ----------------------------------------------------------------------------

  // refreshNodes reloads both tables' current pages and the fleet view; false when the token
  // was refused.
  async function refreshNodes() {
    try {
      const changed = await Promise.all([loadTable('discovered'), loadTable('known'), loadFleet()]);
      showMsg($('#nodes-error'), '');
      $('#nodes-updated').textContent = `Updated ${fmtTime(new Date())}${changed.some(Boolean) ? '' : ' (no change)'}.`;
      return true;
    } catch (e) {
      onAPIError(e, $('#nodes-error'));
      return e.status !== 401;
    }
  }

  // loadTable asks for the table's current page; true when it changed.
  async function loadTable(name, fresh = false) {
    const v = view[name];
    const p = new URLSearchParams();
    if (view.q) p.set('q', view.q);
    if (view.state) p.set('state', view.state);
    p.set('sort', v.sort);
    p.set('order', v.order);
    p.set('limit', String(PAGE_SIZE));
    const cursor = v.cursors[v.cursors.length - 1];
    if (cursor) p.set('cursor', cursor);
    const url = `${TABLES[name].path}?${p}`;
    const seq = ++v.seq;
    const res = await apiTagged(url, !fresh && url === v.url ? v.etag : '');
    // Overlapping loads (timer, typing, a click): only the latest draws.
    if (seq !== v.seq || res.notModified) return false;
    v.url = url;
    v.etag = res.etag;
    v.data = res.body;
    renderTable(name);
    renderCounts(res.body.counts);
    return true;
  }

  // search starts both tables again from their first page.
  function search() {
    for (const name of Object.keys(TABLES)) view[name].cursors = [''];
    writeURL();
    renderSortHeaders();
    return Promise.all(Object.keys(TABLES).map((n) => loadTable(n, true)))
      .then(() => showMsg($('#nodes-error'), ''), (e) => onAPIError(e, $('#nodes-error')));
  }

  function fmtCount(n) {
    return Number(n || 0).toLocaleString('en-US');
  }

  // renderCounts writes the farm's summary; each figure also sets the state filter.
  function renderCounts(c) {
    if (!c || typeof c !== 'object') return;
    const parts = [['known', 'known'], ['unknown', 'unknown'], ['stuck', 'stuck'], ['booted', 'booted in the last hour']];
    const box = $('#nodes-counts');
    const sig = JSON.stringify(c);
    if (box.dataset.sig === sig) return;
    box.dataset.sig = sig;
    box.replaceChildren(...parts.map(([k, label], i) => [i ? ', ' : '',
      el('button', { type: 'button', class: `count linklike ${k}`, dataset: { state: k },
        title: `Show only the ${k} nodes`,
        onclick: () => { $('#node-state').value = k; view.state = k; search(); } },
      `${fmtCount(c[k])} ${label}`)]).flat());
  }

  // ---- rows ---------------------------------------------------------------------------------

  function stageCell(stage) {
    return stage ? el('td', {}, el('code', {}, stage)) : el('td', { class: 'muted', text: '—' });
  }

  function stateBadges(d, known) {
    const out = [known ? badge('known', 'known', 'Has a node record') : badge('unknown', 'unknown', 'No record: it waits and asks again')];
    if (d && d.stuck) {
      out.push(' ', badge('stuck', 'stuck', `No progress since “${d.last_stage || '?'}” for longer than the configured time`));
    }
    return out;
  }

  const CELLS = {
    discovered: (d) => [
      el('td', { class: 'state' }, stateBadges(d, d.known)),
      el('td', { text: d.arch || '—' }),
      el('td', {}, d.ip ? el('code', {}, d.ip) : '—'),
      stageCell(d.last_stage),
      timeCell(d.first_seen),
      timeCell(d.last_seen),
      el('td', { class: 'num', text: String(d.count ?? '') }),
      el('td', {}, d.known ? (d.network ? el('span', { class: 'muted' }, `${d.network} / ${d.farm}`) : '') : el('button', {
        type: 'button', class: 'assign-open', 'aria-label': `Assign ${d.mac}`,
        onclick: () => openRow('discovered', String(d.mac), true),
      }, 'Assign…')),
    ],
    known: (n) => [
      el('td', { class: 'state' }, n.last_stage ? el('code', {}, n.last_stage) : el('span', { class: 'muted' }, '—'),
        n.stuck ? [' ', badge('stuck', 'stuck', `No progress since “${n.last_stage || '?'}”`)] : ''),
      el('td', {}, el('code', {}, n.network)),
      el('td', { class: 'num', text: String(n.farm) }),
      el('td', {}, n.args ? el('code', {}, n.args) : el('span', { class: 'muted' }, '—')),
      el('td', {}, n.kernel ? el('code', {}, n.kernel) : el('span', { class: 'muted' }, 'network default')),
      n.last_seen ? timeCell(n.last_seen) : el('td', { class: 'muted', text: 'never' }),
      timeCell(n.updated),
    ],
  };

  const canAssign = { discovered: (d) => !d.known, known: () => false };

  function mainRow(table, mac) {
    const key = `${table}:${mac}`;
    const detailId = `detail-${table}-${mac.replace(/[^0-9a-zA-Z]/g, '')}`;
    const toggle = el('button', {
      type: 'button', class: 'expander', 'aria-expanded': 'false', 'aria-controls': detailId,
      title: 'Show or hide the boot timeline',
      onclick: () => (state.expanded.has(key) ? closeRow(table, mac) : openRow(table, mac, false)),
    }, el('code', {}, mac));
    return el('tr', { class: 'main', dataset: { mac } }, el('td', {}, toggle));
  }

  // renderTable updates the table to the current page: rows whose data did not change are
  // left alone, changed ones get new cells (the MAC button stays), and only rows that came
  // or went are added or removed. Open rows keep their detail row and its form; their
  // timeline is reloaded only when the row changed.
  function renderTable(name) {
    const v = view[name];
    const items = Array.isArray(v.data && v.data.items) ? v.data.items : [];
    const tbody = $(`#${name} tbody`);
    const want = [];
    const keepRows = new Map();
    for (const item of items) {
      const mac = String(item.mac);
      const key = `${name}:${mac}`;
      const sig = JSON.stringify(item);
      let r = v.rows.get(mac);
      if (!r) r = { tr: mainRow(name, mac), sig: '' };
      const changed = r.sig !== sig;
      if (changed) {
        while (r.tr.children.length > 1) r.tr.lastElementChild.remove();
        r.tr.append(...CELLS[name](item));
        r.sig = sig;
      }
      keepRows.set(mac, r);
      want.push(r.tr);
      const open = state.expanded.has(key);
      $('button.expander', r.tr).setAttribute('aria-expanded', open ? 'true' : 'false');
      if (!open) continue;
      const assign = canAssign[name](item);
      let det = state.details.get(key);
      const fresh = !det || det.assign !== assign;
      if (fresh) {
        det = { row: detailRow(name, mac, TABLES[name].cols, `detail-${name}-${mac.replace(/[^0-9a-zA-Z]/g, '')}`, assign), assign };
        state.details.set(key, det);
      }
      want.push(det.row);
      if (fresh || changed) loadEvents(det.row, mac);
    }
    v.rows = keepRows;
    const wanted = new Set(want);
    for (const key of [...state.details.keys()]) {
      if (key.startsWith(`${name}:`) && !wanted.has(state.details.get(key).row)) {
        state.details.delete(key);
        state.expanded.delete(key);
      }
    }
    // Remove first, then move only what is out of place: a row that stays is never taken out
    // of the document, so the focus and the scroll position stay where they were.
    for (const c of [...tbody.children]) if (!wanted.has(c)) c.remove();
    tbody.dataset.url = v.url; // which request the rows answer (the scale figures wait on it)
    let ref = tbody.firstElementChild;
    for (const n of want) {
      if (n === ref) ref = ref.nextElementSibling;
      else tbody.insertBefore(n, ref);
    }
    renderPager(name, items.length);
  }

  function renderPager(name, shown) {
    const v = view[name];
    const total = v.data ? Number(v.data.total) || 0 : 0;
    const first = (v.cursors.length - 1) * PAGE_SIZE;
    const filtered = view.q || view.state;
    const info = $(`#${name}-pageinfo`);
    info.textContent = total === 0 ? '' :
      `Rows ${fmtCount(first + 1)}–${fmtCount(first + shown)} of ${fmtCount(total)}${filtered ? ' matching' : ''}.`;
    $(`#${name}-prev`).disabled = v.cursors.length <= 1;
    $(`#${name}-next`).disabled = !(v.data && v.data.next);
    $(`#${name}-pager`).hidden = total <= PAGE_SIZE && v.cursors.length <= 1;
    const empty = $(`#${name}-empty`);
    empty.textContent = filtered ? 'No node matches the search and filter.' : TABLES[name].empty;
    empty.hidden = total > 0;
  }

  function page(name, dir) {
    const v = view[name];
    if (dir > 0) {
      if (!v.data || !v.data.next) return;
      v.cursors.push(v.data.next);
    } else {
      if (v.cursors.length <= 1) return;
      v.cursors.pop();
    }
    loadTable(name, true).catch((e) => onAPIError(e, $('#nodes-error')));
  }

  // ---- sorting ------------------------------------------------------------------------------

  function renderSortHeaders() {
    for (const name of Object.keys(TABLES)) {
      for (const b of document.querySelectorAll(`#${name} thead button.sort`)) {
        const th = b.closest('th');
        const on = b.dataset.sort === view[name].sort;
        if (on) th.setAttribute('aria-sort', view[name].order === 'desc' ? 'descending' : 'ascending');
        else th.removeAttribute('aria-sort');
        b.dataset.dir = on ? view[name].order : '';
      }
    }
  }

  function sortBy(name, col) {
    const v = view[name];
    if (v.sort === col) v.order = v.order === 'asc' ? 'desc' : 'asc';
    else {
      v.sort = col;
      v.order = DESC_FIRST.has(col) ? 'desc' : 'asc';
    }
    v.cursors = [''];
    writeURL();
    renderSortHeaders();
    loadTable(name, true).catch((e) => onAPIError(e, $('#nodes-error')));
  }

  function openRow(table, mac, focusAssign) {
    state.expanded.add(`${table}:${mac}`);
    renderTable(table);
    if (focusAssign) {
      const det = state.details.get(`${table}:${mac}`);
      const sel = det && $('select', det.row);
      if (sel) sel.focus();
    }
  }

  function closeRow(table, mac) {
    state.expanded.delete(`${table}:${mac}`);
    renderTable(table);
  }

  function detailRow(table, mac, cols, id, assign) {
    const timeline = el('div', { class: 'timeline' },
      el('h4', {}, `Boot timeline of ${mac}`),
      el('div', { class: 'chart boot-chart' }),
      el('p', { class: 'help events-status', role: 'status' }, 'Loading…'),
      el('table', { class: 'events', hidden: true },
        el('thead', {}, el('tr', {},
          el('th', { scope: 'col' }, 'Time'), el('th', { scope: 'col' }, 'After'),
          el('th', { scope: 'col' }, 'Stage'), el('th', { scope: 'col' }, 'Detail'))),
        el('tbody')));
    return el('tr', { class: 'detail', id, dataset: { mac } },
      el('td', { colspan: cols }, el('div', { class: 'detail-body' }, assign ? assignForm(mac) : null, timeline)));
  }

  // ---- charts: inline SVG built element by element (no markup strings, no library) --------

  const SVG = 'http://www.w3.org/2000/svg';

  function svg(tag, attrs = {}, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'text') e.textContent = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) if (c) e.append(c);
    return e;
  }

  // The boot steps, in order, as the server's fleet view names them.
  const STEP_OF = { offer_binary: 0, offer_httpboot: 0, offer_script: 0, tftp_sent: 1, script_served: 2, kernel_requested: 3, kernel_sent: 4 };
  const STEP_LABEL = { tftp: 'offer → TFTP', script: '→ script', kernel_requested: '→ kernel requested', kernel_sent: '→ kernel sent' };
  const STEP_NAMES = ['offer', 'tftp', 'script', 'kernel_requested', 'kernel_sent'];

  // bootSteps returns the durations of the node's latest boot attempt: one per step reached,
  // measured from the previous step's event. A step that goes back (a new offer, a script
  // asked again) starts a new attempt; other stages are skipped.
  function bootSteps(evs) {
    let run = [];
    let prev = -1;
    let prevT = 0;
    for (const ev of evs) {
      const s = STEP_OF[ev.stage];
      const d = parseTime(ev.time);
      if (s === undefined || !d) continue;
      if (s <= prev) run = [];
      else if (prev >= 0) run.push({ step: STEP_NAMES[s], ms: d.getTime() - prevT });
      prev = s;
      prevT = d.getTime();
    }
    return run;
  }

  // barChart draws horizontal bars: rows of {label, value, text, cls}.
  function barChart(rows, title) {
    const rowH = 22;
    const labelW = 150;
    const width = 520;
    const max = Math.max(1, ...rows.map((r) => r.value));
    const h = rows.length * rowH + 4;
    return svg('svg', { viewBox: `0 0 ${width} ${h}`, width: '100%', height: h, role: 'img', 'aria-label': title, class: 'bars', preserveAspectRatio: 'xMinYMin meet' },
      svg('title', { text: title }),
      rows.map((r, i) => {
        const w = Math.max(2, Math.round((r.value / max) * (width - labelW - 90)));
        const y = i * rowH + 2;
        return svg('g', { class: r.cls || '' },
          svg('text', { x: 0, y: y + 15, class: 'label', text: r.label }),
          svg('rect', { x: labelW, y: y + 3, width: w, height: rowH - 8, rx: 2 }),
          svg('text', { x: labelW + w + 6, y: y + 15, class: 'value', text: r.text }));
      }));
  }

  function drawBootChart(row, mac, evs) {
    const box = $('.boot-chart', row);
    const steps = bootSteps(evs);
    if (!steps.length) {
      box.replaceChildren(el('p', { class: 'help' }, 'No boot step to chart yet: the chart needs two stages of one boot.'));
      return;
    }
    const slowest = steps.reduce((a, b) => (b.ms > a.ms ? b : a));
    const title = `Latest boot of ${mac}, time per step: ` + steps.map((s) => `${STEP_LABEL[s.step]} ${fmtDuration(s.ms)}`).join(', ');
    box.replaceChildren(barChart(steps.map((s) => ({
      label: STEP_LABEL[s.step], value: s.ms, text: fmtDuration(s.ms), cls: s === slowest ? 'slowest' : '',
    })), title));
  }

  async function loadFleet() {
    const res = await apiTagged('/api/v1/fleet', view.fleetEtag);
    if (res.notModified) return false;
    view.fleetEtag = res.etag;
    const f = res.body || {};
    const hours = Array.isArray(f.hours) ? f.hours : [];
    const steps = Array.isArray(f.steps) ? f.steps : [];
    const total = hours.reduce((a, h) => a + (Number(h.boots) || 0), 0);
    const slow = steps.find((s) => s.step === f.slowest);
    $('#fleet-summary').textContent = `${fmtCount(total)} boot${total === 1 ? '' : 's'} in the last 24 hours.` +
      (slow ? ` Slowest step: ${STEP_LABEL[slow.step] || slow.step}, median ${fmtDuration(slow.median_ms)}, 90% within ${fmtDuration(slow.p90_ms)}.` : '');

    // Boots per hour: vertical bars, oldest on the left.
    const W = 520;
    const H = 120;
    const max = Math.max(1, ...hours.map((h) => Number(h.boots) || 0));
    const bw = W / Math.max(1, hours.length);
    const hourTitle = `Boots per hour, last 24 hours: ${total} in all, at most ${max} in one hour`;
    $('#fleet-hours').replaceChildren(svg('svg', { viewBox: `0 0 ${W} ${H + 16}`, width: '100%', role: 'img', 'aria-label': hourTitle, class: 'columns' },
      svg('title', { text: hourTitle }),
      hours.map((h, i) => {
        const n = Number(h.boots) || 0;
        const bh = n ? Math.max(2, Math.round((n / max) * H)) : 0;
        const d = parseTime(h.start);
        return svg('g', {},
          svg('rect', { x: Math.round(i * bw) + 1, y: H - bh, width: Math.max(1, Math.round(bw) - 2), height: bh },
            svg('title', { text: `${d ? `${pad(d.getHours())}:00` : ''}: ${n} boot${n === 1 ? '' : 's'}` })),
          i % 6 === 0 && d ? svg('text', { x: Math.round(i * bw) + 1, y: H + 13, class: 'axis', text: `${pad(d.getHours())}:00` }) : null);
      })));
    const rows = steps.filter((s) => s.count > 0).map((s) => ({
      label: STEP_LABEL[s.step] || s.step, value: Number(s.median_ms) || 0,
      text: `${fmtDuration(Number(s.median_ms) || 0)} (${fmtCount(s.count)})`, cls: s.step === f.slowest ? 'slowest' : '',
    }));
    $('#fleet-steps').replaceChildren(rows.length ? barChart(rows, 'Median time of each boot step over the last 24 hours' +
      (slow ? `; slowest: ${STEP_LABEL[slow.step] || slow.step}` : '')) : el('p', { class: 'help' }, 'No boot step recorded in the last 24 hours.'));
    return true;
  }

  async function loadEvents(row, mac) {
    const status = $('.events-status', row);
    const table = $('table.events', row);
    try {
      const evs = await api(`/api/v1/nodes/${encodeURIComponent(mac)}/events`);
      const list = Array.isArray(evs) ? evs : [];
      drawBootChart(row, mac, list);
      let prev = null;
      const trs = list.map((ev) => {
        const d = parseTime(ev.time);
        const after = d && prev ? fmtDuration(d.getTime() - prev.getTime()) : '';
        if (d) prev = d;
        return el('tr', {},
          el('td', {}, d ? el('time', { datetime: d.toISOString() }, fmtTime(d, true)) : '—'),
          el('td', { class: 'num muted', text: after ? `+${after}` : '' }),
          el('td', {}, el('code', {}, String(ev.stage || ''))),
          el('td', { text: String(ev.detail || '') }));
      });
      $('tbody', table).replaceChildren(...trs);
      table.hidden = trs.length === 0;
      const last = prev ? ` Last event ${fmtAgo(prev)}.` : '';
      const count = trs.length === 1 ? '1 event' : `${trs.length} events, oldest first`;
      status.textContent = trs.length ? `${count}.${last}` : 'No boot event recorded yet.';
      status.classList.remove('error');
    } catch (e) {
      if (e.status === 401) {
        lock('token refused', true);
        return;
      }
      status.textContent = e.status === 404 ? 'No boot event recorded yet.' : `Cannot load the timeline: ${e.message}`;
      status.classList.toggle('error', e.status !== 404);
    }
  }

  function assignForm(mac) {
    const netId = nextId('assign-net');
    const farmId = nextId('assign-farm');
    const argsId = nextId('assign-args');
    const errId = nextId('assign-err');
    const farmErrId = nextId('assign-farm-err');
    const select = el('select', { id: netId, class: 'assign-network', name: 'network' },
      state.networks.map(networkOption));
    // Offer first a network that can boot: the one chosen in the generator, else one with a kernel.
    const chosen = networkByName($('#gen-network').value);
    const bootable = chosen && chosen.kernel ? chosen : state.networks.find((n) => n.kernel);
    if (bootable) select.value = bootable.name;
    const farm = el('input', {
      id: farmId, name: 'farm', type: 'text', inputmode: 'numeric', spellcheck: 'false',
      autocomplete: 'off', placeholder: 'e.g. 42', 'aria-describedby': farmErrId,
    });
    const args = el('input', { id: argsId, name: 'args', type: 'text', spellcheck: 'false', autocomplete: 'off', placeholder: 'optional' });
    const farmErr = el('p', { id: farmErrId, class: 'error', role: 'alert', hidden: true });
    const err = el('p', { id: errId, class: 'error assign-error', role: 'alert', hidden: true });
    const ok = el('p', { class: 'ok assign-ok', role: 'status', hidden: true });
    const submit = el('button', { type: 'submit' }, 'Assign');

    async function onSubmit(ev) {
      ev.preventDefault();
      showMsg(err, '');
      showMsg(ok, '');
      const f = checkFarm(farm.value);
      showMsg(farmErr, f.error || '');
      farm.setAttribute('aria-invalid', f.error ? 'true' : 'false');
      const a = checkArgs(args.value);
      if (f.error) { farm.focus(); return; }
      if (a.error) { showMsg(err, a.error); args.focus(); return; }
      if (!select.value) { showMsg(err, 'Choose a network.'); return; }
      // Farm ids are uint64 on the server; JSON numbers lose precision above 2^53.
      const farmNum = Number(f.farm);
      if (!Number.isSafeInteger(farmNum)) { showMsg(err, 'This farm id is too large to send from a browser.'); return; }
      submit.disabled = true;
      try {
        const body = { mac, network: select.value, farm: farmNum };
        if (a.args) body.args = a.args;
        const n = await api('/api/v1/nodes', { method: 'POST', body });
        const msg = `${mac} assigned to network ${n && n.network ? n.network : select.value}, farm ${n && n.farm ? n.farm : farmNum}. It boots at its next retry.`;
        showMsg(ok, msg);
        // The form goes away once the node is known: say it where it stays visible.
        showMsg($('#nodes-status'), msg);
        await refreshNodes();
      } catch (e) {
        if (e.status === 401) lock('token refused', true);
        else showMsg(err, `Not assigned: ${e.message}`);
      } finally {
        submit.disabled = false;
      }
    }

    return el('form', { class: 'assign', 'aria-label': `Assign ${mac}`, novalidate: true, onsubmit: onSubmit },
      el('h4', {}, `Assign ${mac}`),
      el('div', { class: 'grid-form' },
        el('div', { class: 'field' }, el('label', { for: netId }, 'Network'), select),
        el('div', { class: 'field' }, el('label', { for: farmId }, 'Farm id'), farm, farmErr),
        el('div', { class: 'field' }, el('label', { for: argsId }, 'Extra kernel arguments'), args),
        el('div', { class: 'field buttons' }, submit)),
      err, ok);
  }

  // ---- kernels ------------------------------------------------------------------------------

  async function refreshKernels() {
    const errNode = $('#kernels-error');
    let data;
    try {
      data = await api('/api/v1/kernels');
      showMsg(errNode, '');
    } catch (e) {
      onAPIError(e, errNode);
      return;
    }
    const kernels = Array.isArray(data && data.kernels) ? data.kernels : [];
    const nets = data && data.networks && typeof data.networks === 'object' ? data.networks : {};
    const arm = data && data.networks_arm64 && typeof data.networks_arm64 === 'object' ? data.networks_arm64 : {};
    const users = new Map();
    for (const [list, suffix] of [[nets, ''], [arm, ' (arm64)']]) {
      for (const [net, k] of Object.entries(list)) {
        if (!k) continue;
        if (!users.has(k)) users.set(k, []);
        users.get(k).push(net + suffix);
      }
    }
    const names = new Set([...state.networks.map((n) => n.name), ...Object.keys(nets)]);
    const netRows = [...names].sort().map((name) => {
      const k = Object.prototype.hasOwnProperty.call(nets, name) ? nets[name] : (networkByName(name) || {}).kernel;
      const n = networkByName(name);
      const a = Object.prototype.hasOwnProperty.call(arm, name) ? arm[name] : (n || {}).kernelArm64;
      return el('tr', {},
        el('th', { scope: 'row' }, el('code', {}, name)),
        el('td', { text: n ? n.display : '' }),
        el('td', {}, k ? el('code', {}, k) : badge('stuck', 'none', `net/${name}.efi is missing: x86-64 nodes of this network cannot boot`)),
        el('td', {}, a ? el('code', {}, a) : badge('unknown', 'none', `net/${name}-arm64.efi is missing: arm64 nodes of this network are told so`)));
    });
    $('#network-kernels tbody').replaceChildren(...netRows);

    const rows = [...kernels].sort((a, b) => String(a.name).localeCompare(String(b.name))).map((k) => {
      const d = parseTime(k.mtime);
      return el('tr', {},
        el('th', { scope: 'row' }, el('code', {}, String(k.name))),
        el('td', { class: 'num', title: `${k.size} bytes` }, fmtSize(k.size)),
        el('td', {}, d ? el('time', { datetime: d.toISOString() }, fmtTime(d)) : '—'),
        el('td', {}, (users.get(k.name) || []).sort().map((n, i) => [i ? ' ' : '', badge('known', n)])),
        el('td', {}, el('code', { class: 'hash' }, String(k.sha256 || ''))));
    });
    $('#kernel-list tbody').replaceChildren(...rows);
    $('#kernels-empty').hidden = rows.length > 0;
    await refreshPulls();
  }

  // The pull history is the appliance's, not a node's: each pull of each network's default.
  async function refreshPulls() {
    let pulls;
    try {
      pulls = await api('/api/v1/kernels/pulls');
    } catch (e) {
      $('#kernel-pulls tbody').replaceChildren();
      $('#pulls-empty').textContent = e.status === 503 ? 'Kernel pulls are not configured.' : `Cannot load the kernel pulls: ${e.message}`;
      $('#pulls-empty').hidden = false;
      return;
    }
    const list = Array.isArray(pulls) ? pulls : [];
    const kind = { updated: 'known', unchanged: 'unknown', error: 'stuck' };
    const rows = list.map((p) => {
      const d = parseTime(p.time);
      const def = p.arch === 'arm64' ? `net/${p.network}-arm64.efi` : `net/${p.network}.efi`;
      const result = String(p.result || '');
      return el('tr', {},
        el('td', {}, d ? el('time', { datetime: d.toISOString() }, fmtTime(d)) : '—'),
        el('td', {}, el('code', {}, def)),
        el('td', {}, badge(kind[result] || 'unknown', result, p.error ? String(p.error) : undefined),
          p.error ? [' ', el('span', { class: 'muted', text: String(p.error) })] : ''),
        el('td', {}, p.kernel ? el('code', {}, String(p.kernel)) : '—'),
        el('td', {}, el('code', { class: 'hash' }, String(p.url || ''))));
    });
    $('#kernel-pulls tbody').replaceChildren(...rows);
    $('#pulls-empty').textContent = 'No kernel pull yet.';
    $('#pulls-empty').hidden = rows.length > 0;
  }

  // ---- start --------------------------------------------------------------------------------

  // autoRefresh runs even while the operator types in an assign form: rows are updated in
  // place, so the form, its focus and the scroll position stay.
  function autoRefresh() {
    if (!state.token || document.hidden || !$('#autorefresh').checked || $('#nodes-body').hidden) return;
    refreshNodes();
  }

  function start() {
    renderStaticLinks();
    const farmIn = $('#gen-farm');
    $('#gen-network').addEventListener('change', updateGenerator);
    farmIn.addEventListener('input', updateGenerator);
    farmIn.addEventListener('blur', () => { gen.farmTouched = true; updateGenerator(); });
    $('#gen-args').addEventListener('input', updateGenerator);
    $('#gen-kernel').addEventListener('change', updateGenerator);
    readGenParams();
    loadImages();
    $('#gen-form').addEventListener('submit', (e) => { e.preventDefault(); gen.farmTouched = true; updateGenerator(); });

    $('#token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      useToken($('#token').value.trim(), $('#token-keep').checked);
    });
    $('#token-forget').addEventListener('click', forgetToken);
    $('#refresh').addEventListener('click', () => { refreshNodes(); loadNetworks(); });

    readURL();
    renderSortHeaders();
    $('#node-search').addEventListener('submit', (e) => {
      e.preventDefault();
      clearTimeout(view.searchTimer);
      view.q = $('#node-q').value.trim().slice(0, 100);
      search();
    });
    // Searching as the operator types, a moment after the last key.
    $('#node-q').addEventListener('input', () => {
      clearTimeout(view.searchTimer);
      view.searchTimer = setTimeout(() => {
        const q = $('#node-q').value.trim().slice(0, 100);
        if (q === view.q) return;
        view.q = q;
        search();
      }, 150);
    });
    $('#node-state').addEventListener('change', () => { view.state = $('#node-state').value; search(); });
    for (const name of Object.keys(TABLES)) {
      for (const b of document.querySelectorAll(`#${name} thead button.sort`)) {
        b.addEventListener('click', () => sortBy(name, b.dataset.sort));
      }
      $(`#${name}-prev`).addEventListener('click', () => page(name, -1));
      $(`#${name}-next`).addEventListener('click', () => page(name, 1));
    }
    $('#kernels-refresh').addEventListener('click', () => { refreshKernels(); loadNetworks(); });

    loadNetworks();
    updateGenerator();

    let saved = '';
    try { saved = sessionStorage.getItem(TOKEN_KEY) || ''; } catch { /* storage disabled */ }
    if (saved) {
      $('#token-keep').checked = true;
      useToken(saved, true);
    }
    state.timer = setInterval(autoRefresh, 10000);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
