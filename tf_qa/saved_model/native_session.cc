// NativeSession (native_session.h) on TensorFlow's C++ API: LoadSavedModel and Session::Run.
#include "native_session.h"

#include <chrono>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <map>
#include <utility>

#include "tensorflow/c/c_api.h"
#include "tensorflow/cc/saved_model/loader.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor.pb.h"
#include "tensorflow/core/protobuf/config.pb.h"

namespace tf_qa {
namespace {

Frame ErrorFrame(const absl::Status& status) {
  return {"error", absl::StatusCodeToString(status.code()), std::string(status.message())};
}

int64_t MicrosSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
}

absl::Status LoadOpLibraries(const std::vector<std::string>& op_libraries) {
  for (const std::string& library : op_libraries) {
    TF_Status* status = TF_NewStatus();
    TF_LoadLibrary(library.c_str(), status);  // registers the library's ops and kernels; the handle stays loaded
    bool ok = TF_GetCode(status) == TF_OK;
    std::string message = TF_Message(status);
    TF_DeleteStatus(status);
    if (!ok) return absl::NotFoundError(library + ": " + message);
  }
  return absl::OkStatus();
}

absl::Status ReadSessionConfig(const std::string& file, tensorflow::SessionOptions* options) {
  std::ifstream in(file, std::ios::binary);
  std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return absl::NotFoundError("cannot read " + file);
  if (!options->config.ParseFromString(config)) {
    return absl::InvalidArgumentError(file + " is not a serialized ConfigProto");
  }
  return absl::OkStatus();
}

class BundleSession : public NativeSession {
 public:
  Frame Run(const Frame& request) override;
  bool OutputKeys(const std::string& signature_name, std::vector<std::string>* keys) const override;

  tensorflow::SavedModelBundle bundle;
};

bool BundleSession::OutputKeys(const std::string& signature_name, std::vector<std::string>* keys) const {
  auto signature = bundle.GetSignatures().find(signature_name);
  if (signature == bundle.GetSignatures().end()) return false;
  keys->clear();
  for (const auto& output : signature->second.outputs()) keys->push_back(output.first);
  return true;
}

Frame BundleSession::Run(const Frame& request) {
  if (request.empty()) return ErrorFrame(absl::InvalidArgumentError("empty request"));
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
  for (const auto& output : signature->second.outputs()) outputs[output.first] = output.second.name();
  std::vector<std::string> names;
  for (const auto& output : outputs) names.push_back(output.second);
  std::vector<tensorflow::Tensor> fetched;
  auto start = std::chrono::steady_clock::now();
  absl::Status status = bundle.GetSession()->Run(feeds, names, {}, &fetched);
  int64_t micros = MicrosSince(start);
  if (!status.ok()) return ErrorFrame(status);
  Frame response = {"ok", std::to_string(micros)};
  size_t i = 0;
  for (const auto& output : outputs) {
    tensorflow::TensorProto proto;
    fetched[i++].AsProtoField(&proto);  // typed fields, as TF Serving's Predict answers by default
    response.push_back(output.first);
    response.push_back(proto.SerializeAsString());
  }
  return response;
}

}  // namespace

std::unique_ptr<NativeSession> NativeSession::Load(const std::string& version_dir,
                                                   const std::string& session_config_file,
                                                   const std::vector<std::string>& op_libraries, Frame* outcome) {
  auto start = std::chrono::steady_clock::now();
  tensorflow::SessionOptions session_options;
  absl::Status status = LoadOpLibraries(op_libraries);
  if (status.ok()) status = ReadSessionConfig(session_config_file, &session_options);
  auto session = std::make_unique<BundleSession>();
  if (status.ok()) {
    status = tensorflow::LoadSavedModel(session_options, tensorflow::RunOptions(), version_dir, {"serve"},
                                        &session->bundle);
  }
  if (!status.ok()) {
    *outcome = ErrorFrame(status);
    return nullptr;
  }
  *outcome = {"loaded", std::to_string(MicrosSince(start))};
  return session;
}

}  // namespace tf_qa
