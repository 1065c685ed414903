// Strict UTF-8 validation, shared by the config loader (values from the environment and --set)
// and the event parser (engine/event.hpp), which sit on either side of the config library.
#pragma once

#include <string_view>

namespace simstream::config {

// Strict UTF-8 check (RFC 3629): rejects overlong forms, UTF-16 surrogates (U+D800..U+DFFF),
// code points above U+10FFFF and truncated sequences.
bool IsValidUtf8(std::string_view bytes);

}  // namespace simstream::config
