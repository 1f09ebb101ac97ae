// A C++ gRPC front end for the native runner: TF Serving's PredictionService/Predict, as tensorflow_model_server
// answers it, with the model run by the native runner (tf_qa/saved_model/native_runner.cc) in a child process.
// Built with Debian's gRPC and protobuf (messages compiled from tf_qa/protos), never linked with TensorFlow, whose
// wheel carries protobuf and gRPC builds of its own.
//
//   native_grpc PORT MODEL_NAME VERSION RUNNER [RUNNER_ARGUMENT...]
//
// It starts RUNNER, waits for its "loaded" frame, listens on 127.0.0.1:PORT (0: a free port) and prints
// "serving PORT" on stdout. Requests run one at a time, in arrival order: the runner's session answers one
// frame at a time. A request whose deadline passes while it waits is answered DEADLINE_EXCEEDED, unrun.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "native_frames.h"
#include "tensorflow_serving/apis/prediction_service.grpc.pb.h"

namespace {

using tf_qa::Frame;
using tensorflow::serving::PredictRequest;
using tensorflow::serving::PredictResponse;

// The runner as a child process on two pipes; Exchange sends a request frame and reads its response frame, under
// mutex().
class Runner {
 public:
  explicit Runner(std::vector<std::string> argv) {
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) return;
    if (fork() == 0) {
      dup2(to_child[0], STDIN_FILENO);
      dup2(from_child[1], STDOUT_FILENO);
      close(to_child[1]);
      close(from_child[0]);
      std::vector<char*> args;
      for (std::string& argument : argv) args.push_back(&argument[0]);
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    to_ = fdopen(to_child[1], "wb");
    from_ = fdopen(from_child[0], "rb");
  }

  bool Read(Frame* frame) { return from_ != nullptr && tf_qa::ReadFrame(from_, frame); }

  bool Exchange(const Frame& request, Frame* response) {
    return to_ != nullptr && tf_qa::WriteFrame(to_, request) && tf_qa::ReadFrame(from_, response);
  }

  std::mutex& mutex() { return mutex_; }

 private:
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
  std::mutex mutex_;
};

// TensorFlow's status code names (absl::StatusCodeToString, as the runner reports them) as gRPC's codes.
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

class PredictionService final : public tensorflow::serving::PredictionService::Service {
 public:
  PredictionService(Runner* runner, std::string model_name, int64_t version)
      : runner_(runner), model_name_(std::move(model_name)), version_(version) {}

  grpc::Status Predict(grpc::ServerContext* context, const PredictRequest* request,
                       PredictResponse* response) override {
    const auto& spec = request->model_spec();
    if (spec.name() != model_name_) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no model " + spec.name() + "; this server serves " +
                                                           model_name_);
    }
    if (spec.has_version() && spec.version().value() != version_) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no version " + std::to_string(spec.version().value()) +
                                                           " of " + model_name_);
    }
    const std::string signature = spec.signature_name().empty() ? "serving_default" : spec.signature_name();
    Frame frame = {signature};
    for (const auto& input : request->inputs()) {
      frame.push_back(input.first);
      frame.push_back(input.second.SerializeAsString());
    }
    Frame answer;
    {
      std::lock_guard<std::mutex> turn(runner_->mutex());  // waits for the requests before this one
      if (context->IsCancelled() || context->deadline() < std::chrono::system_clock::now()) {
        return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the deadline passed before the request ran");
      }
      if (!runner_->Exchange(frame, &answer) || answer.empty()) {
        return grpc::Status(grpc::StatusCode::INTERNAL, "the native runner stopped");
      }
    }
    if (answer[0] != "ok") {
      return grpc::Status(CodeNamed(answer.size() > 1 ? answer[1] : ""), answer.size() > 2 ? answer[2] : "");
    }
    for (size_t i = 2; i + 1 < answer.size(); i += 2) {
      bool wanted = request->output_filter().empty();
      for (const std::string& key : request->output_filter()) wanted = wanted || key == answer[i];
      if (wanted) (*response->mutable_outputs())[answer[i]].ParseFromString(answer[i + 1]);
    }
    for (const std::string& key : request->output_filter()) {
      if (!response->outputs().count(key)) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "output_filter: no output " + key);
      }
    }
    response->mutable_model_spec()->set_name(model_name_);
    response->mutable_model_spec()->mutable_version()->set_value(version_);
    response->mutable_model_spec()->set_signature_name(signature);
    return grpc::Status::OK;
  }

 private:
  Runner* runner_;
  std::string model_name_;
  int64_t version_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::cerr << "usage: native_grpc PORT MODEL_NAME VERSION RUNNER [RUNNER_ARGUMENT...]\n";
    return 2;
  }
  Runner runner(std::vector<std::string>(argv + 4, argv + argc));
  Frame loaded;
  if (!runner.Read(&loaded) || loaded.empty() || loaded[0] != "loaded") {
    std::cerr << "the native runner did not load the model"
              << (loaded.size() > 2 ? ": " + loaded[1] + ": " + loaded[2] : std::string()) << "\n";
    return 1;
  }
  PredictionService service(&runner, argv[2], std::stoll(argv[3]));
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
