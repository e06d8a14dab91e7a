// The verification panels of the block, state, receipt and verify pages: fetch what to check, run the
// checks of verify.js against the trusted genesis, and show "verified" or exactly what failed.
// Every text is set with textContent; section.dataset.result ("verified", "failed", "waiting",
// "unavailable") is what the browser tests read.

import { decode, fromHex } from "./codec.js";
import { isAvailable } from "./crypto.js";
import {
  CheckFailed, Report, decodeCertifiedBlock, readGenesis, sameJsonView, verifyBlock, verifyCertifyingHeader, verifyHandovers,
  verifyProofDocument, verifyReceipt, verifyResults,
} from "./verify.js";

const GENESIS_STORAGE = "carbonchain.genesis";
const utf8 = new TextEncoder();

function storage() {
  try { return window.localStorage; } catch { return null; }
}

// The genesis whose validator keys count: the viewer's own file if they loaded one, else the node's,
// whose hash is recomputed here either way.
export async function trustedGenesis() {
  const stored = storage()?.getItem(GENESIS_STORAGE);
  if (stored) return readGenesis(stored, "your genesis file");
  const response = await fetch("/genesis.json");
  if (!response.ok) throw new Error(`the node did not serve its genesis (${response.status})`);
  return readGenesis(await response.text(), "the genesis this node serves");
}

function badge(text, kind) {
  const span = document.createElement("span");
  span.className = `badge badge-${kind}`;
  span.textContent = text;
  return span;
}

function show(section, report, result, message) {
  const list = section.querySelector(".checks");
  list.replaceChildren(...report.steps.map((step) => {
    const item = document.createElement("li");
    item.className = step.ok === true ? "check-ok" : step.ok === false ? "check-failed" : "check-note";
    const name = document.createElement("strong");
    name.textContent = `${step.check}: `;
    item.append(name, step.ok === false ? `FAILED: ${step.detail}` : step.detail);
    return item;
  }));
  const verdict = section.querySelector(".verdict");
  const label = { verified: "verified", failed: "failed", waiting: "waiting", unavailable: "cannot verify here" }[result];
  verdict.replaceChildren(badge(label, result === "unavailable" ? "failed" : result === "waiting" ? "pending" : result), " ", message);
  section.dataset.result = result;
  section.classList.toggle("is-verified", result === "verified");
  section.classList.toggle("is-failed", result === "failed" || result === "unavailable");
}

function showAnchor(section, genesis) {
  const anchor = section.querySelector("#trust-anchor");
  if (!anchor) return;
  anchor.textContent = `Checked in this browser against ${genesis.source}: genesis hash ${genesis.hash}, ` +
    `${genesis.keys.length} validator keys. Compare the hash with the one your consortium published, ` +
    "or load your own genesis file on the Verify page to trust no node at all.";
}

function failure(error) {
  if (error instanceof CheckFailed) return `${error.check}: ${error.detail}`;
  return error && error.message ? error.message : String(error);
}

// Run `check(report)`; a CheckFailed or any error shows as failed with its reason.
async function run(section, check) {
  const report = new Report();
  if (!isAvailable()) {
    show(section, report, "unavailable", "WebCrypto exists only in a secure context: open the dashboard over https, " +
      "or as http://localhost or 127.0.0.1 (an SSH tunnel to the node works), or check with `carbonchain audit`.");
    return;
  }
  try {
    const genesis = await trustedGenesis();
    showAnchor(section, genesis);
    const outcome = await check(report, genesis);
    if (outcome && outcome.waitFor) {
      show(section, report, "waiting", outcome.message);
      whenBlock(outcome.waitFor, () => run(section, check));
      return;
    }
    show(section, report, "verified", outcome && outcome.message ? outcome.message : "every check passed");
  } catch (error) {
    show(section, report, "failed", failure(error));
  }
}

function whenBlock(height, callback) {
  const listener = (event) => {
    if (event.detail.height >= height) {
      document.removeEventListener("carbonchain:block", listener);
      callback();
    }
  };
  document.addEventListener("carbonchain:block", listener);
}

async function fetchBlockBytes(height) {
  const response = await fetch(`/v1/blocks/${height}?format=msgpack`);
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`the node answered ${response.status} for block ${height}`);
  return new Uint8Array(await response.arrayBuffer());
}

// The set in force at `height`, proven from the genesis set by the chain's handovers (docs/protocol/audit.md):
// the node serves them; each is checked here, so a node cannot substitute a set of its own.
async function provenSet(report, genesis, height) {
  const response = await fetch(`/validator-sets.json?below=${height}`);
  if (!response.ok) throw new Error(`the node answered ${response.status} for the validator-set handovers`);
  const { validator_sets: handovers } = await response.json();
  return verifyHandovers(report, handovers, genesis, height);
}

// --- the block page ---------------------------------------------------------------------------------------

async function checkBlockPage(section, report, genesis) {
  const height = Number(section.dataset.height);
  const shown = { height, hash: section.dataset.hash, txIds: {}, codes: {} };
  document.querySelectorAll("#block-txs tr[data-tx-id]").forEach((row) => {
    const index = Number(row.cells[0].textContent);
    shown.txIds[index] = row.dataset.txId;
    shown.codes[index] = row.querySelector(".code").textContent;
  });
  const marks = new Map([...document.querySelectorAll("#signers tr[data-signer]")].map((row) => [Number(row.dataset.signer), row.querySelector(".signature-check")]));
  marks.forEach((mark) => mark.replaceChildren(badge("not checked", "pending")));
  const onVote = (index, ok) => marks.get(index)?.replaceChildren(badge(ok ? "verified" : "failed", ok ? "verified" : "failed"));
  const bytes = await fetchBlockBytes(height);
  report.require(bytes !== null, "block encoding", "the node has no certified bytes for this block");
  const validators = await provenSet(report, genesis, height);
  const { block } = await verifyBlock(report, bytes, genesis, shown, onVote, validators);
  const certifyingHeight = height + genesis.pipelineDepth;
  const certifying = await fetchBlockBytes(certifyingHeight);
  if (certifying === null) {
    report.steps.push({ check: "results", detail: `certified by block ${certifyingHeight}'s header, not committed yet`, ok: null });
    return { message: `the commit certificate holds a quorum of valid signatures from ${validators.name}` };
  }
  await verifyResults(report, block, certifying, genesis, await provenSet(new Report(), genesis, certifyingHeight));
  return { message: `a quorum of ${validators.name} signed this block, and its results are certified` };
}

