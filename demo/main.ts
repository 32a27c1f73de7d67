/**
 * The demo page: node cards, SQL console, network controls, write burst plot and timeline.
 * Plain DOM; every element a test needs carries a data-testid or data-* state attribute.
 */
import { BurstPlot } from './burst-plot.ts';
import { DemoCluster, NODES_MAX, addressOf, indexOf, type NodeView, type TimelineEvent } from './demo-cluster.ts';
import { LivePanel } from './live-panel.ts';
import { memoryLine, memoryTitle } from './memory-line.ts';
import { SqlConsole, type ConsoleResult } from './sql-console.ts';
import { WriteBurst } from './write-burst.ts';

const EVENTS_SHOWN_MAX = 300;
const BURST_BUCKET_MS = 250;

function $(id: string): HTMLElement {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page lacks #${id}`);
  return element;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') element.className = value;
    else element.setAttribute(key, value);
  }
  for (const child of children) element.append(child);
  return element;
}

function clock(atMs: number): string {
  return new Date(atMs).toLocaleTimeString([], { hour12: false });
}

function ago(atMs: number | undefined): string {
  if (atMs === undefined) return '—';
  const seconds = Math.max(0, Math.round((Date.now() - atMs) / 1000));
  return seconds < 60 ? `${seconds}s ago` : `${Math.round(seconds / 60)}m ago`;
}

// ------------------------------------------------------------------------------ node cards

interface Card {
  root: HTMLElement;
  badge: HTMLElement;
  fields: Record<'term' | 'commit' | 'applied' | 'last' | 'wal' | 'pending' | 'checkpoint' | 'snapshot', HTMLElement>;
  peers: HTMLElement;
  memory: HTMLElement;
  error: HTMLElement;
  killButton: HTMLButtonElement;
  isolateButton: HTMLButtonElement;
}

const cards = new Map<number, Card>();
/** The live query panel of each node's card, kept across the card's life and the node's restarts. */
const livePanels = new Map<number, LivePanel>();

function livePanelOf(index: number): LivePanel {
  let panel = livePanels.get(index);
  if (!panel) livePanels.set(index, (panel = new LivePanel()));
  return panel;
}

function makeCard(view: NodeView): Card {
  const field = (): HTMLElement => el('dd', {}, '—');
  const fields = { term: field(), commit: field(), applied: field(), last: field(), wal: field(), pending: field(), checkpoint: field(), snapshot: field() };
  const badge = el('span', { class: 'badge', 'data-testid': 'role' }, 'starting');
  const peers = el('dd', { class: 'peers' });
  const memory = el('div', { class: 'memory', 'data-testid': 'memory' });
  const error = el('div', { class: 'error' });
  const killButton = el('button', { 'data-testid': 'kill' }, 'Kill');
  const isolateButton = el('button', { 'data-testid': 'isolate' }, 'Isolate');
  killButton.addEventListener('click', () => {
    if (cluster.nodes().find((n) => n.index === view.index)?.alive) cluster.kill(view.index);
    else void cluster.restart(view.index);
  });
  isolateButton.addEventListener('click', () => {
    if (cluster.nodes().find((n) => n.index === view.index)?.isolated) cluster.heal(view.index);
    else cluster.isolate(view.index);
  });
  const stats = el(
    'dl',
    { class: 'stats' },
    el('dt', {}, 'term'), fields.term,
    el('dt', {}, 'commit index'), fields.commit,
    el('dt', {}, 'applied index'), fields.applied,
    el('dt', {}, 'last log index'), fields.last,
    el('dt', {}, 'WAL frames'), fields.wal,
    el('dt', { title: 'transactions waiting for a majority to store them' }, 'writes waiting'), fields.pending,
    el('dt', {}, 'last checkpoint'), fields.checkpoint,
    el('dt', {}, 'snapshots'), fields.snapshot,
    el('dt', {}, 'reachable'), peers,
  );
  const root = el(
    'article',
    { class: 'card', 'data-testid': 'node-card', 'data-node': String(view.index) },
    el('span', { class: 'flag' }, 'ISOLATED'),
    el('div', { class: 'card-head' }, el('span', { class: 'card-title' }, view.address), badge),
    stats,
    livePanelOf(view.index).root,
    memory,
    error,
    el('div', { class: 'card-actions' }, killButton, isolateButton),
  );
  return { root, badge, fields, peers, memory, error, killButton, isolateButton };
}

function renderNodes(nodes: readonly NodeView[]): void {
  const container = $('nodes');
  for (const view of nodes) {
    let card = cards.get(view.index);
    if (!card) {
      card = makeCard(view);
      cards.set(view.index, card);
      container.append(card.root);
    }
    updateCard(card, view, nodes);
  }
  for (const [index, card] of cards) {
    if (!nodes.some((n) => n.index === index)) {
      card.root.remove();
      cards.delete(index);
      livePanels.get(index)?.detach('removed');
      livePanels.delete(index);
    }
  }
  renderSummary(nodes);
  syncNodeSelects(nodes);
}

