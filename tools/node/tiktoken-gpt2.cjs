// Encodes a text file with tiktoken's GPT-2 encoding (the reference the
// tokenizer benchmark compares against) and compares the ids with minnow's,
// read from a file of space-separated ids. Prints one JSON line.
// Usage: node tiktoken-gpt2.cjs TEXT_FILE MINNOW_IDS_FILE
const { get_encoding } = require("tiktoken");
const fs = require("fs");

const text = fs.readFileSync(process.argv[2], "utf8");
const ours = fs.readFileSync(process.argv[3], "utf8").trim().split(/\s+/).map(Number);
const enc = get_encoding("gpt2");
enc.encode(text.slice(0, 10000)); // warm-up

const times = [];
let ids;
for (let i = 0; i < 5; i++) {
  const t0 = process.hrtime.bigint();
  ids = enc.encode(text);
  times.push(Number(process.hrtime.bigint() - t0) / 1e9);
}
times.sort((a, b) => a - b);
let firstDiff = -1;
const n = Math.max(ids.length, ours.length);
for (let i = 0; i < n; i++) {
  if (ids[i] !== ours[i]) { firstDiff = i; break; }
}
console.log(JSON.stringify({
  peer_tokens: ids.length,
  peer_mb_per_s: Buffer.byteLength(text) / 1e6 / times[2],
  identical: firstDiff === -1,
  first_difference: firstDiff,
}));
enc.free();
