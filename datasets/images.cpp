// PNG and JPEG decoding, resizing and cropping.
#include "datasets/images.hpp"

#include <png.h>
// jpeglib.h needs FILE and size_t first.
#include <jpeglib.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "framework/error.hpp"

namespace hubel::datasets {

namespace {

bool is_png(const std::vector<uint8_t>& b) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  return b.size() >= 8 && std::equal(sig, sig + 8, b.begin());
}
bool is_jpeg(const std::vector<uint8_t>& b) { return b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }

void check_size(int64_t w, int64_t h, const std::string& name) {
  if (w <= 0 || h <= 0) throw DataError(cat(name, ": the image header says ", w, "x", h, " pixels"));
  if (w > kMaxImageSide || h > kMaxImageSide || w * h > kMaxImagePixels)
    throw DataError(cat(name, ": ", w, "x", h, " pixels is more than hubel decodes (", kMaxImageSide,
                        " a side, 2^28 in all); a damaged header, or resize the image first"));
}

// Interleaved HWC with `from` channels to planar CHW with `to` (1 or 3): alpha dropped,
// gray repeated, color to gray by ITU-R 601 luma.
Image8 planar(const uint8_t* hwc, int64_t w, int64_t h, int from, int to) {
  Image8 out{w, h, to, std::vector<uint8_t>(static_cast<size_t>(w * h * to))};
  const int color = from >= 3 ? 3 : 1;
  for (int64_t i = 0; i < w * h; ++i) {
    const uint8_t* p = hwc + i * from;
    if (to == 1) {
      out.pixels[static_cast<size_t>(i)] =
          color == 1 ? p[0] : static_cast<uint8_t>((299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000);
    } else {
      for (int c = 0; c < 3; ++c) out.pixels[static_cast<size_t>(c * w * h + i)] = p[color == 1 ? 0 : c];
    }
  }
  return out;
}

// ---- PNG (libpng's simplified API: its errors come back as a return code) ----

struct PngRead {
  png_image png{};
  PngRead() { png.version = PNG_IMAGE_VERSION; }
  ~PngRead() { png_image_free(&png); }
};

ImageHeader png_header(PngRead& r, const std::vector<uint8_t>& b, const std::string& name) {
  if (!png_image_begin_read_from_memory(&r.png, b.data(), b.size()))
    throw DataError(cat(name, ": not a readable PNG (libpng: ", r.png.message, ")"));
  ImageHeader h{"png", static_cast<int64_t>(r.png.width), static_cast<int64_t>(r.png.height), 0};
  h.channels = static_cast<int>(PNG_IMAGE_SAMPLE_CHANNELS(r.png.format));
  check_size(h.width, h.height, name);
  if (r.png.format & PNG_FORMAT_FLAG_LINEAR)
    throw DataError(cat(name,
                        ": a 16-bit PNG; hubel reads 8-bit images (convert it, e.g. with ImageMagick's "
                        "`convert -depth 8`)"));
  return h;
}

Image8 decode_png(const std::vector<uint8_t>& b, const std::string& name, int channels) {
  PngRead r;
  const ImageHeader h = png_header(r, b, name);
  const bool color = r.png.format & PNG_FORMAT_FLAG_COLOR;
  r.png.format = color ? PNG_FORMAT_RGBA : PNG_FORMAT_GA;  // (alpha dropped below, not composed)
  const int from = color ? 4 : 2;
  std::vector<uint8_t> hwc(static_cast<size_t>(h.width * h.height * from));
  if (!png_image_finish_read(&r.png, nullptr, hwc.data(), 0, nullptr))
    throw DataError(cat(name, ": a damaged or truncated PNG (libpng: ", r.png.message, ")"));
  return planar(hwc.data(), h.width, h.height, from, channels);
}

// ---- JPEG (libjpeg: its error exit jumps back here; warnings, such as a premature end of
// the data, are errors too) ----

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  int warnings;
};

extern "C" void jpeg_fail(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegError*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}
extern "C" void jpeg_note(j_common_ptr c, int level) {
  auto* e = reinterpret_cast<JpegError*>(c->err);
  if (level < 0 && e->warnings++ == 0) (*c->err->format_message)(c, e->message);
}

// What a decode produces, on the heap: nothing in the frame that setjmp returns to twice
// changes after it.
struct JpegState {
  jpeg_decompress_struct cinfo{};
  JpegError err{};
  ImageHeader header;
  std::vector<uint8_t> hwc;
  bool cmyk = false;
};

// Returns "" or the error; fills s (the header only unless `decode`).
std::string run_jpeg(JpegState* s, const std::vector<uint8_t>& b, int channels, bool decode) {
  s->cinfo.err = jpeg_std_error(&s->err.mgr);
  s->err.mgr.error_exit = jpeg_fail;
  s->err.mgr.emit_message = jpeg_note;
  if (setjmp(s->err.jump)) {
    jpeg_destroy_decompress(&s->cinfo);
    return s->err.message;
  }
  jpeg_create_decompress(&s->cinfo);
  jpeg_mem_src(&s->cinfo, b.data(), static_cast<unsigned long>(b.size()));
  jpeg_read_header(&s->cinfo, TRUE);
  s->header = {"jpeg", static_cast<int64_t>(s->cinfo.image_width), static_cast<int64_t>(s->cinfo.image_height),
               s->cinfo.num_components};
  s->cmyk = s->cinfo.jpeg_color_space == JCS_CMYK || s->cinfo.jpeg_color_space == JCS_YCCK;
  const bool too_big = s->header.width > kMaxImageSide || s->header.height > kMaxImageSide ||
                       s->header.width * s->header.height > kMaxImagePixels;
  if (decode && !s->cmyk && !too_big) {
    s->cinfo.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&s->cinfo);
    const auto stride = static_cast<size_t>(s->cinfo.output_width) * static_cast<size_t>(s->cinfo.output_components);
    s->hwc.resize(stride * s->cinfo.output_height);
    while (s->cinfo.output_scanline < s->cinfo.output_height) {
      JSAMPROW row = s->hwc.data() + stride * s->cinfo.output_scanline;
      jpeg_read_scanlines(&s->cinfo, &row, 1);
    }
    jpeg_finish_decompress(&s->cinfo);
  }
  jpeg_destroy_decompress(&s->cinfo);
  return s->err.warnings ? std::string(s->err.message) : std::string();
}

