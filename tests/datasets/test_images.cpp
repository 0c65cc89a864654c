// PNG and JPEG decoding, resizing and the image-folder converter: pixels against known
// arrays (PNG exactly, JPEG within the codec's error), worked resizing examples, and
// every kind of bad file named.
#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "datasets/encoded_images.hpp"
#include "datasets/hdf5_dataset.hpp"
#include "datasets/image_folder.hpp"
#include "datasets/images.hpp"
#include "datasets/loader.hpp"
#include "datasets/open.hpp"
#include "datasets/transform.hpp"
#include "framework/config.hpp"
#include "framework/error.hpp"
#include "tests/expect_error.hpp"
#include "tests/temp_dir.hpp"

namespace hubel::datasets {
namespace {

namespace fs = std::filesystem;
using test::error_of;

using test::TempDir;

// A w x h image of `channels`, its values a known pattern with structure (no noise).
Image8 pattern(int64_t w, int64_t h, int channels, int seed) {
  Image8 im{w, h, channels, std::vector<uint8_t>(static_cast<size_t>(w * h * channels))};
  for (int c = 0; c < channels; ++c)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        im.pixels[static_cast<size_t>((c * h + y) * w + x)] =
            static_cast<uint8_t>((seed * 37 + c * 80 + x * 7 + y * 3 + (x / 4 + y / 4) % 2 * 60) % 256);
  return im;
}

void write(const fs::path& p, const std::vector<uint8_t>& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

int max_diff(const Image8& a, const Image8& b) {
  int d = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) d = std::max(d, std::abs(a.pixels[i] - b.pixels[i]));
  return d;
}

TEST(Images, PngRoundTripsExactly) {
  for (int channels : {1, 3}) {
    const Image8 im = pattern(13, 9, channels, channels);
    const auto png = encode_png8(im);
    const ImageHeader h = read_image_header(png, "a.png");
    EXPECT_EQ(h.format, "png");
    EXPECT_EQ(h.width, 13);
    EXPECT_EQ(h.height, 9);
    EXPECT_EQ(h.channels, channels);
    const Image8 back = decode_image(png, "a.png", channels);
    EXPECT_EQ(back.pixels, im.pixels);
  }
  // Color to gray: ITU-R 601 luma, rounded; gray to RGB: repeated.
  const Image8 rgb = pattern(4, 3, 3, 5);
  const Image8 gray = decode_image(encode_png8(rgb), "c.png", 1);
  for (int64_t i = 0; i < 12; ++i)
    EXPECT_EQ(gray.pixels[static_cast<size_t>(i)],
              (299 * rgb.pixels[static_cast<size_t>(i)] + 587 * rgb.pixels[static_cast<size_t>(12 + i)] +
               114 * rgb.pixels[static_cast<size_t>(24 + i)] + 500) /
                  1000);
  const Image8 g = pattern(4, 3, 1, 2);
  const Image8 three = decode_image(encode_png8(g), "g.png", 3);
  for (int c = 0; c < 3; ++c) EXPECT_TRUE(std::equal(g.pixels.begin(), g.pixels.end(), three.pixels.begin() + c * 12));
}

TEST(Images, RgbaPngDropsAlpha) {
  const uint8_t rgba[8] = {10, 20, 30, 0, 200, 100, 50, 128};  // 2x1 pixels
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = 2, png.height = 1, png.format = PNG_FORMAT_RGBA;
  png_alloc_size_t size = 0;
  ASSERT_TRUE(png_image_write_to_memory(&png, nullptr, &size, 0, rgba, 0, nullptr));
  std::vector<uint8_t> bytes(size);
  ASSERT_TRUE(png_image_write_to_memory(&png, bytes.data(), &size, 0, rgba, 0, nullptr));
  bytes.resize(size);
  EXPECT_EQ(read_image_header(bytes, "a.png").channels, 4);
  const Image8 im = decode_image(bytes, "a.png", 3);
  EXPECT_EQ(im.pixels, (std::vector<uint8_t>{10, 200, 20, 100, 30, 50}));  // planar, alpha gone
}

TEST(Images, JpegWithinTheCodecsError) {
  for (int channels : {1, 3}) {
    // A smooth image (JPEG's case; sharp color edges lose more to its halved chroma).
    Image8 im{32, 24, channels, std::vector<uint8_t>(static_cast<size_t>(32 * 24 * channels))};
    for (int c = 0; c < channels; ++c)
      for (int y = 0; y < 24; ++y)
        for (int x = 0; x < 32; ++x)
          im.pixels[static_cast<size_t>((c * 24 + y) * 32 + x)] = static_cast<uint8_t>(40 + c * 50 + 2 * x + 2 * y);
    const auto jpg = encode_jpeg8(im, 95);
    EXPECT_EQ(read_image_header(jpg, "a.jpg").format, "jpeg");
    const Image8 back = decode_image(jpg, "a.jpg", channels);
    ASSERT_EQ(back.pixels.size(), im.pixels.size());
    EXPECT_LE(max_diff(back, im), 8) << channels;
    // Decoding is deterministic: the same bytes, the same pixels.
    EXPECT_EQ(decode_image(jpg, "a.jpg", channels).pixels, back.pixels);
  }
}

TEST(Images, BadFilesAreNamed) {
  auto err = [](const std::vector<uint8_t>& b) {
    return error_of<DataError>([&] { decode_image(b, "dir/x.jpg", 3); });
  };
  EXPECT_EQ(err({}), "dir/x.jpg: an empty file (0 bytes), not an image");
  EXPECT_NE(err({'h', 'e', 'l', 'l', 'o'}).find("dir/x.jpg: not a PNG or JPEG image"), std::string::npos);
  auto jpg = encode_jpeg8(pattern(64, 64, 3, 1), 90);
  jpg.resize(jpg.size() / 2);
  EXPECT_NE(err(jpg).find("dir/x.jpg: a damaged or truncated JPEG (libjpeg: "), std::string::npos) << err(jpg);
  auto png = encode_png8(pattern(64, 64, 3, 1));
  png.resize(png.size() / 2);
  EXPECT_NE(err(png).find("dir/x.jpg: a damaged or truncated PNG"), std::string::npos) << err(png);
  // A header claiming 100000 x 100000 pixels (its CRC right): refused before allocating.
  auto big = encode_png8(pattern(4, 4, 1, 1));
  for (int i = 0; i < 2; ++i) {
    const uint32_t v = 100000;
    for (int k = 0; k < 4; ++k) big[16 + 4 * i + k] = static_cast<uint8_t>(v >> (24 - 8 * k));
  }
  const uint32_t crc = static_cast<uint32_t>(crc32(0, big.data() + 12, 17));
  for (int k = 0; k < 4; ++k) big[29 + k] = static_cast<uint8_t>(crc >> (24 - 8 * k));
  EXPECT_NE(err(big).find("dir/x.jpg: 100000x100000 pixels is more than hubel decodes"), std::string::npos) << err(big);
  // 16-bit PNG: refused by name.
  png_image p16{};
  p16.version = PNG_IMAGE_VERSION;
  p16.width = 2, p16.height = 2, p16.format = PNG_FORMAT_LINEAR_Y;
  const uint16_t px[4] = {0, 1000, 40000, 65535};
  png_alloc_size_t size = 0;
  ASSERT_TRUE(png_image_write_to_memory(&p16, nullptr, &size, 0, px, 0, nullptr));
  std::vector<uint8_t> b16(size);
  ASSERT_TRUE(png_image_write_to_memory(&p16, b16.data(), &size, 0, px, 0, nullptr));
  b16.resize(size);
  EXPECT_NE(err(b16).find("a 16-bit PNG"), std::string::npos) << err(b16);
}

TEST(Images, ResizeAndCropWorkedExamples) {
  // The same size: unchanged. A constant image stays constant at any size.
  const Image8 im = pattern(10, 6, 1, 1);
  EXPECT_EQ(resize_image(im, 6, 10).pixels, im.pixels);
  Image8 flat{8, 8, 1, std::vector<uint8_t>(64, 77)};
  for (const auto& [h, w] : {std::pair{3, 5}, {16, 12}, {1, 1}})
    for (uint8_t v : resize_image(flat, h, w).pixels) EXPECT_EQ(v, 77);
  // Halving 1 x 4 [0, 40, 80, 120]: the triangle of radius 2 centred at 1 and 3 gives
  // weights 3/7, 3/7, 1/7 on [0, 40, 80] -> 28.57 -> 29; and on [40, 80, 120] -> 91.43 -> 91.
  Image8 ramp{4, 1, 1, {0, 40, 80, 120}};
  EXPECT_EQ(resize_image(ramp, 1, 2).pixels, (std::vector<uint8_t>{29, 91}));
  // Doubling 1 x 2 [0, 100]: plain bilinear, edges clamped: 0, 25, 75, 100.
  Image8 two{2, 1, 1, {0, 100}};
  EXPECT_EQ(resize_image(two, 1, 4).pixels, (std::vector<uint8_t>{0, 25, 75, 100}));
  // The centre crop, and fit: 20 wide x 40 high to 10 x 10 scales to 10 x 20, then takes
  // rows 5..14.
  const Image8 tall = pattern(20, 40, 1, 4);
  const Image8 c = center_crop(tall, 4, 6);
  EXPECT_EQ(c.pixels[0], tall.pixels[18 * 20 + 7]);
  const Image8 f = fit_image(tall, 10, 10, true);
  EXPECT_EQ(f.width, 10);
  EXPECT_EQ(f.height, 10);
  const Image8 half = resize_image(tall, 20, 10);
  EXPECT_TRUE(std::equal(f.pixels.begin(), f.pixels.end(), half.pixels.begin() + 5 * 10));
  EXPECT_EQ(fit_image(tall, 10, 10, false).pixels, resize_image(tall, 10, 10).pixels);
}

// A folder of 3 classes (sorted: ant, bee, cat) of known images, PNG and JPEG.
void make_folder(const fs::path& root) {
  int seed = 0;
  for (const char* cls : {"cat", "ant", "bee"})
    for (int i = 0; i < 3; ++i)
      write(root / cls / cat("img", i, i == 2 ? ".JPG" : ".png"),
            i == 2 ? encode_jpeg8(pattern(12, 10, 1, seed++), 95) : encode_png8(pattern(12, 10, 1, seed++)));
  write(root / "ant" / "notes.txt", {'x'});
}

TEST(ImageFolder, ConvertsClassesInOrderWithTheRightPixels) {
  TempDir d;
  make_folder(d.path / "in");
  ImageFolderOptions o;
  const ImageFolderResult r = convert_image_folder((d.path / "in").string(), (d.path / "o.h5").string(), o);
  EXPECT_EQ(r.ignored, 1);
  EXPECT_TRUE(r.skipped.empty());
  EXPECT_NE(r.summary.find("train 9 x [1, 10, 12]; 3 classes"), std::string::npos) << r.summary;
  Hdf5Dataset ds((d.path / "o.h5").string(), "train");
  EXPECT_EQ(ds.class_names(), (std::vector<std::string>{"ant", "bee", "cat"}));
  Tensor x(Shape{1, 10, 12}.with_batch(9));
  int32_t labels[9];
  std::vector<int64_t> all{0, 1, 2, 3, 4, 5, 6, 7, 8};
  ds.read(all, x.view(), labels, TensorView());
  // ant's images were seeds 3, 4, 5 (cat came first in make_folder), bee's 6, 7, 8, cat's 0, 1, 2.
  const int seeds[9] = {3, 4, 5, 6, 7, 8, 0, 1, 2};
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(labels[i], i / 3);
    const Image8 want = pattern(12, 10, 1, seeds[i]);
    int worst = 0;
    for (int64_t p = 0; p < 120; ++p)
      worst = std::max(worst, std::abs(static_cast<int>(x[i * 120 + p]) - want.pixels[static_cast<size_t>(p)]));
    EXPECT_LE(worst, i % 3 == 2 ? 12 : 0) << i;  // PNG exactly, JPEG within the codec's error
  }
}

TEST(ImageFolder, BadFilesStopOrAreSkippedAndSizesMustAgree) {
  TempDir d;
  const fs::path in = d.path / "in", out = d.path / "o.h5";
  make_folder(in);
  write(in / "bee" / "broken.png", {'n', 'o', 't'});
  ImageFolderOptions o;
  const std::string msg = error_of<DataError>([&] { convert_image_folder(in.string(), out.string(), o); });
  EXPECT_NE(msg.find((in / "bee" / "broken.png").string() + ": not a PNG or JPEG image"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(1 bad file(s) found reading the headers); nothing was written: remove them, or --skip-bad to "
                     "convert the rest"),
            std::string::npos)
      << msg;
  EXPECT_FALSE(fs::exists(out));
  o.skip_bad = true;
  ImageFolderResult r = convert_image_folder(in.string(), out.string(), o);
  EXPECT_EQ(r.skipped.size(), 1u);
  EXPECT_NE(r.summary.find("train 9 x"), std::string::npos) << r.summary;
  // Another size: an error naming both files, unless --size resizes them all.
  fs::remove(in / "bee" / "broken.png");
  write(in / "bee" / "wide.png", encode_png8(pattern(24, 10, 3, 9)));
  o.skip_bad = false;
  const std::string size_msg = error_of<DataError>([&] { convert_image_folder(in.string(), out.string(), o); });
  EXPECT_NE(size_msg.find("wide.png: 24x10 pixels, but "), std::string::npos) << size_msg;
  EXPECT_NE(size_msg.find("give --size H,W"), std::string::npos) << size_msg;
  o.height = 8, o.width = 8;
  r = convert_image_folder(in.string(), out.string(), o);
  EXPECT_NE(r.summary.find("train 10 x [3, 8, 8]"), std::string::npos) << r.summary;  // a color image: RGB
  o.channels = 1;
  o.classes = "cat,bee";
  r = convert_image_folder(in.string(), out.string(), o);
  EXPECT_NE(r.summary.find("train 7 x [1, 8, 8]; 2 classes"), std::string::npos) << r.summary;
}

TEST(ImageFolder, AugmentationsReadFromTheDataSection) {
  TempDir d;
  make_folder(d.path / "in");
  convert_image_folder((d.path / "in").string(), (d.path / "o.h5").string(), {});
  const std::string file = (d.path / "o.h5").string();
  const Splits s = open(Config::parse(
      "{file: " + file +
          ", augment: {flip: true, vflip: 0.25, resized_crop: {scale: [0.5, 1]}, rotate: 10, brightness: 0.2, "
          "contrast: [0.9, 1.1], erase: {p: 0.5}, eval_crop: 0.875}}",
      "exp.yaml"));
  ASSERT_TRUE(s.transform);
  EXPECT_EQ(s.transform->describe(),
            "scale 0.00392157; random flips; vertical flips; random resized crops (0.5-1 of the area); rotations (-10 "
            "to 10 degrees); color jitter; random erasing; evaluation: the centre 0.875 resized");
  const std::string msg = error_of<ConfigError>(
      [&] { open(Config::parse("{file: " + file + ", augment: {rotate: [10, -10]}}", "exp.yaml")); });
  EXPECT_NE(msg.find("(augment.rotate): the range must be low <= high"), std::string::npos) << msg;
  EXPECT_THROW(open(Config::parse("{file: " + file + ", augment: {saturation: 0.2}}", "exp.yaml")), ConfigError);
}

TEST(ImageFolder, SplitDirectories) {
  TempDir d;
  make_folder(d.path / "in" / "train");
  make_folder(d.path / "in" / "test");
  fs::remove_all(d.path / "in" / "test" / "bee");
  ImageFolderOptions o;
  o.split_dir = true;
  const auto r = convert_image_folder((d.path / "in").string(), (d.path / "o.h5").string(), o);
  EXPECT_NE(r.summary.find("train 9 x [1, 10, 12]; test 6 x [1, 10, 12]; 3 classes"), std::string::npos) << r.summary;
  Hdf5Dataset test((d.path / "o.h5").string(), "test");
  Tensor x(Shape{1, 10, 12}.with_batch(6));
  int32_t labels[6];
  test.read(std::vector<int64_t>{0, 1, 2, 3, 4, 5}, x.view(), labels, TensorView());
  EXPECT_EQ(std::vector<int32_t>(labels, labels + 6), (std::vector<int32_t>{0, 0, 0, 2, 2, 2}));  // ant, cat
  make_folder(d.path / "in" / "val");
  fs::create_directories(d.path / "in" / "val" / "dog");
  const std::string msg =
      error_of<DataError>([&] { convert_image_folder((d.path / "in").string(), (d.path / "o.h5").string(), o); });
  EXPECT_NE(msg.find("val/dog: a class folder that"), std::string::npos) << msg;
}

}  // namespace
}  // namespace hubel::datasets

