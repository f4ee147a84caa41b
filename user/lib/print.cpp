#include "user/lib/print.hpp"

#include "lib/proof.hpp"
#include "user/lib/start.hpp"
#include "user/lib/syscalls.hpp"

namespace pagoda::user {

void ProofNote::format(FormatSink& sink) const {
  if (grading()) format_to(sink, " proof={:016x}", proof(token(), value));
}

ProofNote proof_note(u64 value) { return {value}; }

void WriteSink::put(StringView text) {
  if (size_ + text.size() > kBufferSize) flush();
  if (text.size() > kBufferSize) {  // too long to gather: straight through
    write_all(text);
    return;
  }
  for (char c : text) buffer_[size_++] = c;
}

void WriteSink::flush() {
  write_all(StringView(buffer_, size_));
  size_ = 0;
}

void WriteSink::write_all(StringView text) {
  while (!text.empty() && error_ == 0) {
    const i64 n = write(fd_, text.data(), text.size());
    if (abi::is_error(n)) error_ = n;
    else if (n == 0) error_ = abi::error_result(abi::Errno::Inval);  // no progress: give up
    else text = text.substr(usize(n));
  }
}

}  // namespace pagoda::user
