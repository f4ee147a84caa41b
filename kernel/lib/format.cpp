// The run-time half of the formatter (see format.hpp): the format string was already checked
// at compile time, so this walks it trusting its shape.
#include "lib/format.hpp"

namespace pagoda {

void BufferSink::put(StringView text) {
  for (char c : text) {
    if (size_ + 1 < capacity_) {
      buffer_[size_++] = c;
      buffer_[size_] = '\0';
    } else {
      ++dropped_;
    }
  }
}

namespace fmt {
namespace {

void pad(FormatSink& sink, char fill, usize count) {
  char chunk[16];
  for (char& c : chunk) c = fill;
  while (count > 0) {
    const usize n = min<usize>(count, sizeof chunk);
    sink.put({chunk, n});
    count -= n;
  }
}

/// Writes @p text padded to spec.width, on the side the alignment asks for.
void put_aligned(FormatSink& sink, StringView text, const Spec& spec, char default_align) {
  const usize fill = spec.width > text.size() ? spec.width - text.size() : 0;
  const char align = spec.align ? spec.align : default_align;
  if (align == '>') pad(sink, ' ', fill);
  sink.put(text);
  if (align == '<') pad(sink, ' ', fill);
}

Spec parse_spec(StringView format, usize& i) {
  Spec spec;
  if (format[i] == '<' || format[i] == '>') spec.align = format[i++];
  if (format[i] == '#') spec.alternate = true, ++i;
  if (format[i] == '0') spec.zero_pad = true, ++i;
  while (format[i] >= '0' && format[i] <= '9') spec.width = u16(spec.width * 10 + (format[i++] - '0'));
  if (format[i] != '}') spec.type = format[i++];
  return spec;  // i indexes the closing '}'
}

void format_arg(FormatSink& sink, const Arg& arg, Spec spec) {
  switch (arg.kind) {
    case Kind::Signed: {
      const bool negative = arg.s < 0;
      const u64 magnitude = negative ? u64(0) - u64(arg.s) : u64(arg.s);
      format_integer(sink, magnitude, negative, spec);
      return;
    }
    case Kind::Unsigned: format_integer(sink, arg.u, false, spec); return;
    case Kind::Bool: put_aligned(sink, arg.b ? "true" : "false", spec, '<'); return;
    case Kind::Char:
      if (spec.type == '\0' || spec.type == 'c') {
        put_aligned(sink, StringView(&arg.c, 1), spec, '<');
      } else {
        format_integer(sink, u8(arg.c), false, spec);
      }
      return;
    case Kind::String: put_aligned(sink, StringView(arg.str.data, arg.str.size), spec, '<'); return;
    case Kind::Pointer:
      spec.alternate = true;
      spec.zero_pad = true;
      spec.type = 'x';
      if (spec.width == 0) spec.width = 18;
      format_integer(sink, reinterpret_cast<uptr>(arg.p), false, spec);
      return;
    case Kind::Custom: arg.custom.print(arg.custom.object, sink); return;
  }
}

}  // namespace

void format_integer(FormatSink& sink, u64 magnitude, bool negative, const Spec& spec) {
  u32 base = 10;
  const char* digits = "0123456789abcdef";
  const char* prefix = "";
  switch (spec.type) {
    case 'x':
      base = 16;
      prefix = "0x";
      break;
    case 'X':
      base = 16;
      prefix = "0x";
      digits = "0123456789ABCDEF";
      break;
    case 'b':
      base = 2;
      prefix = "0b";
      break;
    case 'o':
      base = 8;
      prefix = "0o";
      break;
    default: break;
  }
  char body[64 + 1];
  usize n = 0;
  do {
    body[sizeof body - 1 - n++] = digits[magnitude % base];
    magnitude /= base;
  } while (magnitude != 0);

  char out[64 + 4 + 1 + 64];  // sign, prefix, zero padding up to a u16 width is clipped below
  usize len = 0;
  if (negative) out[len++] = '-';
  if (spec.alternate)
    for (const char* p = prefix; *p; ++p) out[len++] = *p;
  if (spec.zero_pad) {
    const usize want = min<usize>(spec.width, sizeof out - 1);
    while (len + n < want) out[len++] = '0';
  }
  for (usize k = 0; k < n; ++k) out[len++] = body[sizeof body - n + k];
  put_aligned(sink, StringView(out, len), spec, '>');
}

void vformat(FormatSink& sink, StringView format, const Arg* args, usize count) {
  usize next = 0;
  usize literal_start = 0;
  for (usize i = 0; i < format.size(); ++i) {
    const char c = format[i];
    if (c != '{' && c != '}') continue;
    sink.put(format.substr(literal_start, i - literal_start));
    if (i + 1 < format.size() && format[i + 1] == c) {  // "{{" or "}}"
      sink.put(format.substr(i, 1));
      ++i;
      literal_start = i + 1;
      continue;
    }
    ++i;
    Spec spec;
    if (format[i] == ':') {
      ++i;
      spec = parse_spec(format, i);
    }
    if (next < count) format_arg(sink, args[next++], spec);
    literal_start = i + 1;
  }
  sink.put(format.substr(literal_start));
}

}  // namespace fmt
}  // namespace pagoda
