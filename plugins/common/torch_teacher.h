// Shared by the torch-based teacher adapters: a LibTorch error as one line for a user.
#pragma once

#include <string>

#include <c10/util/Exception.h>

namespace muki::plugins {

// torch's errors carry a C++ backtrace in what(); what a user needs is the message before it.
inline std::string torch_message(const c10::Error& e) {
  std::string msg = e.what_without_backtrace();
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

}  // namespace muki::plugins