// --- the state page ---------------------------------------------------------------------------------------

function keyBytes(text) { return text.startsWith("0x") ? fromHex(text.slice(2)) : utf8.encode(text); }

async function checkProof(report, genesis, key, document) {
  const value = await verifyProofDocument(report, key, document);
  const certifyingHeight = document.certified_by_height;
  const bytes = await fetchBlockBytes(certifyingHeight);
  if (bytes === null) {
    return { waitFor: certifyingHeight, value, message: `the proof is against the state after block ${document.height}; block ${certifyingHeight}, whose header certifies that state, is not committed yet (blocks come with transactions): checking again when it is` };
  }
  const certifying = await decodeCertifiedBlock(bytes);
  const validators = await provenSet(report, genesis, certifyingHeight);
  await verifyCertifyingHeader(report, certifying.header, certifying.certificate, genesis, document.height, fromHex(document.state_root), validators);
  return { value };
}

async function checkStatePage(report, genesis) {
  const document_ = JSON.parse(document.getElementById("proof-document").textContent);
  const outcome = await checkProof(report, genesis, keyBytes(document_.key), document_);
  if (outcome.waitFor) return outcome;
  const shown = outcome.value === null ? null : decode(outcome.value);
  report.require(outcome.value === null ? document_.value === null : sameJsonView(shown, document_.value), "value shown", "the value on the page is not the value proven");
  report.pass("value shown", "the value on this page is the proven one");
  return { message: "the value shown is in the state the genesis validators certified" };
}

// --- receipts ---------------------------------------------------------------------------------------------

function fieldText(name) {
  const element = document.querySelector(`#receipt-fields [data-field="${name}"]`);
  return element ? (element.dataset.value ?? element.textContent.trim()) : null;
}

async function checkReceiptPage(section, report, genesis) {
  const response = await fetch(section.dataset.document);
  if (response.status === 409) {
    const waiting = await response.json();
    report.steps.push({ check: "receipt", detail: waiting.message, ok: null });
    return { waitFor: waiting.certified_by_height, message: `${waiting.message}: checking again when it is` };
  }
  report.require(response.ok, "receipt", `the node answered ${response.status} for the receipt document`);
  const record = await verifyReceipt(report, await response.json(), genesis);
  for (const name of ["org", "beneficiary", "reason", "quantity_t"]) {
    const shown = fieldText(name);
    report.require(shown === String(record.get(name)), "page", `the page shows ${name} ${JSON.stringify(shown)}, the state proves ${JSON.stringify(String(record.get(name)))}`);
  }
  report.require(fieldText("serial").startsWith(record.get("serial")), "page", "the serials on the page are not the proven ones");
  report.pass("page", "what this page shows is the proven record");
  return { message: "the retirement is in the state the genesis validators certified" };
}

function showRecord(list, record) {
  list.replaceChildren();
  for (const [name, value] of record) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    list.append(dt, dd);
  }
}

function setUpVerifyPage(section) {
  const text = document.getElementById("receipt-text");
  const fields = document.getElementById("receipt-fields");
  const genesisState = document.getElementById("genesis-state");
  const describeGenesis = async () => {
    try {
      const genesis = await trustedGenesis();
      genesisState.textContent = `Using ${genesis.source}: genesis hash ${genesis.hash}, chain ${genesis.chainId}, ${genesis.keys.length} validator keys.`;
    } catch (error) {
      genesisState.textContent = `The genesis cannot be read: ${failure(error)}`;
    }
  };
  document.getElementById("genesis-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    const content = await file.text();
    try {
      await readGenesis(content, "your genesis file");
      storage()?.setItem(GENESIS_STORAGE, content);
    } catch (error) {
      genesisState.textContent = `That file is not a genesis document: ${failure(error)}`;
      return;
    }
    describeGenesis();
  });
  document.getElementById("genesis-forget").addEventListener("click", () => { storage()?.removeItem(GENESIS_STORAGE); describeGenesis(); });
  document.getElementById("receipt-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (file) text.value = await file.text();
  });
  document.getElementById("verify-button").addEventListener("click", () => {
    fields.replaceChildren();
    run(section, async (report, genesis) => {
      let document_;
      try { document_ = JSON.parse(text.value); } catch (error) { report.fail("receipt", `not JSON: ${error.message}`); }
      const record = await verifyReceipt(report, document_, genesis);
      showRecord(fields, record);
      return { message: "the retirement is in the state the genesis validators certified" };
    });
  });
  describeGenesis();
}

export function startVerification() {
  const section = document.querySelector("[data-verify]");
  if (!section) return;
  const kind = section.dataset.verify;
  if (kind === "block") run(section, (report, genesis) => checkBlockPage(section, report, genesis));
  else if (kind === "state") run(section, checkStatePage);
  else if (kind === "receipt") run(section, (report, genesis) => checkReceiptPage(section, report, genesis));
  else if (kind === "pasted") setUpVerifyPage(section);
}


