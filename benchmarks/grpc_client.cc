// A gRPC client in C++ (Debian's gRPC), for benchmarks/grpc_overhead.py: what a client in a compiled language
// meets, beside Python's grpcio. Its calling thread polls the connection itself, where grpcio hands a response
// from its poller thread to a worker and on to the caller.
//
//   grpc_client TARGET
//
// Reads frames on stdin (tf_qa/saved_model/native_frames.h), each a block of serialized PredictRequests, and sends
// them one by one with PredictionService/Predict; answers each block with one frame: for every request "OK
// MICROS" (the call's own time, measured here) or "CODE MESSAGE".
#include <chrono>
#include <cstdio>
#include <string>

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/rpc_method.h>

#include "native_frames.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: grpc_client TARGET\n");
    return 2;
  }
  auto channel = grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials());
  const grpc::internal::RpcMethod predict("/tensorflow.serving.PredictionService/Predict",
                                          grpc::internal::RpcMethod::NORMAL_RPC);
  tf_qa::Frame block;
  while (tf_qa::ReadFrame(stdin, &block)) {
    tf_qa::Frame answers;
    for (const std::string& bytes : block) {
      grpc::Slice slice(bytes);
      grpc::ByteBuffer request(&slice, 1), response;
      grpc::ClientContext context;
      auto start = std::chrono::steady_clock::now();
      grpc::Status status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
          channel.get(), predict, &context, request, &response);
      auto micros =
          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
      answers.push_back(status.ok() ? "OK " + std::to_string(micros)
                                    : std::to_string(status.error_code()) + " " + status.error_message());
    }
    if (!tf_qa::WriteFrame(stdout, answers)) return 1;
  }
  return 0;
}
