// A SavedModel loaded in TensorFlow's C++ runtime, as tensorflow_model_server loads it, behind an interface of
// plain C++ types: the native runner (native_runner.cc) and the C++ gRPC front end (tf_qa/server/native_grpc.cc)
// both run the model through it. Its header includes nothing of TensorFlow's, so that the front end's gRPC code
// compiles against Debian's gRPC and Abseil while native_session.cc compiles against the TensorFlow wheel's.
//
// Frames (native_frames.h):
//   request:  signature_name, (input_key, serialized TensorProto)...
//   response: "ok", run_micros, (output_key, serialized TensorProto)... sorted by key
//             or "error", status code name, message
#ifndef TF_QA_NATIVE_SESSION_H_
#define TF_QA_NATIVE_SESSION_H_

#include <memory>
#include <string>
#include <vector>

#include "native_frames.h"

namespace tf_qa {

class NativeSession {
 public:
  // Registers TF Text's op libraries (TF_LoadLibrary), then loads VERSION_DIR with the "serve" tag and the
  // serialized tensorflow.ConfigProto in SESSION_CONFIG_FILE (empty: the defaults). *outcome is the frame
  // ["loaded", load_micros], or ["error", code, message] with nullptr returned.
  static std::unique_ptr<NativeSession> Load(const std::string& version_dir, const std::string& session_config_file,
                                             const std::vector<std::string>& op_libraries, Frame* outcome);
  virtual ~NativeSession() = default;

  // One request frame: its inputs fed by the signature's tensor names and every output fetched, as TF Serving's
  // Predict does; thread-safe.
  virtual Frame Run(const Frame& request) = 0;

  // The output keys of the signature named SIGNATURE_NAME into *keys; false when the model has no such signature.
  // What a request may name in its output_filter, checked before it runs.
  virtual bool OutputKeys(const std::string& signature_name, std::vector<std::string>* keys) const = 0;
};

}  // namespace tf_qa

#endif  // TF_QA_NATIVE_SESSION_H_
