// Shared by the torch tests (muki_torch_tests): a tiny WordPiece vocabulary and small models.
#pragma once

#include <string>
#include <vector>

#include <muki/model/models.h>
#include <muki/text/wordpiece_tokenizer.h>

namespace muki::test {

inline std::vector<std::string> tiny_vocab() {
  std::vector<std::string> v = {"[PAD]", "[UNK]", "[CLS]", "[SEP]"};
  for (const char* w : {"the", "game", "sound", "music", "play", "graphics", "image", "text",
                        "editor", "font", "audio", "video", "player", "arcade", "puzzle", "a",
                        "an", "and", "for", "with", "of", "to", "is", "in", "##s", "##ing"})
    v.push_back(w);
  return v;
}

inline core::ModelConfig small_config(const std::string& type, int64_t labels = 3) {
  core::ModelConfig c;
  c.type = type;
  c.vocab_size = static_cast<int64_t>(tiny_vocab().size());
  c.num_labels = labels;
  c.hidden = 32;
  c.layers = 2;
  c.heads = 4;
  c.ffn = 64;
  c.max_length = 32;
  c.dropout = 0.1;
  c.filters = 8;
  return c;
}

}  // namespace muki::test