ImageHeader jpeg_header(JpegState& s, const std::vector<uint8_t>& b, const std::string& name, int channels,
                        bool decode) {
  const std::string error = run_jpeg(&s, b, channels, decode);
  if (!error.empty()) throw DataError(cat(name, ": a damaged or truncated JPEG (libjpeg: ", error, ")"));
  check_size(s.header.width, s.header.height, name);
  if (s.cmyk) throw DataError(cat(name, ": a CMYK JPEG; hubel reads grayscale and RGB images (convert it to RGB)"));
  return s.header;
}

}  // namespace

ImageHeader read_image_header(const std::vector<uint8_t>& bytes, const std::string& name) {
  if (bytes.empty()) throw DataError(cat(name, ": an empty file (0 bytes), not an image"));
  if (is_png(bytes)) {
    PngRead r;
    return png_header(r, bytes, name);
  }
  if (is_jpeg(bytes)) {
    auto s = std::make_unique<JpegState>();
    return jpeg_header(*s, bytes, name, 1, false);
  }
  throw DataError(cat(name, ": not a PNG or JPEG image (its first bytes are neither signature)"));
}

Image8 decode_image(const std::vector<uint8_t>& bytes, const std::string& name, int channels) {
  if (channels != 1 && channels != 3) throw Error(cat("decode_image: channels must be 1 or 3, not ", channels));
  if (bytes.empty()) throw DataError(cat(name, ": an empty file (0 bytes), not an image"));
  if (is_png(bytes)) return decode_png(bytes, name, channels);
  if (is_jpeg(bytes)) {
    auto s = std::make_unique<JpegState>();
    const ImageHeader h = jpeg_header(*s, bytes, name, channels, true);
    return planar(s->hwc.data(), h.width, h.height, channels, channels);
  }
  throw DataError(cat(name, ": not a PNG or JPEG image (its first bytes are neither signature)"));
}

