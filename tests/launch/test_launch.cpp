// What the hubel command shows and writes: progress lines without control characters when
// standard error is not a terminal, a bar when it is; metrics.jsonl that parses line by
// line with windowed step losses; the report; image tiles.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "framework/run_log.hpp"
#include "launch/report.hpp"
#include "launch/visualize.hpp"
#include "tests/temp_dir.hpp"

namespace hubel::launch {

namespace fs = std::filesystem;

namespace {
using test::TempDir;

Trainer::Progress progress(int64_t epoch, int64_t batch, double loss_sum, int64_t correct, int64_t count) {
  Trainer::Progress p;
  p.epoch = epoch;
  p.batches_done = batch;
  p.batches_per_epoch = 4;
  p.stats = {loss_sum, correct, count};
  p.lr = 0.1;
  p.samples = count;
  p.seconds = 0.5;
  return p;
}

// Runs two epochs of 4 steps through a RunLog; returns what it wrote on stderr.
std::string run(const fs::path& dir, int terminal, int64_t max_steps = 0) {
  RunLog::Options o;
  o.dir = dir;
  o.epochs = 2;
  o.max_steps = max_steps;
  o.log_every = 2;
  o.progress_seconds = 1e-9;
  o.bar_seconds = 0;
  o.terminal = terminal;
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  {
    RunLog log(o);
    int64_t step = 0;
    for (int64_t e = 0; e < 2; ++e) {
      // Step losses 1, 3, 5, 7: sums 1, 4, 9, 16 over 1, 2, 3, 4 rows.
      for (int64_t b = 1; b <= 4; ++b) log.step(progress(e, b, static_cast<double>(b * b), b / 2, b), ++step);
      log.evaluating("val", 0, 10);
      log.evaluating("val", 4, 10);
      log.evaluating("val", 10, 10);
      EpochMetrics m;
      m.epoch = e + 1;
      m.steps = step;
      m.lr = 0.1;
      m.train_loss = 4;
      m.has_test = true;
      m.test_loss = 3.5;
      m.test_accuracy = 0.5;
      log.epoch(m);
    }
    log.test(3.25, 0.75, 100);
  }
  testing::internal::GetCapturedStdout();
  return testing::internal::GetCapturedStderr();
}
}  // namespace

TEST(RunLog, ProgressLinesForLogsHaveNoControlCharacters) {
  TempDir dir;
  const std::string err = run(dir.path, 0);
  EXPECT_NE(err.find("epoch 1/2  batch 3/4  loss 3.0000 acc 0.3333  6 img/s  run done in 0:01\n"), std::string::npos)
      << err;
  // Evaluations show their progress the same way.
  EXPECT_NE(err.find("evaluating val batch 4/10  done in "), std::string::npos) << err;
  // A run that max_steps ends inside its epochs counts steps, its time left to that step.
  const std::string cut = run(dir.path, 0, 6);
  EXPECT_NE(cut.find("step 3/6 (max_steps; epoch 1)  batch 3/4  loss 3.0000"), std::string::npos) << cut;
  EXPECT_NE(cut.find("step 6/6 (max_steps; epoch 2)  batch 2/4"), std::string::npos) << cut;
  for (char ch : err) ASSERT_TRUE(ch == '\n' || (ch >= 32 && ch < 127)) << "control character " << static_cast<int>(ch);
  const std::string bar = run(dir.path, 1);
  EXPECT_NE(bar.find("\r"), std::string::npos);
  EXPECT_NE(bar.find("[############............] 2/4"), std::string::npos) << bar;
}

TEST(RunLog, MetricsJsonlParsesLineByLineInOrder) {
  TempDir dir;
  run(dir.path, 0);
  std::ifstream f(dir.path / "metrics.jsonl");
  std::string line;
  std::vector<std::map<std::string, std::string>> records;
  while (std::getline(f, line)) {
    records.push_back(parse_json_line(line));
    ASSERT_FALSE(records.back().empty()) << "not a JSON object: " << line;
  }
  // Per epoch: steps 2 and 4, then the epoch; at the end the test.
  ASSERT_EQ(records.size(), 7u);
  EXPECT_EQ(records[0]["kind"], "step");
  EXPECT_EQ(records[0]["step"], "2");
  EXPECT_EQ(records[0]["loss"], "2");  // (1 + 3) / 2
  EXPECT_EQ(records[1]["loss"], "6");  // (5 + 7) / 2, the window since the last record
  EXPECT_EQ(records[2]["kind"], "epoch");
  EXPECT_EQ(records[2]["heldout"], "test");
  EXPECT_EQ(records[5]["epoch"], "2");
  EXPECT_EQ(records[5]["steps"], "8");
  EXPECT_EQ(records[6]["kind"], "test");
  EXPECT_EQ(records[6]["accuracy"], "0.75");
  int64_t last_step = 0;
  for (auto& r : records)
    if (r["kind"] == "step") {
      EXPECT_GT(std::stoll(r["step"]), last_step);
      last_step = std::stoll(r["step"]);
    }
  std::ifstream csv(dir.path / "metrics.csv");
  int rows = 0;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 3);  // header and two epochs
}

TEST(RunLog, JsonLinesAreCheckedStrictly) {
  EXPECT_EQ(parse_json_line(R"({"a": 1, "b": "x y", "c": null})").at("b"), "x y");
  EXPECT_TRUE(parse_json_line(R"({"a": 1,)").empty());
  EXPECT_TRUE(parse_json_line("a: 1").empty());
  EXPECT_EQ(json_number(std::nan("")), "null");
}

