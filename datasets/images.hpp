// PNG and JPEG images as hubel's samples: decoding (libpng, libjpeg-turbo), resizing and
// cropping, planar uint8 [C, H, W]. Every failure is a DataError naming the image: a file
// that is not an image, a truncated or corrupt one, a size past the limit (read from the
// header before anything is allocated), a kind hubel does not convert (16-bit PNG, CMYK
// JPEG). No exception crosses libpng's or libjpeg's frames: their error callbacks record
// the message and jump back (setjmp/longjmp), and the caller throws.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hubel::datasets {

struct ImageHeader {
  std::string format;  // "png" or "jpeg"
  int64_t width = 0, height = 0;
  int channels = 0;  // as stored: 1 (gray), 2 (gray + alpha), 3 (RGB), 4 (RGBA or CMYK)
};

// Planar: pixels[(c * height + y) * width + x].
struct Image8 {
  int64_t width = 0, height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;
};

// The largest image hubel decodes: each side, and the pixels in all.
constexpr int64_t kMaxImageSide = 65535, kMaxImagePixels = int64_t{1} << 28;

// What the bytes are, from their header; `name` (the file) names the image in errors.
ImageHeader read_image_header(const std::vector<uint8_t>& bytes, const std::string& name);

// Decodes to `channels` (1: gray, 3: RGB): color to gray by ITU-R 601 luma (libjpeg's and
// libpng's own conversions), gray to RGB by repetition, alpha dropped.
Image8 decode_image(const std::vector<uint8_t>& bytes, const std::string& name, int channels);

// Resamples to height x width with a triangle (bilinear) filter widened by the scale
// when shrinking (antialiased, as PIL's BILINEAR), rounding to the nearest value; the same
// size returns the image unchanged.
Image8 resize_image(const Image8& image, int64_t height, int64_t width);
// The centre height x width window (the image must be at least that large).
Image8 center_crop(const Image8& image, int64_t height, int64_t width);
// To height x width: `shorter` scales the shorter side to fit, keeping the aspect ratio,
// then takes the centre crop (torchvision's Resize + CenterCrop); otherwise stretches.
Image8 fit_image(const Image8& image, int64_t height, int64_t width, bool shorter);

// Encoders, for tests and the launch scripts that build image folders.
std::vector<uint8_t> encode_png8(const Image8& image);
std::vector<uint8_t> encode_jpeg8(const Image8& image, int quality);

}  // namespace hubel::datasets
