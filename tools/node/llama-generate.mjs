// Continues a text prompt greedily with a GGUF model in llama.cpp, through
// node-llama-cpp on the CPU, so that `make demo` can show an exported model
// answering in the program users will run it with.
//
// Usage: node llama-generate.mjs MODEL.gguf "PROMPT" [MAX_TOKENS]
// Prints the continuation alone on stdout; llama.cpp stops early at the
// model's end-of-generation token.
import { getLlama, LlamaCompletion, LlamaLogLevel } from "node-llama-cpp";

const [modelPath, prompt, maxTokens] = process.argv.slice(2);
if (!modelPath || prompt === undefined) {
  console.error("usage: node llama-generate.mjs MODEL.gguf PROMPT [MAX_TOKENS]");
  process.exit(2);
}
// One thread: a small model gains nothing from more, and llama.cpp's
// spinning workers slow it down many times on a busy machine.
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, maxThreads: 1, logLevel: LlamaLogLevel.error, progressLogs: false });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({ contextSize: Math.min(model.trainContextSize, 2048), threads: 1 });
const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
const text = await completion.generateCompletion(prompt, { maxTokens: Number(maxTokens ?? 64), temperature: 0 });
process.stdout.write(text + "\n");
await llama.dispose();
