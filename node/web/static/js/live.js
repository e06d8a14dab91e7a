// Live parts of the pages, fed by the node's event stream (GET /v1/events, a WebSocket of JSON events).
//
// New blocks and transactions are added as table rows built with DOM calls and textContent, never HTML
// strings, so a hostile name or message stays text. Every other module hears blocks through a
// "carbonchain:block" event on the document (a verification waiting for its certifying block, say).

const RECONNECT_MS_MAX = 10000;
const MINUTE_MS = 60000;

function cell(row, content, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (content instanceof Node) td.append(content); else td.textContent = content;
  row.append(td);
  return td;
}

function link(href, text, className, title) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  if (className) a.className = className;
  if (title) a.title = title;
  return a;
}

function short(hex, keep = 12) { return hex.length > keep + 1 ? `${hex.slice(0, keep)}…` : hex; }

export function formatUtc(timeMs) {
  return `${new Date(timeMs).toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

function timeElement(timeMs) {
  const time = document.createElement("time");
  time.dateTime = new Date(timeMs).toISOString();
  time.textContent = formatUtc(timeMs);
  return time;
}

function prepend(tbody, row) {
  tbody.querySelectorAll("tr.empty").forEach((empty) => empty.remove());
  row.classList.add("is-new");
  tbody.prepend(row);
  const max = Number(tbody.dataset.rowsMax || 20);
  while (tbody.rows.length > max) tbody.deleteRow(tbody.rows.length - 1);
}

function addBlockRow(tbody, event) {
  if (tbody.querySelector(`tr[data-height="${event.height}"]`)) return;
  const columns = tbody.closest("table").tHead.rows[0].cells.length;
  const row = document.createElement("tr");
  row.dataset.height = String(event.height);
  cell(row, link(`/blocks/${event.height}`, `#${event.height}`, "height"));
  cell(row, timeElement(event.time_ms));
  cell(row, String(event.tx_count), "num");
  const details = columns === 6 ? [cell(row, "…", "muted"), cell(row, "…", "muted")] : null;
  const hash = document.createElement("code");
  hash.className = "hex";
  hash.title = event.hash;
  hash.textContent = short(event.hash, 16);
  cell(row, hash);
  prepend(tbody, row);
  if (details) fillBlockDetails(tbody, event.height, details);
}

// The block list also shows proposer and signatures, which the block event does not carry: ask the API.
async function fillBlockDetails(tbody, height, [proposerCell, signaturesCell]) {
  // Validators are named by permanent number ("number:org ..."); sets by the first height they certify
  // ("first_height:size ...", oldest first), since governance changes the set.
  const table = tbody.closest("table");
  const pairs = (text) => (text || "").split(" ").filter(Boolean).map((pair) => pair.split(":"));
  const orgs = new Map(pairs(table.dataset.validatorOrgs).map(([number, org]) => [Number(number), org]));
  const sizes = pairs(table.dataset.validatorSets).map(([first, size]) => [Number(first), Number(size)]);
  const response = await fetch(`/v1/blocks/${height}`);
  if (!response.ok) return;
  const block = await response.json();
  const proposer = block.header.proposer;
  const org = orgs.get(proposer);
  proposerCell.className = "";
  proposerCell.replaceChildren(org ? link(`/orgs/${org}`, org, "org") : String(proposer));
  signaturesCell.className = "";
  const certificate = block.certificate;
  const inForce = sizes.filter(([first]) => first <= height).pop();
  signaturesCell.textContent = certificate
    ? `${certificate.votes.length} of ${inForce ? inForce[1] : "?"} (view ${certificate.view})`
    : "no certificate yet";
}

function addTxRow(tbody, event) {
  const row = document.createElement("tr");
  row.dataset.txId = event.tx_id;
  cell(row, link(`/blocks/${event.height}`, `#${event.height}`, "height"));
  cell(row, link(`/txs/${event.tx_id}`, short(event.tx_id), "hex", event.tx_id));
  cell(row, link(`/orgs/${encodeURIComponent(event.sender_org)}`, event.sender_org, "org"));
  const fn = document.createElement("code");
  fn.textContent = event.function;
  cell(row, fn);
  const code = document.createElement("span");
  code.className = `code code-${event.code === "ok" ? "ok" : "failed"}`;
  code.textContent = event.code;
  cell(row, code);
  prepend(tbody, row);
}