function updateCard(card: Card, view: NodeView, all: readonly NodeView[]): void {
  const status = view.status;
  const role = !view.alive ? 'killed' : view.phase === 'failed' ? 'failed' : status ? status.state : view.phase;
  const root = card.root;
  root.dataset['state'] = role;
  root.dataset['alive'] = String(view.alive);
  root.dataset['isolated'] = String(view.isolated);
  root.dataset['applied'] = String(status?.appliedIndex ?? -1);
  root.dataset['commit'] = String(status?.commitIndex ?? -1);
  root.dataset['term'] = String(status?.term ?? -1);
  // Node ids are random; the page names nodes by their index, so the leader is named that way too.
  const leader = status?.members.find((m) => m.id === status.leaderId);
  root.dataset['leaderId'] = String(leader ? indexOf(leader.address) : 0);
  root.classList.toggle('leader', role === 'leader');
  root.classList.toggle('dead', !view.alive);
  root.classList.toggle('isolated', view.isolated);
  card.badge.className = `badge ${role}`;
  card.badge.textContent = role === 'leader' ? '★ leader' : role === 'joining' ? 'joining…' : role;
  const db = status?.databases.find((d) => d.name === 'demo') ?? status?.databases[0];
  card.fields.term.textContent = status ? String(status.term) : '—';
  card.fields.commit.textContent = status ? String(status.commitIndex) : '—';
  card.fields.applied.textContent = status ? String(status.appliedIndex) : '—';
  card.fields.last.textContent = status ? String(status.lastIndex) : '—';
  card.fields.wal.textContent = db ? String(db.walFrames) : '—';
  const pending = status?.databases.reduce((sum, d) => sum + d.pending, 0);
  card.fields.pending.textContent = pending === undefined ? '—' : String(pending);
  card.fields.pending.classList.toggle('waiting', (pending ?? 0) > 0);
  card.fields.checkpoint.textContent = status ? `#${status.checkpoints} · ${ago(view.lastCheckpointAtMs)}` : '—';
  card.fields.snapshot.textContent = status ? `${status.snapshots} (at ${status.snapshotIndex})` : '—';
  card.peers.replaceChildren();
  if (status) {
    const reachable = new Set(status.reachablePeers);
    for (const member of status.members) {
      if (member.id === status.id) continue;
      card.peers.append(
        el(
          'span',
          { class: reachable.has(member.id) ? 'chip' : 'chip idle', title: reachable.has(member.id) ? 'connected' : 'no open connection' },
          member.address.replace('node-', 'n'),
        ),
      );
    }
  }
  // Shown only by nodes whose status reports memory.
  const memory = status?.memory;
  card.memory.textContent = memory ? memoryLine(memory) : '';
  card.memory.title = memory ? memoryTitle(memory) : '';
  card.memory.hidden = !memory;
  card.error.textContent = view.error ?? '';
  if (!view.alive) livePanelOf(view.index).detach('node down: the panel follows it again once it restarts');
  card.killButton.textContent = view.alive ? 'Kill' : 'Restart';
  card.killButton.dataset['testid'] = view.alive ? 'kill' : 'restart';
  card.isolateButton.textContent = view.isolated ? 'Heal' : 'Isolate';
  card.isolateButton.dataset['testid'] = view.isolated ? 'heal' : 'isolate';
  card.isolateButton.disabled = all.length < 2;
}

function renderSummary(nodes: readonly NodeView[]): void {
  const summary = $('cluster-summary');
  const leader = nodes.find((n) => n.status?.state === 'leader' && !n.isolated) ?? nodes.find((n) => n.status?.state === 'leader');
  const alive = nodes.filter((n) => n.alive).length;
  summary.textContent = leader
    ? `${alive}/${nodes.length} nodes up · leader ${leader.address} · term ${leader.status!.term}`
    : `${alive}/${nodes.length} nodes up · no leader`;
  const impaired = nodes.some((n) => !n.alive || n.isolated);
  summary.className = `cluster-summary ${leader && !impaired ? 'healthy' : 'degraded'}`;
  ($('add-node') as HTMLButtonElement).disabled = nodes.length >= NODES_MAX || adding;
}

