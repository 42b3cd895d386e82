// Routes of monitoring and maintenance (issue 6): the Prometheus exposition, an application's
// time series and health, RISE explanations and subsamples of stored traffic. Also wires the
// monitors into the platform (`start_monitoring`).
#include "api/monitor_routes.hpp"
#include "api/names.hpp"
#include "api/requests.hpp"
#include "api/time.hpp"
#include "explain/rise.hpp"
#include "server/health.hpp"
#include "server/http_internal.hpp"
#include "server/subsample.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <thread>

namespace mlctl::server::detail {

namespace {

using httplib::Request;
using httplib::Response;

Metrics& metrics_of(Platform& p) {
  if (!p.metrics) {
    throw Error(ErrorKind::unavailable, "the monitors are off (mlctl serve --no-monitoring)");
  }
  return *p.metrics;
}

// Returns the served variant of `application` that is `model:version`, or null.
std::shared_ptr<const LoadedModel> served_model(const Route& route, const std::string& model,
                                                std::int64_t version) {
  for (const auto& stage : route.stages) {
    for (const auto& v : stage.variants) {
      if (v->model->name == model && v->model->version == version) {
        return v->model;
      }
    }
  }
  return nullptr;
}

std::optional<MonitorTarget> lookup_target(Platform& p, const std::string& app,
                                           const std::string& model, std::int64_t version) {
  if (!p.gateway) {
    return std::nullopt;
  }
  const auto route = p.gateway->find(app);
  if (!route) {
    return std::nullopt;
  }
  auto loaded = served_model(*route, model, version);
  if (!loaded) {
    return std::nullopt;
  }
  MonitorTarget t;
  t.autoencoder = loaded->autoencoder ? &*loaded->autoencoder : nullptr;
  t.input_scale = loaded->input_scale;
  if (loaded->card.monitoring && loaded->card.monitoring->reconstruction.threshold > 0) {
    t.threshold = loaded->card.monitoring->reconstruction.threshold;
  }
  const auto& m = route->application.monitoring;
  if (m.is_object()) {
    if (m.contains("reconstruction_threshold")) {
      t.threshold = m["reconstruction_threshold"].get<double>();
    }
    if (m.contains("min_accuracy")) {
      t.min_accuracy = m["min_accuracy"].get<double>();
    }
    if (m.contains("window")) {
      t.window = static_cast<std::size_t>(m["window"].get<std::int64_t>());
    }
  }
  t.keep_alive = std::move(loaded);
  return t;
}

// Parses a step: "10s", "1m", "1h" or plain seconds.
std::chrono::seconds parse_step(const std::string& text) {
  if (text.empty()) {
    return std::chrono::seconds(10);
  }
  const auto step = api::parse_duration(text, true);
  if (!step || step->count() < 1 || step->count() > 86400) {
    throw Error(ErrorKind::invalid_input,
                "step '" + text.substr(0, 20) + "': expected a duration like 10s, 1m or 1h");
  }
  return *step;
}

std::chrono::system_clock::time_point parse_bound(const Request& req, const char* key,
                                                  const std::string& fallback) {
  const auto text = req.has_param(key) ? req.get_param_value(key) : fallback;
  const auto t = api::parse_time_or_age(text, std::chrono::system_clock::now());
  if (!t) {
    throw Error(ErrorKind::invalid_input, std::string(key) + " '" + text.substr(0, 40) +
                                              "': expected an RFC 3339 time or an age like 10m");
  }
  return *t;
}

// The images of an explain request: each a flat list or nested rows, floats in [0, 1] or
// integers 0-255 (the predict form); returns them in [0, 1].
std::vector<float> decode_explain_images(const nlohmann::json& images, std::size_t pixels,
                                         std::size_t& count) {
  if (!images.is_array() || images.empty()) {
    throw Error(ErrorKind::invalid_input, "images: expected a non-empty list of images");
  }
  if (images.size() > 64) {
    throw Error(ErrorKind::invalid_input, "images: at most 64 images per explain request, got " +
                                              std::to_string(images.size()));
  }
  std::vector<float> out;
  for (std::size_t i = 0; i < images.size(); ++i) {
    const auto what = "images[" + std::to_string(i) + "]";
    std::vector<double> values;
    const auto flatten = [&](const auto& self, const nlohmann::json& v, int depth) -> void {
      if (v.is_number()) {
        values.push_back(v.get<double>());
      } else if (v.is_array() && depth < 3) {
        for (const auto& x : v) {
          self(self, x, depth + 1);
        }
      } else {
        throw Error(ErrorKind::invalid_input, what + ": expected numbers");
      }
    };
    flatten(flatten, images[i], 0);
    if (values.size() != pixels) {
      throw Error(ErrorKind::invalid_input, what + ": expected " + std::to_string(pixels) +
                                                " values, got " + std::to_string(values.size()));
    }
    const double max = *std::max_element(values.begin(), values.end());
    const double min = *std::min_element(values.begin(), values.end());
    if (min < 0 || max > 255 || !std::isfinite(max)) {
      throw Error(ErrorKind::invalid_input,
                  what + ": values must be floats in [0, 1] or integers 0-255");
    }
    const double scale = max > 1.0 ? 1.0 / 255.0 : 1.0;
    for (const double v : values) {
      out.push_back(static_cast<float>(v * scale));
    }
  }
  count = images.size();
  return out;
}

nlohmann::json explain(Platform& p, const std::string& app, const nlohmann::json& body) {
  const auto route = p.gateway ? p.gateway->find(app) : nullptr;
  if (!route) {
    throw Error(ErrorKind::not_found, "application '" + app + "' is not served");
  }
  std::shared_ptr<const LoadedModel> model;
  if (body.contains("model") && body["model"].is_string()) {
    const auto ref =
        api::parse_model_ref(body["model"].get<std::string>(), api::RefVersion::required);
    if (!ref.version) {
      throw Error(ErrorKind::invalid_input,
                  "model: expected NAME:VERSION, got '" + ref.to_string() + "'");
    }
    model = served_model(*route, ref.name, *ref.version);
    if (!model) {
      throw Error(ErrorKind::not_found,
                  "model: " + ref.to_string() + " is not served by application '" + app + "'");
    }
  } else {
    const auto& stage = route->stages.back();
    model = stage.variants.at(manifest::primary_variant(route->application.stages.back()))->model;
  }
  if (model->image_input.empty() || model->model.inputs().size() != 1) {
    throw Error(ErrorKind::invalid_input,
                model->ref() + ": RISE needs a model with one image input");
  }
  explain::RiseOptions o;
  // An integer option in [min, max], checked before it is converted (1e30 converted to an
  // integer is undefined; 2.5 is no count of masks).
  const auto integer = [&](const char* key, std::uint64_t min, std::uint64_t max, auto& target) {
    if (!body.contains(key)) {
      return;
    }
    const auto& v = body[key];
    if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<std::int64_t>() < 0) ||
        v.get<std::uint64_t>() < min || v.get<std::uint64_t>() > max) {
      throw Error(ErrorKind::invalid_input, std::string(key) + ": must be an integer " +
                                                std::to_string(min) + ".." + std::to_string(max) +
                                                ", got " + v.dump());
    }
    target = static_cast<std::remove_reference_t<decltype(target)>>(v.get<std::uint64_t>());
  };
  integer("masks", 1, 100000, o.masks);
  integer("grid", 2, 28, o.grid);
  integer("seed", 0, std::numeric_limits<std::uint64_t>::max(), o.seed);
  if (body.contains("p")) {
    if (!body["p"].is_number()) {
      throw Error(ErrorKind::invalid_input, "p: expected a number in (0, 1)");
    }
    o.p = body["p"].get<double>();
  }
  explain::validate(o);
  const auto pixels = model->pixels;
  std::size_t rows = 0;
  std::size_t cols = 0;
  if (model->image_dims.size() >= 2) {
    rows = static_cast<std::size_t>(model->image_dims[model->image_dims.size() - 2]);
    cols = static_cast<std::size_t>(model->image_dims.back());
  } else {
    rows = static_cast<std::size_t>(std::lround(std::sqrt(static_cast<double>(pixels))));
    cols = rows == 0 ? 0 : pixels / rows;
  }
  if (rows * cols != pixels) {
    rows = 1;
    cols = pixels;
  }
  std::size_t count = 0;
  const auto images = decode_explain_images(body.value("images", nlohmann::json()), pixels, count);
  const auto& input = model->model.inputs().front();
  const float to_model = static_cast<float>(255.0 * model->input_scale);
  const explain::Classifier classifier = [&](const std::vector<float>& batch, std::size_t n) {
    onnx::Tensor t;
    t.name = input.name;
    t.datatype = "FP32";
    t.shape = {static_cast<std::int64_t>(n)};
    for (const auto d : model->image_dims) {
      t.shape.push_back(d);
    }
    if (t.shape.size() == 1) {
      t.shape.push_back(static_cast<std::int64_t>(pixels));
    }
    t.f32 = batch;
    for (auto& v : t.f32) {
      v *= to_model;
    }
    std::vector<std::int64_t> classes;
    std::vector<float> probabilities;
    std::size_t class_count = 0;
    const auto out = model->model.run({std::move(t)});
    if (!classify(out, n, classes, probabilities, class_count)) {
      throw Error(ErrorKind::invalid_input, model->ref() + ": no class scores among the outputs");
    }
    return probabilities;
  };
  const auto t0 = std::chrono::steady_clock::now();
  const auto maps = explain::rise(classifier, images, count, rows, cols, o);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json results = nlohmann::json::array();
  for (const auto& s : maps) {
    nlohmann::json sal = nlohmann::json::array();
    for (std::size_t c = 0; c < s.classes; ++c) {
      sal.push_back(std::vector<float>(s.map(c), s.map(c) + s.rows * s.cols));
    }
    results.push_back({{"predicted", s.predicted},
                       {"probabilities", s.probabilities},
                       {"baseline", s.baseline},
                       {"saliency", std::move(sal)}});
  }
  return {{"application", app},
          {"model", model->name},
          {"version", model->version},
          {"ref", model->ref()},
          {"labels", model->card.contract.labels},
          {"masks", o.masks},
          {"grid", o.grid},
          {"p", o.p},
          {"seed", o.seed},
          {"rows", rows},
          {"cols", cols},
          {"seconds", seconds},
          {"results", std::move(results)}};
}

