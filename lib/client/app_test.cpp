#include "client/app_test.hpp"

#include "util/error.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace mlctl::client {

namespace {

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
    case '&':
      out += "&amp;";
      break;
    case '<':
      out += "&lt;";
      break;
    case '>':
      out += "&gt;";
      break;
    case '"':
      out += "&quot;";
      break;
    case '\'':
      out += "&apos;";
      break;
    default:
      // XML 1.0 has no control characters but tab and newlines.
      out +=
          (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') ? ' ' : c;
    }
  }
  return out;
}

// Checks a 200 answer of `count` images: one class per image, within its probabilities.
std::string answer_problem(const InferenceReply& r, std::size_t count) {
  if (r.status != 200) {
    return "HTTP " + std::to_string(r.status) + (r.error.empty() ? "" : ": " + r.error);
  }
  if (r.classes.size() != count || r.probabilities.size() != count) {
    return "expected " + std::to_string(count) + " prediction(s), got " +
           std::to_string(r.classes.size());
  }
  for (std::size_t i = 0; i < count; ++i) {
    const auto& p = r.probabilities[i];
    if (r.classes[i] < 0 || static_cast<std::size_t>(r.classes[i]) >= p.size()) {
      return "class " + std::to_string(r.classes[i]) + " is not one of the " +
             std::to_string(p.size()) + " probabilities";
    }
    for (const float v : p) {
      if (!std::isfinite(v)) {
        return "a probability is not finite";
      }
    }
  }
  if (r.trace_id.empty()) {
    return "the answer has no trace id";
  }
  return {};
}

AppTestCase timed(const std::string& name, const std::function<std::string()>& check) {
  AppTestCase c;
  c.name = name;
  const auto t0 = std::chrono::steady_clock::now();
  const auto problem = check();
  c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  c.passed = problem.empty();
  c.message = problem;
  return c;
}

// A case that sends `body` and expects one of `statuses`.
AppTestCase expect_refusal(InferenceClient& client, const std::string& app, const std::string& name,
                           const std::string& body, std::initializer_list<long> statuses) {
  return timed(name, [&]() -> std::string {
    const auto r = client.post_predict(app, body);
    if (std::find(statuses.begin(), statuses.end(), r.status) != statuses.end()) {
      return {};
    }
    std::string expected;
    for (const auto s : statuses) {
      expected += (expected.empty() ? "" : " or ") + std::to_string(s);
    }
    return "expected HTTP " + expected + ", got " + std::to_string(r.status) +
           (r.error.empty() ? "" : ": " + r.error);
  });
}

} // namespace

double percentile(std::vector<double> values, double q) {
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
  return values[std::min(values.size(), std::max<std::size_t>(rank, 1)) - 1];
}

AppTestReport run_app_test(InferenceClient& client, const data::LabeledImages& golden,
                           const AppTestOptions& o, const util::ProgressFn& progress) {
  if (o.batch_size == 0) {
    throw Error(ErrorKind::invalid_input, "--batch-size: must be at least 1");
  }
  const std::size_t pixels = golden.rows * golden.cols;
  const std::size_t n = o.samples == 0 ? golden.count : std::min(o.samples, golden.count);
  if (n == 0 || pixels == 0) {
    throw Error(ErrorKind::invalid_input, "the golden set has no images");
  }
  const auto t_start = std::chrono::steady_clock::now();
  AppTestReport report;
  report.application = o.application;
  report.min_accuracy = o.min_accuracy;

  // The golden set.
  std::vector<double> latencies;
  std::string first_failure;
  const auto golden_start = std::chrono::steady_clock::now();
  for (std::size_t start = 0; start < n; start += o.batch_size) {
    const auto count = std::min(o.batch_size, n - start);
    const std::span<const std::uint8_t> images(golden.x.data() + start * pixels, count * pixels);
    const auto r = client.predict(o.application, images, pixels);
    ++report.requests;
    latencies.push_back(r.seconds * 1000.0);
    if (const auto problem = answer_problem(r, count); !problem.empty()) {
      ++report.failed_requests;
      if (first_failure.empty()) {
        first_failure = "images " + std::to_string(start) + ".." +
                        std::to_string(start + count - 1) + ": " + problem;
      }
    } else {
      report.images += count;
      report.answered_by[r.model] += count;
      for (std::size_t i = 0; i < count; ++i) {
        report.correct += r.classes[i] == golden.y[start + i] ? 1 : 0;
      }
    }
    if (progress) {
      progress({"golden set", start + count, n, "img", ""});
    }
  }
  report.accuracy = static_cast<double>(report.correct) / static_cast<double>(n);
  report.latency_p50_ms = percentile(latencies, 0.50);
  report.latency_p99_ms = percentile(latencies, 0.99);
  AppTestCase accuracy;
  accuracy.name = "golden set accuracy";
  accuracy.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - golden_start).count();
  const std::string measured = "accuracy " + fixed(report.accuracy, 4) + " (" +
                               std::to_string(report.correct) + "/" + std::to_string(n) +
                               "), minimum " + fixed(o.min_accuracy, 4);
  if (report.failed_requests > 0) {
    accuracy.message = std::to_string(report.failed_requests) + " of " +
                       std::to_string(report.requests) +
                       " request(s) failed, first: " + first_failure + "; " + measured;
  } else if (report.accuracy < o.min_accuracy) {
    accuracy.message = measured + ": under the minimum";
  } else {
    accuracy.passed = true;
    accuracy.message = measured;
  }
  report.cases.push_back(accuracy);

  if (o.edge_cases) {
    const auto& app = o.application;
    for (const auto& [name, value] : {std::pair{"all-zero image is answered", std::uint8_t{0}},
                                      std::pair{"all-one image is answered", std::uint8_t{255}}}) {
      report.cases.push_back(timed(name, [&, v = value]() -> std::string {
        const std::vector<std::uint8_t> image(pixels, v);
        return answer_problem(client.predict(app, image, pixels), 1);
      }));
    }
    {
      const std::vector<std::uint8_t> short_image(pixels - 1, 0);
      report.cases.push_back(expect_refusal(client, app, "wrong shape is refused",
                                            images_body(short_image, pixels - 1), {400}));
    }
    {
      auto body = images_body(std::vector<std::uint8_t>(pixels, 0), pixels);
      body.replace(body.find("0.0"), 3,
                   "NaN"); // JSON has no NaN: a server must refuse it, not crash
      report.cases.push_back(expect_refusal(client, app, "NaN is refused", body, {400}));
    }
    report.cases.push_back(
        expect_refusal(client, app, "empty batch is refused", "{\"images\":[]}", {400}));
    {
      const std::vector<std::uint8_t> zeros((o.max_batch + 1) * pixels, 0);
      report.cases.push_back(expect_refusal(
          client, app,
          "batch over the limit (" + std::to_string(o.max_batch + 1) + " images) is refused",
          images_body(zeros, pixels), {413, 400}));
    }
  }
  report.passed =
      std::all_of(report.cases.begin(), report.cases.end(), [](const auto& c) { return c.passed; });
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return report;
}

