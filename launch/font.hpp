// A 5x7 bitmap font for printable ASCII, to write labels onto pictures (hubel visualize)
// without a font library: each glyph is 5 columns, bit 0 the top row.
#pragma once

#include <cstdint>

namespace hubel::launch {

// The glyph of character c (32..126; anything else draws as '?').
const uint8_t* glyph(char c);
constexpr int kGlyphWidth = 5, kGlyphHeight = 7, kGlyphAdvance = 6;

}  // namespace hubel::launch
