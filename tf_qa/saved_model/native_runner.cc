// Runs a SavedModel the way tensorflow_model_server does, with no Python in the process: TF Text's op
// libraries registered with TF_LoadLibrary, LoadSavedModel with the "serve" tag and the platform config's
// session options, and Session::Run on a signature's tensor names.
//
//   native_runner VERSION_DIR SESSION_CONFIG_FILE [OP_LIBRARY...]
//
// SESSION_CONFIG_FILE holds a serialized tensorflow.ConfigProto (empty: the defaults). After loading, the runner
// writes one frame ["loaded", load_micros] (or ["error", code, message] and exits 1), then answers each request
// frame read from stdin until EOF.
//
// Frames as native_frames.h writes them.
//   request:  signature_name, (input_key, serialized TensorProto)...
//   response: "ok", run_micros, (output_key, serialized TensorProto)... sorted by key
//             or "error", status code name, message
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include "native_frames.h"
#include "tensorflow/c/c_api.h"
#include "tensorflow/cc/saved_model/loader.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor.pb.h"
#include "tensorflow/core/protobuf/config.pb.h"

namespace {

using tf_qa::Frame;

FILE* frames_out = stdout;  // main() moves it off fd 1, so that nothing a library prints can corrupt a frame

Frame ErrorFrame(const absl::Status& status) {
  return {"error", absl::StatusCodeToString(status.code()), std::string(status.message())};
}

int64_t MicrosSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
}

// One request: feeds the inputs by the signature's tensor names and fetches every output, as TF Serving's
// Predict does.
Frame Run(const tensorflow::SavedModelBundle& bundle, const Frame& request) {
  const auto& signatures = bundle.GetSignatures();
  auto signature = signatures.find(request[0]);
  if (signature == signatures.end()) {
    return ErrorFrame(absl::InvalidArgumentError("no signature " + request[0]));
  }
  std::vector<std::pair<std::string, tensorflow::Tensor>> feeds;
  for (size_t i = 1; i + 1 < request.size(); i += 2) {
    auto input = signature->second.inputs().find(request[i]);
    tensorflow::TensorProto proto;
    tensorflow::Tensor tensor;
    if (input == signature->second.inputs().end()) {
      return ErrorFrame(absl::InvalidArgumentError("no input " + request[i]));
    }
    if (!proto.ParseFromString(request[i + 1]) || !tensor.FromProto(proto)) {
      return ErrorFrame(absl::InvalidArgumentError("input " + request[i] + " is not a valid TensorProto"));
    }
    feeds.emplace_back(input->second.name(), tensor);
  }
  std::map<std::string, std::string> outputs;  // sorted by key
  std::vector<std::string> keys, names;
  for (const auto& output : signature->second.outputs()) outputs[output.first] = output.second.name();
  for (const auto& output : outputs) {
    keys.push_back(output.first);
    names.push_back(output.second);
  }
  std::vector<tensorflow::Tensor> fetched;
  auto start = std::chrono::steady_clock::now();
  absl::Status status = bundle.GetSession()->Run(feeds, names, {}, &fetched);
  int64_t micros = MicrosSince(start);
  if (!status.ok()) return ErrorFrame(status);
  Frame response = {"ok", std::to_string(micros)};
  for (size_t i = 0; i < keys.size(); ++i) {
    tensorflow::TensorProto proto;
    fetched[i].AsProtoField(&proto);  // typed fields, as TF Serving's Predict answers by default
    response.push_back(keys[i]);
    response.push_back(proto.SerializeAsString());
  }
  return response;
}

absl::Status LoadOpLibraries(int argc, char** argv) {
  for (int i = 3; i < argc; ++i) {
    TF_Status* status = TF_NewStatus();
    TF_LoadLibrary(argv[i], status);  // registers the library's ops and kernels; the handle stays loaded
    bool ok = TF_GetCode(status) == TF_OK;
    std::string message = TF_Message(status);
    TF_DeleteStatus(status);
    if (!ok) return absl::NotFoundError(std::string(argv[i]) + ": " + message);
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: native_runner VERSION_DIR SESSION_CONFIG_FILE [OP_LIBRARY...]\n";
    return 2;
  }
  frames_out = fdopen(dup(STDOUT_FILENO), "wb");
  dup2(STDERR_FILENO, STDOUT_FILENO);
  auto start = std::chrono::steady_clock::now();
  tensorflow::SessionOptions session_options;
  std::ifstream config_file(argv[2], std::ios::binary);
  std::string config((std::istreambuf_iterator<char>(config_file)), std::istreambuf_iterator<char>());
  absl::Status status = LoadOpLibraries(argc, argv);
  if (status.ok() && !session_options.config.ParseFromString(config)) {
    status = absl::InvalidArgumentError(std::string(argv[2]) + " is not a serialized ConfigProto");
  }
  tensorflow::SavedModelBundle bundle;
  if (status.ok()) {
    status = tensorflow::LoadSavedModel(session_options, tensorflow::RunOptions(), argv[1],
                                        {"serve"}, &bundle);
  }
  if (!status.ok()) {
    tf_qa::WriteFrame(frames_out, ErrorFrame(status));
    return 1;
  }
  tf_qa::WriteFrame(frames_out, {"loaded", std::to_string(MicrosSince(start))});
  Frame request;
  while (tf_qa::ReadFrame(stdin, &request)) {
    Frame response = request.empty() ? ErrorFrame(absl::InvalidArgumentError("empty request")) : Run(bundle, request);
    if (!tf_qa::WriteFrame(frames_out, response)) return 1;
  }
  return 0;
}
