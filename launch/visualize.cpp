// Filters and feature maps as PNG images (libpng).
#include "launch/visualize.hpp"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "framework/error.hpp"
#include "launch/font.hpp"

namespace hubel::launch {

namespace fs = std::filesystem;

namespace {
png_image png_header(const Image& image) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = image.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  return png;
}
}  // namespace

void write_png(const std::string& path, const Image& image) {
  png_image png = png_header(image);
  if (!png_image_write_to_file(&png, path.c_str(), 0, image.pixels.data(),
                               static_cast<png_int_32>(image.width * image.channels), nullptr))
    throw DataError(cat("cannot write ", path, ": ", png.message));
}

std::vector<uint8_t> encode_png(const Image& image) {
  png_image png = png_header(image);
  png_alloc_size_t size = 0;
  const auto stride = static_cast<png_int_32>(image.width * image.channels);
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, image.pixels.data(), stride, nullptr))
    throw Error(cat("cannot encode a PNG: ", png.message));
  std::vector<uint8_t> out(size);
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, image.pixels.data(), stride, nullptr))
    throw Error(cat("cannot encode a PNG: ", png.message));
  out.resize(size);
  return out;
}

Image sample_image(const float* x, int64_t channels, int64_t h, int64_t w, int64_t scale) {
  const int64_t n = channels * h * w;
  const auto [lo, hi] = std::minmax_element(x, x + n);
  const float range = *hi > *lo ? *hi - *lo : 1.0f;
  Image img;
  img.channels = channels == 3 ? 3 : 1;
  img.width = w * scale;
  img.height = h * scale;
  img.pixels.resize(static_cast<size_t>(img.width * img.height * img.channels));
  for (int64_t r = 0; r < img.height; ++r)
    for (int64_t c = 0; c < img.width; ++c)
      for (int ch = 0; ch < img.channels; ++ch) {
        const float v = x[(ch * h + r / scale) * w + c / scale];
        img.pixels[static_cast<size_t>((r * img.width + c) * img.channels + ch)] =
            static_cast<uint8_t>(std::lround(255.0f * (v - *lo) / range));
      }
  return img;
}

Image tile_grid(const std::vector<const float*>& tiles, int64_t h, int64_t w, int64_t columns, int64_t scale) {
  const auto n = static_cast<int64_t>(tiles.size());
  columns = std::max<int64_t>(1, std::min(columns, n));
  const int64_t rows = (n + columns - 1) / columns;
  Image img;
  img.width = columns * (w * scale + 1) + 1;
  img.height = rows * (h * scale + 1) + 1;
  img.pixels.assign(static_cast<size_t>(img.width * img.height), 128);
  for (int64_t t = 0; t < n; ++t) {
    const float* v = tiles[static_cast<size_t>(t)];
    const auto [lo, hi] = std::minmax_element(v, v + h * w);
    const float span = *hi - *lo;
    const int64_t x0 = (t % columns) * (w * scale + 1) + 1, y0 = (t / columns) * (h * scale + 1) + 1;
    for (int64_t y = 0; y < h * scale; ++y)
      for (int64_t x = 0; x < w * scale; ++x) {
        const float value = v[(y / scale) * w + x / scale];
        const double g = span > 0 ? 255.0 * (value - *lo) / span : 128.0;
        img.pixels[static_cast<size_t>((y0 + y) * img.width + x0 + x)] = static_cast<uint8_t>(std::lround(g));
      }
  }
  return img;
}

int64_t draw_text(Image& image, int64_t x, int64_t y, const std::string& text, int64_t scale, uint8_t ink) {
  int64_t at = x;
  for (char ch : text) {
    const uint8_t* g = glyph(ch);
    for (int col = 0; col < kGlyphWidth; ++col)
      for (int row = 0; row < kGlyphHeight; ++row) {
        if (!(g[col] >> row & 1)) continue;
        for (int64_t dy = 0; dy < scale; ++dy)
          for (int64_t dx = 0; dx < scale; ++dx) {
            const int64_t px = at + col * scale + dx, py = y + row * scale + dy;
            if (px < 0 || py < 0 || px >= image.width || py >= image.height) continue;
            for (int c = 0; c < image.channels; ++c)
              image.pixels[static_cast<size_t>((py * image.width + px) * image.channels + c)] = ink;
          }
      }
    at += kGlyphAdvance * scale;
  }
  return at - x;
}

Image with_caption(const Image& image, const std::string& caption) {
  // Twice the font's size where the caption then fits the picture's width.
  const int64_t pad = 4, chars = static_cast<int64_t>(caption.size());
  const int64_t scale = chars * kGlyphAdvance * 2 + 2 * pad <= image.width ? 2 : 1;
  const int64_t text_w = chars * kGlyphAdvance * scale;
  const int64_t band = kGlyphHeight * scale + 2 * pad;
  Image out;
  out.channels = image.channels;
  out.width = std::max(image.width, text_w + 2 * pad);
  out.height = image.height + band;
  out.pixels.assign(static_cast<size_t>(out.width * out.height * out.channels), 255);
  draw_text(out, pad, pad, caption, scale, 0);
  for (int64_t r = 0; r < image.height; ++r)
    std::copy_n(image.pixels.data() + r * image.width * image.channels, image.width * image.channels,
                out.pixels.data() + ((band + r) * out.width) * out.channels);
  return out;
}

