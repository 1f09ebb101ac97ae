// A C++ gRPC front end: TF Serving's PredictionService/Predict, as tensorflow_model_server answers it, with the model
// in the same process (a NativeSession, tf_qa/saved_model/native_session.h).
//
//   native_grpc PORT MODEL_NAME VERSION VERSION_DIR SESSION_CONFIG_FILE [OP_LIBRARY...]
//
// It loads the model, listens on 127.0.0.1:PORT (0: a free port) and prints "serving PORT" on stdout; a model that
// does not load is named on stderr, exit status 1. Requests run one at a time, in arrival order; a request whose
// deadline passes while it waits is answered DEADLINE_EXCEEDED, unrun.
//
// Built with Debian's gRPC, and no protobuf library: TensorFlow's wheel carries protobuf and Abseil builds of its
// own, which one process cannot hold beside Debian's. So Predict is registered as a method on raw bytes, and its
// two messages are read and written here in protobuf's wire format (PredictRequest's model_spec, inputs and
// output_filter; PredictResponse's outputs and model_spec); each tensor stays a serialized TensorProto, which the
// session parses with TensorFlow's own protobuf.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/method_handler.h>

#include "native_session.h"

namespace {

using tf_qa::Frame;

// protobuf's wire format, read: each field's number, and its bytes when it is length-delimited. Fields of other
// wire types are skipped, as protobuf's parser skips unknown fields; groups, long gone, are malformed here.
class WireReader {
 public:
  explicit WireReader(std::string_view bytes) : rest_(bytes) {}

  bool done() const { return rest_.empty(); }