std::string store_metrics(Platform& p) {
  if (!p.request_store) {
    return {};
  }
  const auto s = p.request_store->stats();
  std::string out;
  const auto counter = [&](const char* name, const char* help, std::uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name +
           " " + std::to_string(v) + "\n";
  };
  counter("mlctl_request_store_records_received_total",
          "Inference records handed to the request store.", s.records_received);
  counter("mlctl_request_store_records_stored_total",
          "Inference records written to the request store.", s.records_stored);
  counter("mlctl_request_store_records_dropped_total",
          "Inference records dropped because the store queue was full.", s.records_dropped);
  counter("mlctl_request_store_records_sampled_out_total",
          "Inference records not kept by spec.capture.sample.", s.records_sampled_out);
  counter("mlctl_request_store_rows_stored_total",
          "Rows (one per image) written to the request store.", s.rows_stored);
  counter("mlctl_request_store_write_errors_total",
          "Request-store batches lost to a database error.", s.write_errors);
  counter("mlctl_request_store_records_lost_total",
          "Inference records lost with those batches (a full disk, say).", s.records_lost);
  out += "# HELP mlctl_request_store_queue_records Records waiting to be written.\n"
         "# TYPE mlctl_request_store_queue_records gauge\nmlctl_request_store_queue_records " +
         std::to_string(s.queue_records) + "\n";
  return out;
}