namespace hubel::datasets {
namespace {

// One sample [C, H, W] through a transform with the given options, augmenting.
TransformOptions copy(const TransformOptions& o) {
  TransformOptions c;
  c.scale = o.scale, c.mean = o.mean, c.std = o.std, c.pad = o.pad, c.crop_pad = o.crop_pad, c.flip = o.flip;
  c.flip_p = o.flip_p, c.vflip_p = o.vflip_p, c.resized_crop_scale = o.resized_crop_scale;
  c.resized_crop_ratio = o.resized_crop_ratio, c.rotate = o.rotate, c.brightness = o.brightness;
  c.contrast = o.contrast, c.saturation = o.saturation, c.erase_p = o.erase_p, c.erase_scale = o.erase_scale;
  c.erase_ratio = o.erase_ratio, c.eval_crop = o.eval_crop;
  return c;
}

std::vector<float> augmented(const TransformOptions& o, const Shape& s, const std::vector<float>& x, int64_t id = 0,
                             bool augment = true, uint64_t seed = 1) {
  Transform t(copy(o), s);
  Tensor in(s.with_batch(1)), out(t.output_shape().with_batch(1));
  std::copy(x.begin(), x.end(), in.data());
  const int64_t ids[1] = {id};
  t.apply(in.view(), ids, seed, 0, augment, out.view());
  return std::vector<float>(out.data(), out.data() + out.numel());
}

// A 4 x 4 image whose value at (row, col) is 10 row + col.
std::vector<float> grid4() {
  std::vector<float> v(16);
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) v[static_cast<size_t>(r * 4 + c)] = static_cast<float>(10 * r + c);
  return v;
}

TEST(Augment, FlipsAndRotationsWorkedExamples) {
  const Shape s{1, 4, 4};
  TransformOptions o;
  o.vflip_p = 1;
  auto y = augmented(o, s, grid4());
  EXPECT_EQ(y[0], 30);  // row 3 first
  EXPECT_EQ(y[15], 3);
  o = TransformOptions{};
  o.flip = true, o.flip_p = 1;
  y = augmented(o, s, grid4());
  EXPECT_EQ(y[0], 3);
  EXPECT_EQ(y[15], 30);
  // 90 degrees about the centre: exact (whole pixel positions); no pixel lost.
  o = TransformOptions{};
  o.rotate = {90, 90, true};
  y = augmented(o, s, grid4());
  std::vector<float> sorted = y;
  std::sort(sorted.begin(), sorted.end());
  auto g = grid4();
  std::sort(g.begin(), g.end());
  EXPECT_EQ(sorted, g);
  // The corners go round: the top left takes the value of one of the other corners.
  EXPECT_TRUE(y[0] == 3 || y[0] == 30) << y[0];
  EXPECT_EQ(y[5] + y[6] + y[9] + y[10], 11 + 12 + 21 + 22);  // the centre stays the centre
  // 45 degrees: the corners come from outside the image: the background (0 here).
  o.rotate = {45, 45, true};
  y = augmented(o, s, grid4());
  EXPECT_EQ(y[0], 0);
  EXPECT_EQ(y[15], 0);
}

TEST(Augment, ResizedCropsAndEvalCropWorkedExamples) {
  const Shape s{1, 4, 4};
  // A quarter of the area at ratio 1: a 2 x 2 window at some (r0, c0) enlarged twice. The
  // image is sampled bilinearly at the output's pixel centres mapped into the window,
  // r0 - 0.25 + h / 2 (clamped at the image's edges); 10 row + col is linear, so the
  // output is that function there, exactly.
  TransformOptions o;
  o.resized_crop_scale = {0.25, 0.25, true};
  o.resized_crop_ratio = {1, 1, true};
  std::set<int> windows;
  for (int64_t id = 0; id < 12; ++id) {
    const auto y = augmented(o, s, grid4(), id);
    int found = -1;
    for (int r0 = 0; r0 <= 2 && found < 0; ++r0)
      for (int c0 = 0; c0 <= 2 && found < 0; ++c0) {
        bool all = true;
        for (int h = 0; h < 4; ++h)
          for (int w = 0; w < 4; ++w) {
            const double ry = std::clamp(r0 - 0.25 + 0.5 * h, 0.0, 3.0), rx = std::clamp(c0 - 0.25 + 0.5 * w, 0.0, 3.0);
            all = all && std::abs(y[static_cast<size_t>(h * 4 + w)] - (10 * ry + rx)) < 1e-4;
          }
        if (all) found = r0 * 3 + c0;
      }
    EXPECT_GE(found, 0) << id;
    windows.insert(found);
  }
  EXPECT_GE(windows.size(), 3u);  // the windows vary with the sample
  // The whole area: the image as it is.
  o.resized_crop_scale = {1, 1, true};
  EXPECT_EQ(augmented(o, s, grid4()), grid4());
  // Evaluation: the centre half of each side (rows and columns 1..2) enlarged, sampled as
  // above: the output's corners at 0.75 and 2.25.
  o = TransformOptions{};
  o.eval_crop = 0.5;
  const auto y = augmented(o, s, grid4(), 0, false);
  EXPECT_FLOAT_EQ(y[0], 8.25f);
  EXPECT_FLOAT_EQ(y[15], 24.75f);
}

TEST(Augment, ColorJitterAndErasingWorkedExamples) {
  // Brightness 2: every value doubled, clamped at 255 (uint8 data: scale 1/255 -> 1).
  TransformOptions o;
  o.scale = 1.0f / 255;
  o.brightness = {2, 2, true};
  std::vector<float> x{10, 100, 200, 0};
  auto y = augmented(o, Shape{1, 2, 2}, x);
  EXPECT_FLOAT_EQ(y[0], 20.0f / 255);
  EXPECT_FLOAT_EQ(y[1], 200.0f / 255);
  EXPECT_FLOAT_EQ(y[2], 1.0f);
  // Contrast 0: every pixel the image's mean gray; saturation 0: each pixel its gray.
  o = TransformOptions{};
  o.contrast = {0, 0, true};
  y = augmented(o, Shape{1, 2, 2}, x);
  for (float v : y) EXPECT_FLOAT_EQ(v, 77.5f);
  o = TransformOptions{};
  o.saturation = {0, 0, true};
  y = augmented(o, Shape{3, 1, 1}, {100, 50, 0});
  for (float v : y) EXPECT_NEAR(v, 0.299 * 100 + 0.587 * 50, 1e-4);
  // Erasing a quarter at ratio 1 of a 4 x 4 image: a 2 x 2 block set to 0.
  o = TransformOptions{};
  o.erase_p = 1;
  o.erase_scale = {0.25, 0.25, true};
  o.erase_ratio = {1, 1, true};
  std::vector<float> ones(16, 1.0f);
  y = augmented(o, Shape{1, 4, 4}, ones);
  EXPECT_EQ(std::count(y.begin(), y.end(), 0.0f), 4);
  // Keyed by (seed, epoch, sample): the same draw again, another for another sample.
  o = TransformOptions{};
  o.rotate = {-30, 30, true};
  o.brightness = {0.5, 1.5, true};
  EXPECT_EQ(augmented(o, Shape{1, 4, 4}, grid4(), 3), augmented(o, Shape{1, 4, 4}, grid4(), 3));
  EXPECT_NE(augmented(o, Shape{1, 4, 4}, grid4(), 3), augmented(o, Shape{1, 4, 4}, grid4(), 4));
  // Not augmenting: none of it.
  EXPECT_EQ(augmented(o, Shape{1, 4, 4}, grid4(), 3, false), grid4());
}

TEST(Augment, OptionsReadFromTheDataSectionWithErrorsNamed) {
  EXPECT_THROW(Transform(
                   [] {
                     TransformOptions o;
                     o.saturation = {0.5, 1.5, true};
                     return o;
                   }(),
                   Shape{1, 4, 4}),
               ConfigError);
  EXPECT_THROW(Transform(
                   [] {
                     TransformOptions o;
                     o.rotate = {-10, 10, true};
                     return o;
                   }(),
                   Shape{1, 4, 4, 4}),
               ConfigError);
}

// ---- Images stored encoded (hubel convert images --encoded) ----

std::vector<uint8_t> file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Two classes of images of different sizes, PNG and JPEG, gray and color.
void make_sized_folder(const fs::path& root) {
  const int sizes[6][2] = {{40, 30}, {24, 64}, {33, 33}, {50, 20}, {16, 16}, {64, 48}};
  for (int i = 0; i < 6; ++i) {
    const Image8 im = pattern(sizes[i][0], sizes[i][1], i % 2 ? 3 : 1, i);
    write(root / (i < 3 ? "a" : "b") / cat("f", i, i % 3 == 1 ? ".jpg" : ".png"),
          i % 3 == 1 ? encode_jpeg8(im, 90) : encode_png8(im));
  }
}

TEST(Encoded, TheFilesAsTheyAreWithTheirShapesAndStatistics) {
  TempDir d;
  const fs::path in = d.path / "in", out = d.path / "e.h5";
  make_sized_folder(in);
  ImageFolderOptions o;
  o.encoded = true;
  const ImageFolderResult r = convert_image_folder(in.string(), out.string(), o);
  EXPECT_NE(r.summary.find("train 6; 2 classes; 3 channel(s), stored encoded"), std::string::npos) << r.summary;
  EXPECT_TRUE(is_encoded_split(out.string(), "train"));
  // Different sizes and none recorded: the samples' size must be given.
  const std::string msg = error_of<DataError>([&] { EncodedImages(out.string(), "train"); });
  EXPECT_NE(msg.find("e.h5:/train: the images have 6 different sizes and the file records none for the samples; "
                     "give data.size: [H, W]"),
            std::string::npos)
      << msg;
  EncodedImages e(out.string(), "train", Hdf5Dataset::kDefaultMemoryBytes, {20, 24});
  EXPECT_EQ(e.size(), 6);
  EXPECT_EQ(e.sample_shape(), (Shape{3, 20, 24}));
  EXPECT_EQ(e.class_names(), (std::vector<std::string>{"a", "b"}));
  // The bytes are the files' own, in the converter's order (class, then name), whether
  // held in memory or read per sample.
  const std::vector<fs::path> files{in / "a/f0.png", in / "a/f1.jpg", in / "a/f2.png",
                                    in / "b/f3.png", in / "b/f4.jpg", in / "b/f5.png"};
  EncodedImages streamed(out.string(), "train", Hdf5Dataset::kStreamed, {20, 24});
  for (const EncodedImages* set : {&e, &streamed}) {
    std::vector<std::vector<uint8_t>> bytes;
    int32_t labels[3];
    const std::vector<int64_t> idx{5, 0, 3};
    set->read_encoded(idx, bytes, labels);
    for (size_t i = 0; i < idx.size(); ++i) {
      EXPECT_EQ(bytes[i], file_bytes(files[static_cast<size_t>(idx[i])])) << idx[i];
      EXPECT_EQ(labels[i], idx[i] < 3 ? 0 : 1);
    }
  }
  EXPECT_EQ(e.decoded_bytes(), 3 * (40 * 30 + 24 * 64 + 33 * 33 + 50 * 20 + 16 * 16 + 64 * 48));
  // The per-channel statistics of the decoded train images, exactly.
  double sum = 0, sq = 0, n = 0;
  for (const auto& f : files) {
    const Image8 im = decode_image(file_bytes(f), f.string(), 3);
    for (int64_t q = 0; q < im.width * im.height; ++q) {
      const double v = im.pixels[static_cast<size_t>(q)];  // channel 0
      sum += v, sq += v * v, n += 1;
    }
  }
  const FileStats st = read_file_stats(out.string());
  ASSERT_EQ(st.mean.size(), 3u);
  EXPECT_DOUBLE_EQ(st.mean[0], sum / n);
  EXPECT_DOUBLE_EQ(st.std[0], std::sqrt(sq / n - (sum / n) * (sum / n)));
  // --size recorded: the samples' size without data.size.
  o.height = 32, o.width = 32;
  convert_image_folder(in.string(), (d.path / "s.h5").string(), o);
  EXPECT_EQ(EncodedImages((d.path / "s.h5").string(), "train").sample_shape(), (Shape{3, 32, 32}));
  // A damaged file is found decoding, named, and nothing is written (or it is skipped).
  const auto whole = file_bytes(files[0]);
  write(in / "b" / "f9.png", std::vector<uint8_t>(whole.begin(), whole.begin() + 60));
  const std::string bad =
      error_of<DataError>([&] { convert_image_folder(in.string(), (d.path / "x.h5").string(), o); });
  EXPECT_NE(bad.find("f9.png: a damaged or truncated PNG"), std::string::npos) << bad;
  EXPECT_FALSE(fs::exists(d.path / "x.h5"));
  o.skip_bad = true;
  EXPECT_EQ(convert_image_folder(in.string(), (d.path / "x.h5").string(), o).skipped.size(), 1u);
  EXPECT_EQ(EncodedImages((d.path / "x.h5").string(), "train").size(), 6);
}

TEST(Encoded, ShrinkingIsAntialiasedWorkedExample) {
  // A 4 x 4 ramp (each row 0, 10, 20, 30) to 2 x 2: scale 2, a triangle filter of half
  // width 2 (PIL's antialiased bilinear). Output column 0 is centred at source 0.5: taps
  // at -1, 0, 1, 2 weigh 1/8, 3/8, 3/8, 1/8; -1 is outside, so the rest is renormalized:
  // (3/8 0 + 3/8 10 + 1/8 20) / (7/8) = 50/7; column 1 mirrors it: 120 - 50/7 - ... = 160/7.
  TransformOptions o;
  const Transform t(std::move(o), Shape{1, 2, 2});
  std::vector<uint8_t> ramp(16);
  for (int i = 0; i < 16; ++i) ramp[static_cast<size_t>(i)] = static_cast<uint8_t>(10 * (i % 4));
  float y[4];
  t.apply_image(ramp.data(), 4, 4, 0, 1, 0, false, y);
  EXPECT_FLOAT_EQ(y[0], 50.0f / 7);
  EXPECT_FLOAT_EQ(y[1], 160.0f / 7);
  EXPECT_FLOAT_EQ(y[2], 50.0f / 7);
  EXPECT_FLOAT_EQ(y[3], 160.0f / 7);
  // Within rounding of resize_image's (the converter's), PIL's filter.
  const Image8 r = resize_image(Image8{4, 4, 1, ramp}, 2, 2);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], r.pixels[static_cast<size_t>(i)], 0.5) << i;
  // Evaluation of a wide image: the centre square (the shorter side fitted), columns 2-5
  // of an 8 x 4 image whose outer quarters are 200 and middle 50. The filter reaches one
  // column past the window on each side (weight 1/8, as PIL's resize of a box does):
  // 200 / 8 + 50 7 / 8 = 68.75 everywhere.
  std::vector<uint8_t> wide(32);
  for (int i = 0; i < 32; ++i) wide[static_cast<size_t>(i)] = (i % 8 < 2 || i % 8 >= 6) ? 200 : 50;
  t.apply_image(wide.data(), 4, 8, 0, 1, 0, false, y);
  for (float v : y) EXPECT_FLOAT_EQ(v, 68.75f);
}