let knownNodeCount = -1;
function syncNodeSelects(nodes: readonly NodeView[]): void {
  if (nodes.length === knownNodeCount) return;
  knownNodeCount = nodes.length;
  const target = $('sql-target') as HTMLSelectElement;
  const selected = target.value;
  target.replaceChildren(el('option', { value: 'leader' }, 'the leader (follow it)'));
  for (const n of nodes) target.append(el('option', { value: n.address }, `${n.address} only`));
  target.value = nodes.some((n) => n.address === selected) ? selected : 'leader';
  for (const [id, fallback] of [['link-a', 0], ['link-b', 1]] as const) {
    const select = $(id) as HTMLSelectElement;
    const value = select.value;
    const keep = nodes.some((n) => String(n.index) === value) && !(id === 'link-b' && value === ($('link-a') as HTMLSelectElement).value);
    select.replaceChildren(...nodes.map((n) => el('option', { value: String(n.index) }, n.address)));
    select.value = keep ? value : String(nodes[Math.min(fallback, nodes.length - 1)]?.index ?? '');
  }
}

// --------------------------------------------------------------------------------- timeline

function addEvent(event: TimelineEvent): void {
  const list = $('events');
  list.prepend(
    el(
      'li',
      { 'data-kind': event.kind },
      el('span', { class: 'time' }, clock(event.atMs)),
      el('span', { class: `kind ${event.kind}` }, event.kind),
      el('span', {}, event.text),
    ),
  );
  while (list.children.length > EVENTS_SHOWN_MAX) list.lastElementChild?.remove();
}

// ---------------------------------------------------------------------------------- console

function renderResult(result: ConsoleResult): void {
  const box = $('sql-result');
  const meta = `via ${result.via} · ${result.elapsedMs.toFixed(1)} ms`;
  box.dataset['kind'] = result.kind;
  if (result.kind === 'error') {
    box.className = 'result error';
    box.replaceChildren(
      el('div', { class: 'meta' }, meta),
      el('div', { class: 'message', 'data-testid': 'sql-error' }, result.message),
      el('div', { class: 'hint' }, result.hint),
    );
    return;
  }
  box.className = 'result ok';
  if (result.kind === 'exec') {
    box.replaceChildren(
      el('div', { class: 'meta' }, meta),
      el('div', { 'data-testid': 'sql-exec' }, `${result.rowsAffected} row${result.rowsAffected === 1 ? '' : 's'} affected · last insert id ${String(result.lastInsertId)}`),
    );
    return;
  }
  const table = el('table', { 'data-testid': 'sql-table' });
  table.append(el('thead', {}, el('tr', {}, ...result.columns.map((c) => el('th', {}, c)))));
  const body = el('tbody');
  for (const row of result.rows) {
    body.append(
      el('tr', {}, ...row.map((value) => (value === null ? el('td', { class: 'null' }, 'NULL') : el('td', {}, value instanceof Uint8Array ? `<${value.byteLength} bytes>` : String(value))))),
    );
  }
  table.append(body);
  box.replaceChildren(
    el('div', { class: 'meta' }, `${meta} · ${result.rows.length}${result.truncated ? '+' : ''} row${result.rows.length === 1 ? '' : 's'}`),
    table,
  );
}

let running = false;
async function runSql(): Promise<void> {
  if (running) return;
  const sql = ($('sql') as HTMLTextAreaElement).value.trim();
  if (!sql) return;
  const target = ($('sql-target') as HTMLSelectElement).value;
  running = true;
  const button = $('sql-run') as HTMLButtonElement;
  button.disabled = true;
  const box = $('sql-result');
  box.className = 'result pending';
  box.dataset['kind'] = 'pending';
  const started = performance.now();
  const meta = el('div', { class: 'meta' }, `waiting for ${target === 'leader' ? 'the leader' : target}…`);
  box.replaceChildren(meta);
  const ticker = setInterval(() => {
    meta.textContent = `waiting for ${target === 'leader' ? 'the leader' : target}… ${((performance.now() - started) / 1000).toFixed(1)} s (a write needs a majority to store it)`;
  }, 100);
  try {
    renderResult(await sqlConsole.run(sql, target));
  } finally {
    clearInterval(ticker);
    running = false;
    button.disabled = false;
  }
}

// ------------------------------------------------------------------------------------ burst