std::string junit_xml(const AppTestReport& report) {
  const auto failures = std::count_if(report.cases.begin(), report.cases.end(),
                                      [](const auto& c) { return !c.passed; });
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  const auto suite = xml_escape("mlctl test " + report.application);
  out += "<testsuites name=\"" + suite + "\" tests=\"" + std::to_string(report.cases.size()) +
         "\" failures=\"" + std::to_string(failures) + "\" errors=\"0\" time=\"" +
         fixed(report.seconds, 3) + "\">\n";
  out += "  <testsuite name=\"" + suite + "\" tests=\"" + std::to_string(report.cases.size()) +
         "\" failures=\"" + std::to_string(failures) + "\" errors=\"0\" skipped=\"0\" time=\"" +
         fixed(report.seconds, 3) + "\">\n";
  out += "    <properties>\n";
  const std::vector<std::pair<std::string, std::string>> props = {
      {"application", report.application},
      {"accuracy", fixed(report.accuracy, 6)},
      {"min_accuracy", fixed(report.min_accuracy, 6)},
      {"images", std::to_string(report.images)},
      {"latency_p50_ms", fixed(report.latency_p50_ms, 3)},
      {"latency_p99_ms", fixed(report.latency_p99_ms, 3)},
  };
  for (const auto& [k, v] : props) {
    out += "      <property name=\"" + xml_escape(k) + "\" value=\"" + xml_escape(v) + "\"/>\n";
  }
  out += "    </properties>\n";
  const auto classname = xml_escape("mlctl.test." + report.application);
  for (const auto& c : report.cases) {
    out += "    <testcase classname=\"" + classname + "\" name=\"" + xml_escape(c.name) +
           "\" time=\"" + fixed(c.seconds, 3) + "\"";
    if (c.passed) {
      out += c.message.empty() ? "/>\n"
                               : ">\n      <system-out>" + xml_escape(c.message) +
                                     "</system-out>\n    </testcase>\n";
    } else {
      out += ">\n      <failure message=\"" + xml_escape(c.message) + "\" type=\"check\">" +
             xml_escape(c.message) + "</failure>\n    </testcase>\n";
    }
  }
  out += "  </testsuite>\n</testsuites>\n";
  return out;
}

nlohmann::json to_json(const AppTestReport& r) {
  nlohmann::json cases = nlohmann::json::array();
  for (const auto& c : r.cases) {
    cases.push_back(
        {{"name", c.name}, {"passed", c.passed}, {"message", c.message}, {"seconds", c.seconds}});
  }
  return {{"application", r.application},
          {"passed", r.passed},
          {"accuracy", r.accuracy},
          {"min_accuracy", r.min_accuracy},
          {"images", r.images},
          {"correct", r.correct},
          {"requests", r.requests},
          {"failed_requests", r.failed_requests},
          {"latency_p50_ms", r.latency_p50_ms},
          {"latency_p99_ms", r.latency_p99_ms},
          {"answered_by", r.answered_by},
          {"cases", cases},
          {"seconds", r.seconds}};
}

} // namespace mlctl::client