namespace {

// Spatial [h, w] of a per-sample shape [C, ...]: [C, W] -> 1 x W; [C, H, W]; [C, D, H, W] -> H x W
// of the middle depth slice (offset returned).
bool plane(const Shape& s, int64_t& h, int64_t& w, int64_t& offset) {
  offset = 0;
  if (s.rank() == 2) return h = 1, w = s[1], true;
  if (s.rank() == 3) return h = s[1], w = s[2], true;
  if (s.rank() == 4) return h = s[2], w = s[3], offset = (s[1] / 2) * s[2] * s[3], true;
  return false;
}

// Scale so that a tile is at least about 96 pixels high, at most 16 times.
int64_t scale_for(int64_t h, int64_t w) {
  return std::clamp<int64_t>(96 / std::max<int64_t>(1, std::max(h, w / 4)), 1, 16);
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  return out;
}

}  // namespace

std::vector<Picture> draw_network(Net& net, const std::string& dir, const std::string& sample) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw DataError(cat("cannot create ", dir, ": ", ec.message()));
  std::vector<Picture> out;
  auto emit = [&](const std::string& name, const Image& tiles, const std::string& what, const std::string& label) {
    const std::string path = (fs::path(dir) / name).string();
    const Image img = with_caption(tiles, sample.empty() ? label : label + " - " + sample);
    write_png(path, img);
    out.push_back({path, what, img.width, img.height});
  };
  int64_t h = 0, w = 0, off = 0;
  // The input, per channel.
  const Shape& in = net.input_shape();
  const ConstTensorView x = net.input(1);
  if (plane(in, h, w, off)) {
    std::vector<const float*> tiles;
    for (int64_t c = 0; c < in[0]; ++c) tiles.push_back(x.data() + c * (in.numel() / in[0]) + off);
    emit("input.png", tile_grid(tiles, h, w, in[0], scale_for(h, w) * 2), cat("the input, ", in.str()), "input");
  }
  // The first convolution's filters: weights [K, C/groups, k...].
  for (size_t i = 0; i < net.size(); ++i) {
    const Layer& l = net.layer(i);
    if (!l.has_filters() || l.params().empty()) continue;
    const Param& p = l.params()[0];
    if (p.shape.rank() == 4 || p.shape.rank() == 3) {
      const int64_t K = p.shape[0], C = p.shape[1], kh = p.shape.rank() == 4 ? p.shape[2] : 1,
                    kw = p.shape[p.shape.rank() - 1];
      std::vector<const float*> tiles;
      for (int64_t k = 0; k < K; ++k)
        for (int64_t c = 0; c < C; ++c) tiles.push_back(p.w + (k * C + c) * kh * kw);
      // One row per filter, one column per input channel; a single channel: a square grid.
      const auto columns = C > 1 ? C : static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(K))));
      emit(cat("filters_", l.name(), ".png"),
           tile_grid(tiles, kh, kw, columns, std::clamp<int64_t>(64 / std::max(kh, kw), 4, 16)),
           C > 1 ? cat("the ", K, " filters of ", l.name(), " (rows) over its ", C, " input channels (columns)")
                 : cat("the ", K, " filters of ", l.name()),
           cat(l.name(), " filters"));
    }
    break;
  }
  // Feature maps of every convolution and pooling layer.
  for (size_t i = 0; i < net.size(); ++i) {
    const Layer& l = net.layer(i);
    if (!l.spatial()) continue;
    const ConstTensorView y = net.activation(l.name(), 1);
    const Shape per = y.shape().drop_first();
    if (!plane(per, h, w, off)) continue;
    const int64_t C = per[0], stride = per.numel() / C;
    std::vector<const float*> tiles;
    for (int64_t c = 0; c < C; ++c) tiles.push_back(y.data() + c * stride + off);
    const auto columns = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(C))));
    emit(cat("maps_", l.name(), ".png"), tile_grid(tiles, h, w, h == 1 ? 1 : columns, scale_for(h, w)),
         cat("the ", C, " feature map(s) of ", l.name(), " (", l.type(), "), ", per.str()), cat(l.name(), " maps"));
  }
  // One page showing them all.
  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>hubel visualize"
       << (sample.empty() ? "" : ": " + html_escape(sample))
       << "</title><style>body{font-family:sans-serif;margin:2em;color:#222}figure{margin:0 0 2em 0}"
          "img{image-rendering:pixelated;border:1px solid #ccc}</style></head><body>\n<h1>What the network sees"
       << (sample.empty() ? "" : ": " + html_escape(sample)) << "</h1>\n";
  for (const auto& p : out)
    html << "<figure><img src=\"" << html_escape(fs::path(p.path).filename().string()) << "\" width=\"" << p.width * 2
         << "\" alt=\"" << html_escape(p.what) << "\"><figcaption>" << html_escape(p.what)
         << "</figcaption></figure>\n";
  html << "</body></html>\n";
  const std::string page = (fs::path(dir) / "visualize.html").string();
  std::ofstream f(page, std::ios::trunc);
  f << html.str();
  if (!f.flush()) throw DataError(cat("cannot write ", page));
  out.push_back({page, "one page showing them all", 0, 0});
  return out;
}

}  // namespace hubel::launch
