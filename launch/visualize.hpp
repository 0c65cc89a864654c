// hubel visualize: PNG images of what a trained network learned and computes, as the
// classic figures show them: the first convolution layer's filters, and the feature maps
// of every convolution and pooling layer for one sample.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "framework/net.hpp"

namespace hubel::launch {

// An 8-bit image, grayscale or RGB, written with libpng.
struct Image {
  int64_t width = 0, height = 0;
  int channels = 1;             // 1 (gray) or 3 (RGB, interleaved)
  std::vector<uint8_t> pixels;  // row-major
};
void write_png(const std::string& path, const Image& image);
std::vector<uint8_t> encode_png(const Image& image);  // the PNG file's bytes
// A sample [C, H, W] (C 1 or 3) as an image, its values stretched to [0, 255] by the
// sample's own minimum and maximum, scaled up `scale` times.
Image sample_image(const float* x, int64_t channels, int64_t h, int64_t w, int64_t scale);

// Tiles of values, each normalized to [0, 255] by its own minimum and maximum (constant
// tiles are mid-gray), scaled up `scale` times (nearest neighbour) and laid out `columns`
// per row with a 1-pixel border of gray between and around them. Each tile is h x w
// values starting at tiles[i].
Image tile_grid(const std::vector<const float*>& tiles, int64_t h, int64_t w, int64_t columns, int64_t scale);

// Text in the 5x7 font (launch/font.hpp), each pixel `scale` x `scale`, its top left at
// (x, y), in gray `ink`; what falls outside the image is cut off. Returns the width drawn.
int64_t draw_text(Image& image, int64_t x, int64_t y, const std::string& text, int64_t scale, uint8_t ink);
// The image under a white band holding `caption` in black (wider if the caption is).
Image with_caption(const Image& image, const std::string& caption);

struct Picture {
  std::string path, what;
  int64_t width = 0, height = 0;
};

// Writes into `dir`: input.png (the sample as the network sees it), filters_<layer>.png
// (the first convolution's kernels: one row per filter, one column per input channel;
// with one input channel, a square grid of filters) and maps_<layer>.png for every
// convolution and pooling layer (one tile per channel), each captioned on the picture
// with the layer and `sample` (e.g. "sample 3: Trouser, predicted Trouser"); and
// visualize.html, one page showing them all. The net must have been run forward on the
// sample (row 0).
std::vector<Picture> draw_network(Net& net, const std::string& dir, const std::string& sample = "");

}  // namespace hubel::launch