namespace {

// For each output index o (of a window starting at `offset` in an image of `out` pixels
// resampled from `in`), the first input index and `width` weights of the triangle filter
// (zeros past the taps it has): flat arrays, so the loops below run over contiguous data.
struct Taps {
  int64_t width = 0;
  std::vector<int64_t> first;
  std::vector<float> weights;  // first.size() x width
};
Taps taps(int64_t in, int64_t out, int64_t offset, int64_t count) {
  Taps t;
  const double scale = static_cast<double>(in) / static_cast<double>(out), support = std::max(1.0, scale);
  t.width = std::min<int64_t>(in, static_cast<int64_t>(std::ceil(2 * support)) + 2);  // (never past the row)
  t.first.resize(static_cast<size_t>(count));
  t.weights.assign(static_cast<size_t>(count * t.width), 0.0f);
  for (int64_t o = 0; o < count; ++o) {
    const double centre = (static_cast<double>(o + offset) + 0.5) * scale;
    const auto lo = std::max<int64_t>(0, static_cast<int64_t>(std::floor(centre - support)));
    const auto hi = std::min<int64_t>(in, std::min(lo + t.width, static_cast<int64_t>(std::ceil(centre + support))));
    double sum = 0;
    for (int64_t i = lo; i < hi; ++i)
      sum += std::max(0.0, 1.0 - std::abs(static_cast<double>(i) + 0.5 - centre) / support);
    for (int64_t i = lo; i < hi; ++i)
      t.weights[static_cast<size_t>(o * t.width + i - lo)] =
          static_cast<float>(std::max(0.0, 1.0 - std::abs(static_cast<double>(i) + 0.5 - centre) / support) / sum);
    t.first[static_cast<size_t>(o)] = std::min(lo, std::max<int64_t>(0, in - t.width));
    // (Shifted left near the right edge so that `width` taps stay inside: move the weights.)
    const int64_t shift = lo - t.first[static_cast<size_t>(o)];
    if (shift > 0) {
      float* w = t.weights.data() + o * t.width;
      for (int64_t k = t.width - 1; k >= 0; --k) w[k] = k >= shift ? w[k - shift] : 0.0f;
    }
  }
  return t;
}

// The window [y0, y0 + height) x [x0, x0 + width) of the image resampled to
// full_height x full_width: only the window is computed.
Image8 resize_window(const Image8& im, int64_t full_height, int64_t full_width, int64_t y0, int64_t x0, int64_t height,
                     int64_t width) {
  const Taps tx = taps(im.width, full_width, x0, width), ty = taps(im.height, full_height, y0, height);
  Image8 out{width, height, im.channels, std::vector<uint8_t>(static_cast<size_t>(width * height * im.channels))};
  // The input rows the window needs.
  const int64_t r0 = ty.first.front(), r1 = std::min(im.height, ty.first.back() + ty.width);
  std::vector<float> rows(static_cast<size_t>((r1 - r0) * width));
  for (int c = 0; c < im.channels; ++c) {
    const uint8_t* src = im.pixels.data() + c * im.width * im.height;
    for (int64_t y = r0; y < r1; ++y) {
      const uint8_t* row = src + y * im.width;
      float* dst = rows.data() + (y - r0) * width;
      for (int64_t x = 0; x < width; ++x) {
        const float* w = tx.weights.data() + x * tx.width;
        const uint8_t* p = row + tx.first[static_cast<size_t>(x)];
        float v = 0;
        for (int64_t k = 0; k < tx.width; ++k) v += w[k] * static_cast<float>(p[k]);
        dst[x] = v;
      }
    }
    uint8_t* dst = out.pixels.data() + c * width * height;
    std::vector<float> acc(static_cast<size_t>(width));
    for (int64_t y = 0; y < height; ++y) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      const float* w = ty.weights.data() + y * ty.width;
      for (int64_t k = 0; k < ty.width; ++k) {
        const int64_t r = ty.first[static_cast<size_t>(y)] + k;
        if (w[k] == 0.0f || r >= r1) continue;
        const float* row = rows.data() + (r - r0) * width;
        for (int64_t x = 0; x < width; ++x) acc[static_cast<size_t>(x)] += w[k] * row[x];
      }
      // Rounded to nearest (halves up) and clamped, without a libm call per pixel.
      for (int64_t x = 0; x < width; ++x)
        dst[y * width + x] = static_cast<uint8_t>(std::clamp(acc[static_cast<size_t>(x)], 0.0f, 255.0f) + 0.5f);
    }
  }
  return out;
}

}  // namespace

Image8 resize_image(const Image8& im, int64_t height, int64_t width) {
  if (height == im.height && width == im.width) return im;
  return resize_window(im, height, width, 0, 0, height, width);
}