const burst = new WriteBurst();
async function toggleBurst(): Promise<void> {
  const button = $('burst-run') as HTMLButtonElement;
  const stats = $('burst-stats');
  if (burst.isRunning) {
    burst.stop();
    return;
  }
  button.textContent = 'Stop burst';
  let lastError = '';
  const writers = Number(($('burst-writers') as HTMLSelectElement).value);
  const seconds = Number(($('burst-seconds') as HTMLSelectElement).value);
  plot.clear(Math.min(240, Math.max(8, (seconds * 1000) / BURST_BUCKET_MS)));
  addEvent({ atMs: Date.now(), kind: 'info', text: `write burst: ${writers} writers for ${seconds} s` });
  const total = await burst.run({
    dial: cluster.consoleEndpoint.dialStream,
    servers: cluster.addresses(),
    writers,
    durationMs: seconds * 1000,
    bucketMs: BURST_BUCKET_MS,
    onSample: (sample) => {
      plot.add(sample);
      stats.textContent = `${burst.rowsWritten} rows · ${Math.round(sample.rowsPerSecond)} rows/s · p50 ${sample.latencyP50Ms.toFixed(1)} ms · p99 ${sample.latencyP99Ms.toFixed(1)} ms${sample.errors ? ` · ${sample.errors} errors` : ''}`;
    },
    onError: (message) => {
      lastError = message;
    },
  });
  button.textContent = 'Start burst';
  stats.textContent = `${total} rows committed${lastError ? ` · last error: ${lastError}` : ''}`;
  addEvent({ atMs: Date.now(), kind: 'info', text: `write burst done: ${total} rows committed` });
}

// ------------------------------------------------------------------------------------- wiring

let adding = false;
const cluster = new DemoCluster({
  workerUrl: new URL('./in-page-worker.js', import.meta.url),
  onEvent: addEvent,
  onUpdate: renderNodes,
  onNodeRunning: (index, node) => livePanelOf(index).attach(node),
});
const sqlConsole = new SqlConsole(cluster.consoleEndpoint.dialStream, () => Array.from({ length: NODES_MAX }, (_, i) => addressOf(i + 1)));
const plot = new BurstPlot($('burst-plot') as HTMLCanvasElement);

$('sql-run').addEventListener('click', () => void runSql());
$('sql').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    void runSql();
  }
});
for (const button of document.querySelectorAll<HTMLButtonElement>('.examples button')) {
  button.addEventListener('click', () => {
    ($('sql') as HTMLTextAreaElement).value = button.dataset['sql'] ?? '';
    void runSql();
  });
}
$('burst-run').addEventListener('click', () => void toggleBurst());
$('heal-all').addEventListener('click', () => {
  cluster.heal();
  for (const link of cluster.broker.impairedLinks()) cluster.setLinkDelay(indexOf(link.a), indexOf(link.b), 0);
  renderLinks();
});
$('link-apply').addEventListener('click', () => {
  const a = Number(($('link-a') as HTMLSelectElement).value);
  const b = Number(($('link-b') as HTMLSelectElement).value);
  const delayMs = Number(($('link-delay') as HTMLSelectElement).value);
  if (a === b) {
    $('link-state').textContent = 'pick two different nodes';
    return;
  }
  cluster.setLinkDelay(a, b, delayMs);
  renderLinks();
});
$('add-node').addEventListener('click', async () => {
  adding = true;
  try {
    await cluster.addNode();
  } catch (error) {
    addEvent({ atMs: Date.now(), kind: 'error', text: (error as Error).message });
  } finally {
    adding = false;
  }
});
$('reset').addEventListener('click', async () => {
  const count = Number(($('node-count') as HTMLSelectElement).value);
  burst.stop();
  sqlConsole.close();
  await cluster.reset();
  $('events').replaceChildren();
  knownNodeCount = -1;
  await start(count);
});

function renderLinks(): void {
  const slow = cluster.broker.impairedLinks().filter((l) => l.delayMs > 0);
  $('link-state').textContent = slow.length ? `slow: ${slow.map((l) => `${l.a}↔${l.b} ${l.delayMs} ms`).join(', ')}` : 'all links at full speed';
}

async function start(count: number): Promise<void> {
  try {
    await cluster.startCluster(count);
    const leader = await cluster.waitForLeader();
    addEvent({ atMs: Date.now(), kind: 'leader', text: `cluster ready: ${leader.address} leads term ${leader.status!.term}` });
    document.body.dataset['ready'] = 'true';
  } catch (error) {
    addEvent({ atMs: Date.now(), kind: 'error', text: `could not start the cluster: ${(error as Error).message}` });
  }
}

/**
 * Nodes hold their OPFS files open; a second tab of the demo would fight over them. The tab that
 * holds this lock runs the cluster; others wait (and say why) until it closes.
 */
async function holdTabLock(): Promise<void> {
  if (!navigator.locks) return;
  await new Promise<void>((resolve) => {
    const notice = setTimeout(() => {
      addEvent({ atMs: Date.now(), kind: 'error', text: 'this demo is open in another tab, whose nodes hold the OPFS storage: close that tab and this one takes over' });
    }, 1500);
    void navigator.locks.request('dqlite-wasm-demo', () => {
      clearTimeout(notice);
      resolve();
      // Held until the page goes away.
      return new Promise<void>(() => {});
    });
  });
}

renderLinks();
void holdTabLock().then(() => start(DemoCluster.storedNodeCount() || 3));