TEST(Encoded, AWholeImageOfTheInputShapeIsTransformedAsTheStoredSample) {
  // Bit for bit, with every augmentation, so that training on encoded PNGs of the samples'
  // size gives the weights of training on the decoded ones.
  const Shape s{3, 12, 10};
  const Image8 im = pattern(10, 12, 3, 5);
  std::vector<float> stored(im.pixels.begin(), im.pixels.end());
  TransformOptions o;
  o.scale = 1.0f / 255;
  o.mean = {0.5f, 0.4f, 0.3f}, o.std = {0.2f, 0.25f, 0.3f};
  o.flip = true;
  o.resized_crop_scale = {0.3, 1, true}, o.resized_crop_ratio = {0.75, 4.0 / 3, true};
  o.rotate = {-10, 10, true};
  o.brightness = {0.8, 1.2, true};
  o.erase_p = 0.5;
  TransformOptions integer;  // the integer path: crop_pad and flip alone
  integer.scale = 1.0f / 255, integer.crop_pad = 2, integer.flip = true;
  for (bool plain : {false, true}) {
    const Transform t(copy(plain ? integer : o), s);
    for (int64_t id = 0; id < 8; ++id)
      for (bool augment : {true, false}) {
        std::vector<float> a(static_cast<size_t>(s.numel())), b(a.size());
        const int64_t ids[1] = {id};
        t.apply(ConstTensorView(stored.data(), s.with_batch(1)), ids, 3, 1, augment,
                TensorView(a.data(), s.with_batch(1)));
        t.apply_image(im.pixels.data(), 12, 10, id, 3, 1, augment, b.data());
        EXPECT_EQ(a, b) << id << " " << augment << " " << plain;
      }
  }
}

