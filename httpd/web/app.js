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
  function bootPath(network, farm, args) {
    let p = `/${encodeURIComponent(network)}/${farm}`;
    if (args) p += `/${encodeURIComponent(args.replaceAll('/', '___'))}`;
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
    nodes: [],
    discovered: [],
    expanded: new Set(), // "<table>:<mac>" of open rows
    details: new Map(), // "<table>:<mac>" -> {row, known} kept across refreshes
    timer: 0,
    seq: 0,
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
      table.hidden = true;
      $('tbody', table).replaceChildren();
      if (!net) status.textContent = state.networksError ? 'No network to choose from.' : 'Choose a network.';
      else if (farm.error) status.textContent = 'Enter a valid farm id to see the links.';
      else status.textContent = 'Fix the extra arguments to see the links.';
      return;
    }
    const p = bootPath(net.name, farm.farm, args.args);
    const rows = MEDIA.map((m) => linkRow(m.name, `/${m.ep}${p}${m.query || ''}`, m.use,
      m.file ? m.file(net.name) : false));
    $('tbody', table).replaceChildren(...rows);
    table.hidden = false;
    status.textContent = `Links for network ${net.name}, farm ${farm.farm}` +
      (args.args ? `, extra arguments “${args.args}”.` : ', no extra arguments.');
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
    // Assign forms already open keep their choice.
    for (const s of document.querySelectorAll('select.assign-network')) {
      const v = s.value;
      s.replaceChildren(...state.networks.map(networkOption));
      if (networkByName(v)) s.value = v;
    }
    updateGenerator();
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
    $('#discovered tbody').replaceChildren();
    $('#known tbody').replaceChildren();
    lock('Token forgotten.', false);
  }

  // ---- nodes --------------------------------------------------------------------------------

  // refreshNodes loads both lists and redraws them; false when the token was refused.
  async function refreshNodes() {
    // Overlapping refreshes (timer, button, after an assign) are fine: only the latest draws.
    const seq = ++state.seq;
    try {
      const [nodes, discovered] = await Promise.all([api('/api/v1/nodes'), api('/api/v1/discovered')]);
      if (seq !== state.seq) return true;
      state.nodes = Array.isArray(nodes) ? nodes : [];
      state.discovered = Array.isArray(discovered) ? discovered : [];
      showMsg($('#nodes-error'), '');
      renderNodes();
      $('#nodes-updated').textContent = `Updated ${fmtTime(new Date())}.`;
      return true;
    } catch (e) {
      if (seq !== state.seq && e.status !== 401) return true;
      onAPIError(e, $('#nodes-error'));
      return e.status !== 401;
    }
  }

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

  function renderNodes() {
    const seen = new Map(state.discovered.map((d) => [d.mac, d]));
    const disc = [...state.discovered].sort((a, b) =>
      String(b.last_seen || '').localeCompare(String(a.last_seen || '')) || String(a.mac).localeCompare(String(b.mac)));
    const known = [...state.nodes].sort((a, b) => String(a.mac).localeCompare(String(b.mac)));

    renderTable('discovered', disc, 9, (d) => [
      el('td', { class: 'state' }, stateBadges(d, d.known)),
      el('td', { text: d.arch || '—' }),
      el('td', {}, d.ip ? el('code', {}, d.ip) : '—'),
      stageCell(d.last_stage),
      timeCell(d.first_seen),
      timeCell(d.last_seen),
      el('td', { class: 'num', text: String(d.count ?? '') }),
      el('td', {}, d.known ? '' : el('button', {
        type: 'button', class: 'assign-open', 'aria-label': `Assign ${d.mac}`,
        onclick: () => openRow('discovered', d.mac, true),
      }, 'Assign…')),
    ], (d) => !d.known);

    renderTable('known', known, 8, (n) => {
      const d = seen.get(n.mac);
      return [
        el('td', { class: 'state' }, d && d.last_stage ? el('code', {}, d.last_stage) : el('span', { class: 'muted' }, '—'),
          d && d.stuck ? [' ', badge('stuck', 'stuck', `No progress since “${d.last_stage || '?'}”`)] : ''),
        el('td', {}, el('code', {}, n.network)),
        el('td', { class: 'num', text: String(n.farm) }),
        el('td', {}, n.args ? el('code', {}, n.args) : el('span', { class: 'muted' }, '—')),
        el('td', {}, n.kernel ? el('code', {}, n.kernel) : el('span', { class: 'muted' }, 'network default')),
        d ? timeCell(d.last_seen) : el('td', { class: 'muted', text: 'never' }),
        timeCell(n.updated),
      ];
    }, () => false);

    $('#discovered-empty').hidden = disc.length > 0;
    $('#known-empty').hidden = known.length > 0;
  }

  // renderTable redraws a node table. Rows that were open stay open and keep their detail row
  // (and any half-filled assign form); their timeline is reloaded.
  function renderTable(table, items, cols, cells, canAssign) {
    const tbody = $(`#${table} tbody`);
    const rows = [];
    const keep = new Set();
    for (const item of items) {
      const mac = String(item.mac);
      const key = `${table}:${mac}`;
      const open = state.expanded.has(key);
      const detailId = `detail-${table}-${mac.replace(/[^0-9a-zA-Z]/g, '')}`;
      const toggle = el('button', {
        type: 'button', class: 'expander', 'aria-expanded': open ? 'true' : 'false', 'aria-controls': detailId,
        title: 'Show or hide the boot timeline',
        onclick: () => (state.expanded.has(key) ? closeRow(table, mac) : openRow(table, mac, false)),
      }, el('code', {}, mac));
      const row = el('tr', { class: 'main', dataset: { mac } }, el('td', {}, toggle), ...cells(item));
      rows.push(row);
      if (open) {
        const assign = canAssign(item);
        let det = state.details.get(key);
        if (!det || det.assign !== assign) {
          det = { row: detailRow(table, mac, cols, detailId, assign), assign };
          state.details.set(key, det);
        }
        rows.push(det.row);
        keep.add(key);
        loadEvents(det.row, mac);
      }
    }
    for (const key of [...state.details.keys()]) {
      if (key.startsWith(`${table}:`) && !keep.has(key)) state.details.delete(key);
    }
    for (const key of [...state.expanded]) {
      if (key.startsWith(`${table}:`) && !keep.has(key)) state.expanded.delete(key);
    }
    tbody.replaceChildren(...rows);
  }

  function openRow(table, mac, focusAssign) {
    state.expanded.add(`${table}:${mac}`);
    renderNodes();
    if (focusAssign) {
      const det = state.details.get(`${table}:${mac}`);
      const sel = det && $('select', det.row);
      if (sel) sel.focus();
    }
  }

  function closeRow(table, mac) {
    state.expanded.delete(`${table}:${mac}`);
    renderNodes();
  }

  function detailRow(table, mac, cols, id, assign) {
    const timeline = el('div', { class: 'timeline' },
      el('h4', {}, `Boot timeline of ${mac}`),
      el('p', { class: 'help events-status', role: 'status' }, 'Loading…'),
      el('table', { class: 'events', hidden: true },
        el('thead', {}, el('tr', {},
          el('th', { scope: 'col' }, 'Time'), el('th', { scope: 'col' }, 'After'),
          el('th', { scope: 'col' }, 'Stage'), el('th', { scope: 'col' }, 'Detail'))),
        el('tbody')));
    return el('tr', { class: 'detail', id, dataset: { mac } },
      el('td', { colspan: cols }, el('div', { class: 'detail-body' }, assign ? assignForm(mac) : null, timeline)));
  }

  async function loadEvents(row, mac) {
    const status = $('.events-status', row);
    const table = $('table.events', row);
    try {
      const evs = await api(`/api/v1/nodes/${encodeURIComponent(mac)}/events`);
      const list = Array.isArray(evs) ? evs : [];
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
  }

  // ---- start --------------------------------------------------------------------------------

  function autoRefresh() {
    if (!state.token || document.hidden || !$('#autorefresh').checked || $('#nodes-body').hidden) return;
    // Redrawing while the operator types in an assign form would move the focus away.
    const a = document.activeElement;
    if (a && a.closest && a.closest('form.assign')) return;
    refreshNodes();
  }

  function start() {
    renderStaticLinks();
    const farmIn = $('#gen-farm');
    $('#gen-network').addEventListener('change', updateGenerator);
    farmIn.addEventListener('input', updateGenerator);
    farmIn.addEventListener('blur', () => { gen.farmTouched = true; updateGenerator(); });
    $('#gen-args').addEventListener('input', updateGenerator);
    $('#gen-form').addEventListener('submit', (e) => { e.preventDefault(); gen.farmTouched = true; updateGenerator(); });

    $('#token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      useToken($('#token').value.trim(), $('#token-keep').checked);
    });
    $('#token-forget').addEventListener('click', forgetToken);
    $('#refresh').addEventListener('click', () => { refreshNodes(); loadNetworks(); });
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