  // False when the bytes are malformed. *varint is the field's value when its wire type is varint (0).
  bool Next(uint32_t* number, std::string_view* bytes, uint64_t* varint) {
    uint64_t tag, size;
    if (!Varint(&tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX) return false;
    *number = static_cast<uint32_t>(tag >> 3);
    *bytes = {};
    switch (tag & 7) {
      case 0:
        return Varint(varint);
      case 1:
        return Skip(8);
      case 2:
        if (!Varint(&size) || size > rest_.size()) return false;
        *bytes = rest_.substr(0, size);
        rest_.remove_prefix(size);
        return true;
      case 5:
        return Skip(4);
      default:
        return false;
    }
  }

 private:
  bool Varint(uint64_t* value) {
    *value = 0;
    for (int shift = 0; shift < 64 && !rest_.empty(); shift += 7) {
      uint8_t byte = static_cast<uint8_t>(rest_[0]);
      rest_.remove_prefix(1);
      *value |= uint64_t{byte & 0x7fu} << shift;
      if (!(byte & 0x80)) return true;
    }
    return false;
  }

  bool Skip(size_t size) {
    if (rest_.size() < size) return false;
    rest_.remove_prefix(size);
    return true;
  }

  std::string_view rest_;
};

void PutVarint(std::string* out, uint64_t value) {
  for (; value >= 0x80; value >>= 7) out->push_back(static_cast<char>(value | 0x80));
  out->push_back(static_cast<char>(value));
}

// A length-delimited field (wire type 2).
void PutBytes(std::string* out, uint32_t number, std::string_view bytes) {
  PutVarint(out, (uint64_t{number} << 3) | 2);
  PutVarint(out, bytes.size());
  out->append(bytes);
}

struct PredictRequest {
  std::string model_name;
  bool has_version = false;
  int64_t version = 0;
  std::string signature_name;
  std::map<std::string, std::string> inputs;  // key -> serialized TensorProto; a repeated key keeps its last value
  std::vector<std::string> output_filter;
};

// Calls visit(number, bytes, varint) on each field of a message in turn; false when the message is malformed or
// visit returns false.
template <typename Visit>
bool ForEachField(std::string_view message, Visit visit) {
  WireReader reader(message);
  while (!reader.done()) {
    uint32_t number;
    std::string_view bytes;
    uint64_t varint = 0;
    if (!reader.Next(&number, &bytes, &varint) || !visit(number, bytes, varint)) return false;
  }
  return true;
}

// ModelSpec: name = 1, version = 2 (google.protobuf.Int64Value: value = 1), signature_name = 3.
bool ParseModelSpec(std::string_view bytes, PredictRequest* request) {
  return ForEachField(bytes, [request](uint32_t number, std::string_view value, uint64_t) {
    if (number == 1) request->model_name = std::string(value);
    if (number == 3) request->signature_name = std::string(value);
    if (number != 2) return true;
    request->has_version = true;
    return ForEachField(value, [request](uint32_t field, std::string_view, uint64_t version) {
      if (field == 1) request->version = static_cast<int64_t>(version);
      return true;
    });
  });
}

// PredictRequest: model_spec = 1, inputs = 2 (map entries: key = 1, value = 2), output_filter = 3.
bool ParsePredictRequest(std::string_view bytes, PredictRequest* request) {
  return ForEachField(bytes, [request](uint32_t number, std::string_view value, uint64_t) {
    if (number == 1) return ParseModelSpec(value, request);
    if (number == 3) request->output_filter.emplace_back(value);
    if (number != 2) return true;
    std::string_view key, tensor;
    bool parsed = ForEachField(value, [&key, &tensor](uint32_t field, std::string_view part, uint64_t) {
      if (field == 1) key = part;
      if (field == 2) tensor = part;
      return true;
    });
    request->inputs[std::string(key)] = std::string(tensor);
    return parsed;
  });
}

// PredictResponse: outputs = 1 (map entries), model_spec = 2.
std::string PredictResponseBytes(const std::vector<std::pair<std::string, std::string>>& outputs,
                                 const std::string& model_name, int64_t version, const std::string& signature) {
  std::string response, spec, version_value;
  for (const auto& [key, tensor] : outputs) {
    std::string entry;
    PutBytes(&entry, 1, key);
    PutBytes(&entry, 2, tensor);
    PutBytes(&response, 1, entry);
  }
  PutVarint(&version_value, 1 << 3);
  PutVarint(&version_value, static_cast<uint64_t>(version));
  PutBytes(&spec, 1, model_name);
  PutBytes(&spec, 2, version_value);
  PutBytes(&spec, 3, signature);
  PutBytes(&response, 2, spec);
  return response;
}

// TensorFlow's status code names (absl::StatusCodeToString, as the session reports them) as gRPC's codes.
grpc::StatusCode CodeNamed(const std::string& name) {
  static const std::map<std::string, grpc::StatusCode> codes = {
      {"CANCELLED", grpc::StatusCode::CANCELLED},
      {"INVALID_ARGUMENT", grpc::StatusCode::INVALID_ARGUMENT},
      {"DEADLINE_EXCEEDED", grpc::StatusCode::DEADLINE_EXCEEDED},
      {"NOT_FOUND", grpc::StatusCode::NOT_FOUND},
      {"ALREADY_EXISTS", grpc::StatusCode::ALREADY_EXISTS},
      {"PERMISSION_DENIED", grpc::StatusCode::PERMISSION_DENIED},
      {"RESOURCE_EXHAUSTED", grpc::StatusCode::RESOURCE_EXHAUSTED},
      {"FAILED_PRECONDITION", grpc::StatusCode::FAILED_PRECONDITION},
      {"ABORTED", grpc::StatusCode::ABORTED},
      {"OUT_OF_RANGE", grpc::StatusCode::OUT_OF_RANGE},
      {"UNIMPLEMENTED", grpc::StatusCode::UNIMPLEMENTED},
      {"INTERNAL", grpc::StatusCode::INTERNAL},
      {"UNAVAILABLE", grpc::StatusCode::UNAVAILABLE},
      {"DATA_LOSS", grpc::StatusCode::DATA_LOSS},
      {"UNAUTHENTICATED", grpc::StatusCode::UNAUTHENTICATED},
  };
  auto code = codes.find(name);
  return code == codes.end() ? grpc::StatusCode::UNKNOWN : code->second;
}

class PredictionService final : public grpc::Service {
 public:
  PredictionService(tf_qa::NativeSession* session, std::string model_name, int64_t version)
      : session_(session), model_name_(std::move(model_name)), version_(version) {
    using Handler = grpc::internal::RpcMethodHandler<PredictionService, grpc::ByteBuffer, grpc::ByteBuffer>;
    AddMethod(new grpc::internal::RpcServiceMethod(
        "/tensorflow.serving.PredictionService/Predict", grpc::internal::RpcMethod::NORMAL_RPC,
        new Handler([](PredictionService* service, grpc::ServerContext* context, const grpc::ByteBuffer* request,
                       grpc::ByteBuffer* response) { return service->Predict(context, *request, response); },
                    this)));
  }

