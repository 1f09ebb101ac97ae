// Runs a SavedModel the way tensorflow_model_server does, with no Python in the process: the model in a
// NativeSession (native_session.h: TF Text's op libraries registered, LoadSavedModel with the "serve" tag and the
// platform config's session options, Session::Run on a signature's tensor names), its requests on stdin.
//
//   native_runner VERSION_DIR SESSION_CONFIG_FILE [OP_LIBRARY...]
//
// After loading, the runner writes one frame ["loaded", load_micros] (or ["error", code, message] and exits 1),
// then answers each request frame read from stdin until EOF, in native_session.h's frames.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <unistd.h>

#include "native_frames.h"
#include "native_session.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: native_runner VERSION_DIR SESSION_CONFIG_FILE [OP_LIBRARY...]\n";
    return 2;
  }
  // Frames leave on a copy of fd 1, and fd 1 becomes stderr: nothing a library prints can corrupt a frame.
  FILE* frames_out = fdopen(dup(STDOUT_FILENO), "wb");
  dup2(STDERR_FILENO, STDOUT_FILENO);
  tf_qa::Frame outcome;
  auto session = tf_qa::NativeSession::Load(argv[1], argv[2], std::vector<std::string>(argv + 3, argv + argc),
                                            &outcome);
  tf_qa::WriteFrame(frames_out, outcome);
  if (!session) return 1;
  tf_qa::Frame request;
  while (tf_qa::ReadFrame(stdin, &request)) {
    if (!tf_qa::WriteFrame(frames_out, session->Run(request))) return 1;
  }
  return 0;
}