function updateTexts(event) {
  document.querySelectorAll('[data-live-text="height"]').forEach((element) => {
    element.textContent = String(event.height);
    if (element.tagName === "A") element.href = `/blocks/${event.height}`;
  });
  document.querySelectorAll('[data-live-text="hash"]').forEach((element) => {
    element.textContent = short(event.hash, 16);
    element.title = event.hash;
  });
}

// The throughput chart: add the block's transactions to its minute, moving the window on when a new
// minute starts, and rescale the columns to the new peak.
function updateThroughput(event) {
  const chart = document.getElementById("throughput-chart");
  if (!chart) return;
  const groups = [...chart.querySelectorAll(".bar-group")];
  if (groups.length === 0) return;
  const buckets = groups.map((g) => ({ start: Number(g.dataset.startMs), txs: Number(g.dataset.txs) }));
  const minute = Math.floor(event.time_ms / MINUTE_MS) * MINUTE_MS;
  while (minute > buckets[buckets.length - 1].start) {
    buckets.shift();
    buckets.push({ start: buckets[buckets.length - 1].start + MINUTE_MS, txs: 0 });
  }
  const bucket = buckets.find((b) => b.start === minute);
  if (bucket) bucket.txs += event.tx_count;
  const plotHeight = Number(chart.dataset.plotHeight);
  const peak = Math.max(...buckets.map((b) => b.txs));
  groups.forEach((group, i) => {
    const { start, txs } = buckets[i];
    const height = peak > 0 ? Math.round(((plotHeight - 16) * txs * 10) / peak) / 10 : 0;
    const rect = group.querySelector("rect");
    rect.setAttribute("height", String(height));
    rect.setAttribute("y", String(plotHeight - height));
    const [value, label] = group.querySelectorAll("text");
    const hhmm = new Date(start).toISOString().slice(11, 16);
    value.textContent = String(txs);
    value.setAttribute("y", String(Math.max(plotHeight - height - 3, 10)));
    label.textContent = hhmm;
    group.querySelector("title").textContent = `${hhmm} UTC: ${txs} transactions`;
    group.dataset.startMs = String(start);
    group.dataset.txs = String(txs);
  });
  const total = document.querySelector('[data-live-text="throughput-total"]');
  if (total) total.textContent = String(buckets.reduce((sum, b) => sum + b.txs, 0));
}

function setState(text, live) {
  const state = document.getElementById("live-state");
  if (!state) return;
  state.textContent = text;
  state.classList.toggle("is-live", live);
}

export function startLive() {
  const blockBodies = [...document.querySelectorAll('tbody[data-live="blocks"]')];
  const txBodies = [...document.querySelectorAll('tbody[data-live="txs"]')];
  const waitingTx = document.querySelector('[data-live="tx"]');
  const query = waitingTx ? `?tx=${encodeURIComponent(waitingTx.dataset.txId)}` : "";
  let delay = 500;

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/v1/events${query}`);
    socket.addEventListener("open", () => { delay = 500; setState("live", true); });
    socket.addEventListener("message", (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      if (event.type === "block") {
        blockBodies.forEach((tbody) => addBlockRow(tbody, event));
        updateTexts(event);
        updateThroughput(event);
        document.dispatchEvent(new CustomEvent("carbonchain:block", { detail: event }));
      } else if (event.type === "tx") {
        txBodies.forEach((tbody) => addTxRow(tbody, event));
        if (waitingTx && event.tx_id === waitingTx.dataset.txId) location.reload();
      } else if (event.type === "dropped") {
        setState("fell behind; reconnecting", false);
      }
    });
    socket.addEventListener("close", () => {
      setState("reconnecting", false);
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, RECONNECT_MS_MAX);
    });
  }
  connect();
}