  grpc::Status Predict(grpc::ServerContext* context, const grpc::ByteBuffer& request_bytes,
                       grpc::ByteBuffer* response_bytes) {
    PredictRequest request;
    grpc::Status status = Parse(request_bytes, &request);
    if (!status.ok()) return status;
    Frame frame = {request.signature_name};
    for (auto& [key, tensor] : request.inputs) {
      frame.push_back(key);
      frame.push_back(std::move(tensor));
    }
    Frame answer;
    {
      std::lock_guard<std::mutex> turn(mutex_);  // waits for the requests before this one
      if (context->IsCancelled() || context->deadline() < std::chrono::system_clock::now()) {
        return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the deadline passed before the request ran");
      }
      answer = session_->Run(frame);
    }
    if (answer.empty() || answer[0] != "ok") {
      return grpc::Status(CodeNamed(answer.size() > 1 ? answer[1] : ""), answer.size() > 2 ? answer[2] : "");
    }
    std::vector<std::pair<std::string, std::string>> outputs;
    for (size_t i = 2; i + 1 < answer.size(); i += 2) {
      bool wanted = request.output_filter.empty();
      for (const std::string& key : request.output_filter) wanted = wanted || key == answer[i];
      if (wanted) outputs.emplace_back(answer[i], answer[i + 1]);
    }
    grpc::Slice slice(PredictResponseBytes(outputs, model_name_, version_, frame[0]));
    *response_bytes = grpc::ByteBuffer(&slice, 1);
    return grpc::Status::OK;
  }

 private:
  // The request read and checked against the model this server serves, before anything runs.
  grpc::Status Parse(const grpc::ByteBuffer& bytes, PredictRequest* request) const {
    std::vector<grpc::Slice> slices;
    std::string message;
    if (!bytes.Dump(&slices).ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "the request was not read");
    for (const grpc::Slice& slice : slices) message.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    if (!ParsePredictRequest(message, request)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the request is not a PredictRequest");
    }
    if (request->model_name != model_name_) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "no model " + request->model_name + "; this server serves " + model_name_);
    }
    if (request->has_version && request->version != version_) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "no version " + std::to_string(request->version) + " of " + model_name_);
    }
    if (request->signature_name.empty()) request->signature_name = "serving_default";
    std::vector<std::string> outputs;  // an unknown signature is refused by the session, unrun
    if (session_->OutputKeys(request->signature_name, &outputs)) {
      for (const std::string& key : request->output_filter) {
        if (std::find(outputs.begin(), outputs.end(), key) == outputs.end()) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "output_filter: no output " + key);
        }
      }
    }
    return grpc::Status::OK;
  }

  tf_qa::NativeSession* session_;
  std::string model_name_;
  int64_t version_;
  std::mutex mutex_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::cerr << "usage: native_grpc PORT MODEL_NAME VERSION VERSION_DIR SESSION_CONFIG_FILE [OP_LIBRARY...]\n";
    return 2;
  }
  Frame outcome;
  auto session = tf_qa::NativeSession::Load(argv[4], argv[5], std::vector<std::string>(argv + 6, argv + argc),
                                            &outcome);
  if (!session) {
    std::cerr << "did not load the model: " << outcome[1] << ": " << outcome[2] << "\n";
    return 1;
  }
  PredictionService service(session.get(), argv[2], std::stoll(argv[3]));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(std::string("127.0.0.1:") + argv[1], grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "cannot listen on 127.0.0.1:" << argv[1] << "\n";
    return 1;
  }
  std::cout << "serving " << port << std::endl;
  server->Wait();
  return 0;
}