Image8 center_crop(const Image8& im, int64_t height, int64_t width) {
  if (height > im.height || width > im.width)
    throw Error(cat("center_crop: ", height, "x", width, " of a ", im.height, "x", im.width, " image"));
  const int64_t y0 = (im.height - height) / 2, x0 = (im.width - width) / 2;
  Image8 out{width, height, im.channels, std::vector<uint8_t>(static_cast<size_t>(width * height * im.channels))};
  for (int c = 0; c < im.channels; ++c)
    for (int64_t y = 0; y < height; ++y)
      std::copy_n(im.pixels.data() + (c * im.height + y0 + y) * im.width + x0, width,
                  out.pixels.data() + (c * height + y) * width);
  return out;
}

Image8 fit_image(const Image8& im, int64_t height, int64_t width, bool shorter) {
  if (!shorter) return resize_image(im, height, width);
  // The scale that makes the image cover height x width; only the centre is resampled.
  const double s = std::max(static_cast<double>(height) / static_cast<double>(im.height),
                            static_cast<double>(width) / static_cast<double>(im.width));
  const int64_t h = std::max(height, static_cast<int64_t>(std::lround(static_cast<double>(im.height) * s)));
  const int64_t w = std::max(width, static_cast<int64_t>(std::lround(static_cast<double>(im.width) * s)));
  if (h == im.height && w == im.width) return center_crop(im, height, width);
  return resize_window(im, h, w, (h - height) / 2, (w - width) / 2, height, width);
}

std::vector<uint8_t> encode_png8(const Image8& im) {
  std::vector<uint8_t> hwc(im.pixels.size());
  const int64_t n = im.width * im.height;
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < im.channels; ++c)
      hwc[static_cast<size_t>(i * im.channels + c)] = im.pixels[static_cast<size_t>(c * n + i)];
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(im.width);
  png.height = static_cast<png_uint_32>(im.height);
  png.format = im.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, hwc.data(), 0, nullptr))
    throw Error(cat("cannot encode a PNG: ", png.message));
  std::vector<uint8_t> out(size);
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, hwc.data(), 0, nullptr))
    throw Error(cat("cannot encode a PNG: ", png.message));
  out.resize(size);
  return out;
}

namespace {
struct JpegWrite {
  jpeg_compress_struct cinfo{};
  JpegError err{};
  std::vector<uint8_t> hwc;
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
};

std::string run_jpeg_write(JpegWrite* s, const Image8& im, int quality) {
  s->cinfo.err = jpeg_std_error(&s->err.mgr);
  s->err.mgr.error_exit = jpeg_fail;
  if (setjmp(s->err.jump)) {
    jpeg_destroy_compress(&s->cinfo);
    return s->err.message;
  }
  jpeg_create_compress(&s->cinfo);
  jpeg_mem_dest(&s->cinfo, &s->buffer, &s->size);
  s->cinfo.image_width = static_cast<JDIMENSION>(im.width);
  s->cinfo.image_height = static_cast<JDIMENSION>(im.height);
  s->cinfo.input_components = im.channels;
  s->cinfo.in_color_space = im.channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(&s->cinfo);
  jpeg_set_quality(&s->cinfo, quality, TRUE);
  jpeg_start_compress(&s->cinfo, TRUE);
  const auto stride = static_cast<size_t>(im.width * im.channels);
  while (s->cinfo.next_scanline < s->cinfo.image_height) {
    JSAMPROW row = s->hwc.data() + stride * s->cinfo.next_scanline;
    jpeg_write_scanlines(&s->cinfo, &row, 1);
  }
  jpeg_finish_compress(&s->cinfo);
  jpeg_destroy_compress(&s->cinfo);
  return "";
}
}  // namespace

std::vector<uint8_t> encode_jpeg8(const Image8& im, int quality) {
  auto s = std::make_unique<JpegWrite>();
  const int64_t n = im.width * im.height;
  s->hwc.resize(im.pixels.size());
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < im.channels; ++c)
      s->hwc[static_cast<size_t>(i * im.channels + c)] = im.pixels[static_cast<size_t>(c * n + i)];
  const std::string error = run_jpeg_write(s.get(), im, quality);
  std::vector<uint8_t> out;
  if (s->buffer) {
    out.assign(s->buffer, s->buffer + s->size);
    std::free(s->buffer);
  }
  if (!error.empty()) throw Error(cat("cannot encode a JPEG: ", error));
  return out;
}

}  // namespace hubel::datasets
