// The integration-test runner (`mlctl test`) against a real cpp-httplib server on 127.0.0.1
// that gets the edge cases wrong on purpose: every one of them must be reported.
#include "client/app_test.hpp"
#include "client/inference_client.hpp"
#include "util/error.hpp"

#include <doctest/doctest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <thread>

using mlctl::Error;
namespace client = mlctl::client;

namespace {

// A sloppy gateway: answers class 3 to any body that parses as JSON (whatever its shape or
// batch size) and 500 to anything else.
class SloppyGateway {
public:
  SloppyGateway() {
    m_server.Post(R"(/api/v1/applications/([^/]+)/predict)", [](const httplib::Request& req, httplib::Response& res) {
      const auto body = nlohmann::json::parse(req.body, nullptr, false);
      if (body.is_discarded()) {
        res.status = 500;
        res.set_content(R"({"error": {"code": "internal", "message": "boom"}})", "application/json");
        return;
      }
      nlohmann::json predictions = nlohmann::json::array();
      for (std::size_t i = 0; i < body["images"].size(); ++i) {
        predictions.push_back({{"class", 3}, {"probabilities", std::vector<float>(10, 0.1F)}});
      }
      res.set_content(nlohmann::json{{"predictions", predictions},
                                     {"model", "sloppy:1"},
                                     {"trace_id", "0af7651916cd43dd8448eb211c80319c"}}
                          .dump(),
                      "application/json");
    });
    m_server.set_keep_alive_max_count(1);
    m_port = m_server.bind_to_any_port("127.0.0.1");
    REQUIRE(m_port > 0);
    m_thread = std::thread([this] { m_server.listen_after_bind(); });
  }
  ~SloppyGateway() {
    m_server.stop();
    m_thread.join();
  }
  SloppyGateway(const SloppyGateway&) = delete;
  SloppyGateway& operator=(const SloppyGateway&) = delete;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port); }

private:
  httplib::Server m_server;
  int m_port = 0;
  std::thread m_thread;
};

mlctl::data::LabeledImages golden(std::size_t n) {
  mlctl::data::LabeledImages g;
  g.count = n;
  g.x.assign(n * 784, 0);
  for (std::size_t i = 0; i < n; ++i) {
    g.y.push_back(static_cast<std::uint8_t>(i % 2 == 0 ? 3 : 5)); // half are class 3
  }
  return g;
}

} // namespace

TEST_CASE("images are sent as floats in [0, 1]") {
  const std::vector<std::uint8_t> px = {0, 255, 128, 1};
  CHECK(client::images_body(px, 2) == R"({"images":[[0.0,1.0],[0.50196,0.00392]]})");
  CHECK(client::images_body({}, 784) == R"({"images":[]})");
}

TEST_CASE("percentiles use the nearest rank") {
  CHECK(client::percentile({}, 0.5) == 0);
  CHECK(client::percentile({5, 1, 3, 2, 4}, 0.5) == 3);
  CHECK(client::percentile({5, 1, 3, 2, 4}, 0.99) == 5);
  CHECK(client::percentile({5, 1, 3, 2, 4}, 0.0) == 1);
}

TEST_CASE("a gateway that answers what it should refuse fails the test, case by case") {
  SloppyGateway server;
  client::ApiClientOptions o;
  o.server = server.url();
  o.retries = 0;
  client::InferenceClient inference(o);
  client::AppTestOptions t;
  t.application = "app";
  t.samples = 10;
  t.batch_size = 3;
  t.min_accuracy = 0.4;
  t.max_batch = 4;
  const auto report = client::run_app_test(inference, golden(20), t);
  CHECK(report.requests == 4); // 10 images by 3
  CHECK(report.images == 10);
  CHECK(report.correct == 5);
  CHECK(report.accuracy == doctest::Approx(0.5));
  CHECK(report.answered_by == std::map<std::string, std::size_t>{{"sloppy:1", 10}});
  CHECK_FALSE(report.passed);
  std::map<std::string, std::pair<bool, std::string>> cases;
  for (const auto& c : report.cases) {
    cases[c.name] = {c.passed, c.message};
  }
  CHECK(cases.at("golden set accuracy").first);
  CHECK(cases.at("all-zero image is answered").first);
  CHECK(cases.at("all-one image is answered").first);
  CHECK(cases.at("wrong shape is refused") == std::pair{false, std::string("expected HTTP 400, got 200")});
  CHECK(cases.at("NaN is refused") == std::pair{false, std::string("expected HTTP 400, got 500: boom")});
  CHECK(cases.at("empty batch is refused") == std::pair{false, std::string("expected HTTP 400, got 200")});
  CHECK(cases.at("batch over the limit (5 images) is refused") ==
        std::pair{false, std::string("expected HTTP 413 or 400, got 200")});

  const auto xml = client::junit_xml(report);
  CHECK(xml.find(R"(<testsuites name="mlctl test app" tests="7" failures="4")") != std::string::npos);
  CHECK(xml.find(R"(<failure message="expected HTTP 400, got 500: boom" type="check">)") != std::string::npos);
  CHECK(client::to_json(report)["passed"] == false);

  t.min_accuracy = 0.6;
  t.edge_cases = false;
  const auto under = client::run_app_test(inference, golden(20), t);
  REQUIRE(under.cases.size() == 1);
  CHECK_FALSE(under.passed);
  CHECK(under.cases[0].message == "accuracy 0.5000 (5/10), minimum 0.6000: under the minimum");
}