TEST(Encoded, TheLoaderDecodesOnItsThreadsTheSameOnAnyCount) {
  TempDir d;
  const fs::path in = d.path / "in", out = d.path / "e.h5";
  make_sized_folder(in);
  ImageFolderOptions io;
  io.encoded = true;
  io.height = io.width = 16;
  convert_image_folder(in.string(), out.string(), io);
  const EncodedImages set(out.string(), "train");
  TransformOptions o;
  o.scale = 1.0f / 255;
  o.resized_crop_scale = {0.2, 1, true}, o.resized_crop_ratio = {0.75, 4.0 / 3, true};
  o.flip = true;
  const Transform t(copy(o), set.sample_shape());
  // What the loader must give: each sample decoded and transformed whole.
  auto expected = [&](int64_t id, int64_t epoch) {
    std::vector<std::vector<uint8_t>> b;
    const std::vector<int64_t> one{id};
    set.read_encoded(one, b, nullptr);
    const Image8 im = decode_image(b[0], "x", 3);
    std::vector<float> y(static_cast<size_t>(set.sample_shape().numel()));
    t.apply_image(im.pixels.data(), im.height, im.width, id, 9, epoch, true, y.data());
    return y;
  };
  for (int decode_threads : {0, 1})
    for (int prefetch : {0, 2}) {
      LoaderOptions lo;
      lo.batch = 4, lo.seed = 9, lo.augment = true, lo.prefetch = prefetch, lo.decode_threads = decode_threads;
      Loader loader(set, &t, lo);
      for (int64_t epoch : {0, 1}) {
        loader.start(epoch);
        const auto order = loader.epoch_order(epoch);
        Batch b;
        int64_t seen = 0;
        while (loader.next(b)) {
          for (int64_t r = 0; r < b.rows; ++r) {
            const int64_t id = order[static_cast<size_t>(b.first_sample + r)];
            const auto want = expected(id, epoch);
            EXPECT_TRUE(std::equal(want.begin(), want.end(), b.x.data() + r * set.sample_shape().numel())) << id;
            EXPECT_EQ(b.labels[r], id < 3 ? 0 : 1);
          }
          seen += b.rows;
        }
        EXPECT_EQ(seen, 6);
      }
    }
}

