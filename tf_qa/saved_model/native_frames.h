// The native runtime's frames (native_runner.cc speaks them on its stdin and stdout, native_session.h answers
// them): a uint32 item count, then each item as a uint32 byte length and its bytes, little endian.
#ifndef TF_QA_NATIVE_FRAMES_H_
#define TF_QA_NATIVE_FRAMES_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace tf_qa {

using Frame = std::vector<std::string>;

inline bool ReadU32(FILE* in, uint32_t* value) {
  unsigned char bytes[4];
  if (std::fread(bytes, 1, 4, in) != 4) return false;
  *value = bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (uint32_t{bytes[3]} << 24);
  return true;
}

inline void WriteU32(FILE* out, uint32_t value) {
  unsigned char bytes[4] = {static_cast<unsigned char>(value), static_cast<unsigned char>(value >> 8),
                            static_cast<unsigned char>(value >> 16), static_cast<unsigned char>(value >> 24)};
  std::fwrite(bytes, 1, 4, out);
}

// False at the end of the stream or on a short read.
inline bool ReadFrame(FILE* in, Frame* frame) {
  uint32_t count;
  if (!ReadU32(in, &count)) return false;
  frame->assign(count, "");
  for (std::string& item : *frame) {
    uint32_t size;
    if (!ReadU32(in, &size)) return false;
    item.resize(size);
    if (size && std::fread(&item[0], 1, size, in) != size) return false;
  }
  return true;
}

// False when the other end has gone.
inline bool WriteFrame(FILE* out, const Frame& frame) {
  WriteU32(out, static_cast<uint32_t>(frame.size()));
  for (const std::string& item : frame) {
    WriteU32(out, static_cast<uint32_t>(item.size()));
    std::fwrite(item.data(), 1, item.size(), out);
  }
  return std::fflush(out) == 0 && !std::ferror(out);
}

}  // namespace tf_qa

#endif  // TF_QA_NATIVE_FRAMES_H_