nlohmann::json events_json(Platform& p, const std::string& app, std::int64_t limit) {
  auto lease = p.registry->pool().acquire();
  nlohmann::json events = nlohmann::json::array();
  for (const auto& e : list_health_events(*lease, app, limit)) {
    events.push_back(to_json(e));
  }
  return events;
}

} // namespace

void start_monitoring(Platform& p) {
  if (!p.options.monitoring) {
    return;
  }
  if (!p.options.webhook_url.empty()) {
    p.webhook = std::make_unique<Webhook>(p.options.webhook_url, p.options.webhook_ca_file, p.log);
  }
  MetricsOptions o;
  AccuracySource accuracy = [&p](const std::string& app) {
    std::map<std::pair<std::string, std::int64_t>, std::pair<std::int64_t, std::int64_t>> out;
    if (!p.request_store) {
      return out;
    }
    // Rolling accuracy: the labelled requests of the last ten minutes.
    const auto since =
        api::format_time(std::chrono::system_clock::now() - std::chrono::minutes(10));
    for (const auto& a : p.request_store->accuracy(app, since)) {
      out[{a.model, a.version}] = {a.labelled, a.correct};
    }
    return out;
  };
  p.metrics = std::make_unique<Metrics>(
      o,
      [&p](const std::string& app, const std::string& model, std::int64_t version) {
        return lookup_target(p, app, model, version);
      },
      std::move(accuracy),
      [&p](const HealthEvent& event) {
        auto e = event;
        try {
          auto lease = p.registry->pool().acquire();
          const std::lock_guard lock(p.registry->write_mutex());
          e.id = store_health_event(*lease, e);
        } catch (const std::exception& ex) {
          p.log(std::string("health event not stored: ") + ex.what());
        }
        p.log("application " + e.application + ": " + e.model + ":" + std::to_string(e.version) +
              " is " + e.to + " (" + e.monitor + " " + std::to_string(e.value) + ", threshold " +
              std::to_string(e.threshold) + ")");
        if (p.webhook) {
          p.webhook->post(e);
        }
      });
  p.inference_sinks.push_back(p.metrics.get());
}

