#!/usr/bin/env node
// Asks a tf-qa model served by TensorFlow Serving (or tf-qa serve) a question over gRPC, with messages compiled
// at start from the same .proto files as the Python client (tf_qa/protos): raw text in, the answer out, no
// tokenizer and no TensorFlow. Prints one JSON line per answer: {"answer", "score", "start", "end"}.
//
//   node ask.js --target localhost:8500 --model-name NAME --question Q --context C [--top-k 3] [--timeout 30]
//     [--traceparent 00-<32 hex>-<16 hex>-<2 hex>]   (the caller's W3C trace context, sent as call metadata)
//     [--ca ca.pem [--cert client.pem --key client-key.pem]]   (TLS; a client certificate for client_verify)
"use strict";
const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTOS = path.join(__dirname, "..", "..", "tf_qa", "protos");
const PUSHBACK = "grpc-retry-pushback-ms";

function parseArgs(argv) {
  const options = { "top-k": "1", timeout: "30" };
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--") || i + 1 >= argv.length) throw new Error(`bad argument: ${argv[i]}`);
    options[argv[i].slice(2)] = argv[i + 1];
  }
  for (const name of ["target", "model-name", "question", "context"]) {
    if (!(name in options)) throw new Error(`--${name} is required`);
  }
  const traceparent = options.traceparent;
  if (traceparent !== undefined && !/^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/.test(traceparent)) {
    throw new Error(`--traceparent is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>): ${traceparent}`);
  }
  if (("cert" in options) !== ("key" in options)) throw new Error("--cert and --key go together");
  if ("cert" in options && !("ca" in options)) throw new Error("--cert needs --ca (TLS)");
  return options;
}

function credentials(options) {
  if (!options.ca) return grpc.credentials.createInsecure();
  const read = (name) => (options[name] ? fs.readFileSync(options[name]) : null);
  return grpc.credentials.createSsl(read("ca"), read("key"), read("cert"));
}

function tensor(dtype, field, values) {
  return { dtype, tensor_shape: { dim: [{ size: values.length }] }, [field]: values };
}

// A TensorProto as a flat array: raw little-endian content (what TensorFlow writes for numeric tensors of more
// than one element) or the typed values, the last one repeated to fill the shape.
function toArray(t) {
  const size = t.tensor_shape.dim.reduce((n, d) => n * Number(d.size), 1);
  if (t.tensor_content && t.tensor_content.length) {
    const bytes = Buffer.from(t.tensor_content);
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
    if (t.dtype === "DT_FLOAT") return Array.from(new Float32Array(buffer));
    if (t.dtype === "DT_INT64") return Array.from(new BigInt64Array(buffer), Number);
    if (t.dtype === "DT_INT32") return Array.from(new Int32Array(buffer));
    throw new Error(`unexpected raw ${t.dtype} tensor`);
  }
  const field = { DT_STRING: "string_val", DT_FLOAT: "float_val", DT_INT64: "int64_val", DT_INT32: "int_val" }[t.dtype];
  const values = (t[field] || []).map((v) => (t.dtype === "DT_STRING" ? Buffer.from(v).toString("utf8") : Number(v)));
  while (values.length && values.length < size) values.push(values[values.length - 1]);
  return values;
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const definition = protoLoader.loadSync("tensorflow_serving/apis/prediction_service.proto", {
    includeDirs: [PROTOS], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  });
  const api = grpc.loadPackageDefinition(definition).tensorflow.serving;
  const client = new api.PredictionService(options.target, credentials(options));
  const request = {
    model_spec: { name: options["model-name"], signature_name: "answer_top_k" },
    inputs: {
      question: tensor("DT_STRING", "string_val", [Buffer.from(options.question, "utf8")]),
      context: tensor("DT_STRING", "string_val", [Buffer.from(options.context, "utf8")]),
      top_k: tensor("DT_INT32", "int_val", [Number(options["top-k"])]),
      max_answer_len: tensor("DT_INT32", "int_val", [15]),
      handle_impossible_answer: tensor("DT_BOOL", "bool_val", [false]),
    },
  };
  const deadline = Date.now() + 1000 * Number(options.timeout);
  const metadata = new grpc.Metadata();
  if (options.traceparent) metadata.add("traceparent", options.traceparent);
  const ask = () =>
    client.Predict(request, metadata, { deadline: new Date(deadline) }, (error, response) => {
      if (error) {
        // A refusal that says when to come back (grpc-retry-pushback-ms) is asked again after that wait, jittered
        // by +-50%, unless the wait would pass the deadline; every other error is final.
        const [pushback] = error.code === grpc.status.RESOURCE_EXHAUSTED ? error.metadata.get(PUSHBACK) : [];
        const wait = pushback === undefined ? null : Number(pushback) * (0.5 + Math.random());
        if (wait !== null && Date.now() + wait < deadline) {
          setTimeout(ask, wait);
          return;
        }
        console.error(`tf-qa-ask: ${grpc.status[error.code]}: ${error.details}`);
        process.exit(1);
      }
      const out = Object.fromEntries(["answer", "score", "start", "end"].map((k) => [k, toArray(response.outputs[k])]));
      out.start.forEach((start, rank) => {
        if (start !== -1) {
          console.log(JSON.stringify({ answer: out.answer[rank], score: out.score[rank], start, end: out.end[rank] }));
        }
      });
      client.close();
    });
  ask();
}

try {
  main();
} catch (error) {
  console.error(`tf-qa-ask: ${error.message}`);
  process.exit(2);
}