TEST(Report, HoldsCurvesConfusionMatrixAndSummaryEscaped) {
  TempDir dir;
  run(dir.path, 0);
  ReportInputs in{"exp.yaml", "layer <table>", "model: {}", {"cat", "dog"}, "test", 2, {40, 10, 5, 45}};
  in.about = {{"ranks x threads", "2 x 1"}, {"command", "hubel train a<b.yaml"}};
  Image img;
  img.width = 2, img.height = 1, img.pixels = {0, 255};
  in.worst = {{encode_png(img), "#7: cat, predicted dog (loss 3.5)"}};
  write_report(dir.path, in);
  std::ifstream f(dir.path / "report.html");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string html = ss.str();
  int svgs = 0;
  for (size_t at = html.find("<svg"); at != std::string::npos; at = html.find("<svg", at + 1)) ++svgs;
  EXPECT_EQ(svgs, 6);  // loss, accuracy, learning rate, throughput, wait, per-rank step time
  for (const char* title : {"<figcaption>Throughput</figcaption>", ">samples per second</text>", ">ms per step</text>",
                            "<figcaption>Step time without that wait, per rank (slowest in the last epoch: rank 0)"})
    EXPECT_NE(html.find(title), std::string::npos) << title;
  EXPECT_NE(html.find("stroke-dasharray"), std::string::npos);  // the epoch marks
  EXPECT_NE(html.find("<th>ranks x threads</th><td>2 x 1</td>"), std::string::npos);
  EXPECT_NE(html.find("hubel train a&lt;b.yaml"), std::string::npos);
  // The worst mistakes as inline PNGs: the 2x1 image's bytes, base64.
  const std::vector<uint8_t> png = encode_png(img);
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(std::string(png.begin() + 1, png.begin() + 4), "PNG");
  EXPECT_NE(html.find("<img alt=\"#7: cat, predicted dog (loss 3.5)\" src=\"data:image/png;base64,iVBORw0KGgo"),
            std::string::npos);
  // Text on dark cells is white: the diagonal's 45 is the darkest.
  EXPECT_NE(html.find("rgba(33,113,181,1);color:#fff\">45</td>"), std::string::npos) << html;
  EXPECT_NE(html.find("<polyline"), std::string::npos);
  EXPECT_NE(html.find("Confusion matrix (test, 100 samples, accuracy 85%)"), std::string::npos);
  EXPECT_NE(html.find("<th>dog</th>"), std::string::npos);
  EXPECT_NE(html.find("<td>80%</td>"), std::string::npos);  // cat: 40 of 50
  EXPECT_NE(html.find("<td>90%</td>"), std::string::npos);  // dog: 45 of 50
  EXPECT_NE(html.find("layer &lt;table&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http"), html.find("http://www.w3.org/2000/svg"));  // nothing fetched
}

// Labels on pictures: the 5x7 font's "I" (columns 0x00 0x41 0x7F 0x41 0x00), and a caption
// band above an image.
TEST(Visualize, TextAndCaptions) {
  Image img;
  img.width = 12, img.height = 7;
  img.pixels.assign(84, 255);
  EXPECT_EQ(draw_text(img, 0, 0, "I-", 1, 0), 12);
  auto at = [&](const Image& i, int64_t x, int64_t y) { return i.pixels[static_cast<size_t>(y * i.width + x)]; };
  for (int y = 0; y < 7; ++y) EXPECT_EQ(at(img, 2, y), 0) << y;  // the stem
  EXPECT_EQ(at(img, 1, 0), 0);
  EXPECT_EQ(at(img, 1, 3), 255);
  EXPECT_EQ(at(img, 3, 6), 0);
  EXPECT_EQ(at(img, 0, 3), 255);
  EXPECT_EQ(at(img, 8, 3), 0);  // '-' (0x08: row 3) in the second cell
  EXPECT_EQ(at(img, 8, 2), 255);
  // A 100-pixel-wide picture: "ab" at twice the size fits (2 x 12 + 8), the band 14 + 8 high.
  Image pic;
  pic.width = 100, pic.height = 10;
  pic.pixels.assign(1000, 77);
  Image c = with_caption(pic, "ab");
  EXPECT_EQ(c.width, 100);
  EXPECT_EQ(c.height, 10 + 22);
  EXPECT_EQ(at(c, 50, 22), 77);  // the picture below the band
  EXPECT_EQ(at(c, 99, 0), 255);
  // A caption longer than the picture: the font's size, the picture widened.
  c = with_caption(pic, std::string(20, 'x'));
  EXPECT_EQ(c.width, 20 * 6 + 8);
  EXPECT_EQ(c.height, 10 + 15);
}

TEST(Visualize, TilesAreNormalizedScaledAndFramed) {
  const float a[] = {0, 1, 2, 3}, b[] = {5, 5, 5, 5};
  const Image img = tile_grid({a, b}, 2, 2, 2, 3);
  EXPECT_EQ(img.width, 2 * (2 * 3 + 1) + 1);
  EXPECT_EQ(img.height, 2 * 3 + 2);
  auto at = [&](int64_t x, int64_t y) { return img.pixels[static_cast<size_t>(y * img.width + x)]; };
  EXPECT_EQ(at(0, 0), 128);  // border
  EXPECT_EQ(at(1, 1), 0);    // a's minimum
  EXPECT_EQ(at(3, 1), 0);    // scaled: the same value for 3 pixels
  EXPECT_EQ(at(4, 1), 85);   // 1 of 0..3
  EXPECT_EQ(at(6, 6), 255);  // a's maximum, bottom right of the tile
  EXPECT_EQ(at(9, 3), 128);  // b is constant: mid-gray
}

}  // namespace hubel::launch
