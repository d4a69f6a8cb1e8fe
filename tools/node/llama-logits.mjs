// Runs a GGUF model (and optionally a LoRA adapter) in llama.cpp through
// node-llama-cpp, the reference minnow's GGUF export is checked against.
// It evaluates each prompt on the CPU with one thread, flash attention off
// and an F32 KV cache, so that the numbers depend only on the weights and
// llama.cpp's kernels, and prints one JSON object on stdout.
//
// Usage: node llama-logits.mjs < request.json
//
// Request: {"jobs": [JOB, ...]}, one llama.cpp instance for all, where
//   JOB = {"model": "m.gguf", "lora": "a.gguf" (optional), "loraScale": 1,
//          "contextSize": 256,
//          "prompts": [[1, 5, 9], ...],  // token ids, no BOS added
//          "allPositions": true,         // logits after every prompt
//                                        // token, else after the last
//          "generate": 32}               // greedy tokens to continue with
// Response: {"jobs": [[RESULT per prompt], ...]}, where
//   RESULT = {"logits": [[...vocab floats], ...], "greedy": [ids],
//             "greedyLogits": [[...]]}
// "logits" has one row per prompt position asked for; "greedyLogits" holds
// the logits each greedy token was chosen from (the first equals the last
// prompt row).
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import fs from "node:fs";

const req = JSON.parse(fs.readFileSync(0, "utf8"));

const llama = await getLlama({
  gpu: false,
  build: "never",
  skipDownload: true,
  maxThreads: 1,
  logLevel: LlamaLogLevel.error,
  progressLogs: false,
});

// runJob evaluates one request on its own model and context.
async function runJob(req) {
  const model = await llama.loadModel({ modelPath: req.model, gpuLayers: 0, useMmap: false });
  const contextOptions = {
    contextSize: req.contextSize ?? 256,
    batchSize: req.contextSize ?? 256,
    sequences: 1,
    threads: 1,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
  };
  if (req.lora) {
    contextOptions.lora = { adapters: [{ filePath: req.lora, scale: req.loraScale ?? 1 }] };
  }
  const context = await model.createContext(contextOptions);
  const sequence = context.getSequence();
  const results = [];
  for (const prompt of req.prompts) {
    await sequence.clearHistory();
    const input = prompt.map((tok, i) =>
      req.allPositions || i === prompt.length - 1 ? withLogits(tok) : tok);
    const out = await sequence.controlledEvaluate(input);
    const logits = [];
    for (let i = 0; i < prompt.length; i++) {
      if (out[i]?.next?.logits) logits.push(dense(out[i].next.logits));
    }
    const greedy = [];
    const greedyLogits = [];
    let row = logits[logits.length - 1];
    for (let n = 0; n < (req.generate ?? 0); n++) {
      greedyLogits.push(row);
      const tok = argmax(row);
      greedy.push(tok);
      if (n + 1 === req.generate) break;
      const step = await sequence.controlledEvaluate([withLogits(tok)]);
      row = dense(step[0].next.logits);
    }
    results.push({ logits, greedy, greedyLogits });
  }
  await context.dispose();
  await model.dispose();
  return results;
}

// dense turns the logits map node-llama-cpp returns into an array indexed
// by token id; without a filter the map holds every id.
function dense(map) {
  let n = 0;
  for (const id of map.keys()) n = Math.max(n, id + 1);
  const out = new Array(n).fill(null);
  for (const [id, v] of map) out[id] = v;
  return out;
}

// argmax returns the first id of the largest logit, as minnow's greedy
// decoding breaks ties.
function argmax(row) {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

const withLogits = (tok) => [tok, { generateNext: { logits: true } }];

const jobs = [];
for (const job of req.jobs) jobs.push(await runJob(job));
process.stdout.write(JSON.stringify({ jobs }) + "\n");
await llama.dispose();