void stop_monitoring(Platform& p) {
  if (p.metrics) {
    p.metrics->stop();
  }
}

void register_monitor_routes(httplib::Server& http, Platform& p) {
  if (p.applications) {
    p.applications->health = [&p](const std::string& app) -> nlohmann::json {
      if (!p.metrics) {
        return nullptr;
      }
      auto h = p.metrics->health_json(app);
      if (h.is_null()) {
        h = {{"application", app}, {"state", "unknown"}, {"versions", nlohmann::json::array()}};
      }
      h["events"] = events_json(p, app, 10);
      return h;
    };
  }
  http.Get(std::string(api::routes::k_prometheus),
           guarded(p.log, [&p](const Request&, Response& res) {
             res.set_content(metrics_of(p).prometheus(store_metrics(p)),
                             "text/plain; version=0.0.4; charset=utf-8");
           }));
  http.Get(
      api::routes::pattern::k_application_metrics,
      guarded(p.log, [&p](const Request& req, Response& res) {
        const auto app = application_of(req);
        const auto since = parse_bound(req, "since", "10m");
        const auto step = parse_step(req.get_param_value("step"));
        auto j = metrics_of(p).series_json(app, since, step);
        // Accuracy per step, from the labelled rows of the store.
        if (p.request_store) {
          std::map<std::pair<std::string, std::string>, std::pair<std::int64_t, std::int64_t>>
              per; // (ref, time)
          RowQuery q;
          q.application = app;
          q.since = j["since"].get<std::string>();
          q.labelled_only = true;
          q.include_input = false;
          const auto first = api::parse_time(q.since).value_or(since);
          p.request_store->for_each_row(q, [&](const api::StoredRequest& r) {
            const auto t = api::parse_time(r.time);
            if (!t || !r.predicted || !r.label) {
              return true;
            }
            const auto k =
                std::chrono::duration_cast<std::chrono::seconds>(*t - first).count() / step.count();
            const auto bucket = api::format_time(first + std::chrono::seconds(k * step.count()));
            auto& c = per[{r.model_ref() + "/" + r.variant, bucket}];
            c.first += 1;
            c.second += *r.predicted == *r.label ? 1 : 0;
            return true;
          });
          for (auto& s : j["series"]) {
            const auto key = s["ref"].get<std::string>() + "/" + s["variant"].get<std::string>();
            for (auto& point : s["points"]) {
              const auto it = per.find({key, point["time"].get<std::string>()});
              point["labelled"] = it == per.end() ? 0 : it->second.first;
              point["accuracy"] = it == per.end() || it->second.first == 0
                                      ? nlohmann::json()
                                      : nlohmann::json(static_cast<double>(it->second.second) /
                                                       static_cast<double>(it->second.first));
            }
          }
        }
        send_json(res, 200, j);
      }));
  http.Get(
      api::routes::pattern::k_application_health,
      guarded(p.log, [&p](const Request& req, Response& res) {
        const auto app = application_of(req);
        if (p.applications) {
          (void)p.applications->get(app); // 404 for an unknown application
        }
        auto h = metrics_of(p).health_json(app);
        if (h.is_null()) {
          h = {{"application", app}, {"state", "unknown"}, {"versions", nlohmann::json::array()}};
        }
        h["events"] = events_json(p, app, int_param(req, "limit", 100, 1, 10000));
        send_json(res, 200, h);
      }));
  http.Post(api::routes::pattern::k_application_explain,
            guarded(p.log, [&p](const Request& req, Response& res) {
              const auto app = application_of(req);
              const auto body = body_json(req, "explain");
              if (!body.is_object()) {
                throw Error(ErrorKind::invalid_input,
                            "explain: the body is not a JSON object {\"images\": [...]}");
              }
              send_json(res, 200, explain(p, app, body));
            }));
  http.Get(api::routes::pattern::k_application_subsample,
           guarded(p.log, [&p](const Request& req, Response& res) {
             SubsampleQuery q;
             q.application = application_of(req);
             q.n = static_cast<std::size_t>(int_param(req, "n", 1000, 1, 100000));
             q.seed = static_cast<std::uint64_t>(
                 int_param(req, "seed", 42, 0, std::numeric_limits<std::int64_t>::max()));
             if (req.has_param("since")) {
               q.since = api::format_time(parse_bound(req, "since", ""));
             }
             // Without an end, the window ends now; the answer waits 250 ms so that every
             // request that arrived before has been answered and is written by the flush
             // below: the same window holds the same rows later (the response records it, for
             // `mlctl reproduce`), and traffic sent just before is in it.
             const bool open_end = !req.has_param("until");
             q.until = api::format_time(open_end ? std::chrono::system_clock::now()
                                                 : parse_bound(req, "until", ""));
             if (req.has_param("strategy")) {
               q.strategy = req.get_param_value("strategy");
             }
             const auto labeled =
                 req.has_param("labeled") ? req.get_param_value("labeled") : std::string("only");
             if (labeled != "only" && labeled != "any") {
               throw Error(ErrorKind::invalid_input,
                           "labeled '" + labeled.substr(0, 20) + "': expected only or any");
             }
             q.labelled_only = labeled == "only";
             if (!p.request_store) {
               throw Error(ErrorKind::unavailable, "the request store is not open");
             }
             if (open_end) {
               std::this_thread::sleep_for(std::chrono::milliseconds(250));
             }
             p.request_store->flush(std::chrono::seconds(1));
             send_json(res, 200, to_json(q, subsample(*p.request_store, q)));
           }));
}

} // namespace mlctl::server::detail