TEST(Encoded, ADamagedSampleInTheFileIsNamedByTheLoader) {
  TempDir d;
  EncodedContents c;
  c.classes = {"a", "b"};
  c.channels = 1;
  const std::vector<uint8_t> good = encode_png8(pattern(8, 8, 1, 1));
  std::vector<uint8_t> all = good;
  all.insert(all.end(), {'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'});
  c.splits.push_back(
      {"train",
       {0, static_cast<int64_t>(good.size()), static_cast<int64_t>(all.size())},
       {1, 8, 8, 1, 8, 8},
       {0, 1},
       [&](int64_t first, int64_t last, uint8_t* to) {
         std::copy(all.begin() + (first ? static_cast<int64_t>(good.size()) : 0),
                   all.begin() + (last == 1 ? static_cast<int64_t>(good.size()) : static_cast<int64_t>(all.size())),
                   to);
       }});
  const std::string file = (d.path / "bad.h5").string();
  write_encoded_dataset_file(file, c);
  const EncodedImages set(file, "train");
  const Transform t(TransformOptions{}, set.sample_shape());
  LoaderOptions lo;
  lo.batch = 2, lo.shuffle = false;
  Loader loader(set, &t, lo);
  loader.start(0);
  Batch b;
  const std::string msg = error_of<DataError>([&] { loader.next(b); });
  EXPECT_NE(msg.find("bad.h5:/train: the image of sample 1: not a PNG or JPEG image"), std::string::npos) << msg;
  // Offsets that do not fit the bytes are refused on opening, named.
  c.splits[0].offsets = {0, 5, static_cast<int64_t>(all.size())};
  c.splits[0].offsets[1] = 0;
  write_encoded_dataset_file(file, c);
  const std::string off = error_of<DataError>([&] { EncodedImages(file, "train"); });
  EXPECT_NE(off.find("bad.h5:/train/offsets: sample 0 has 0 bytes (offsets must ascend)"), std::string::npos) << off;
}

}  // namespace
}  // namespace hubel::datasets
