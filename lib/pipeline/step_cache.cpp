#include "pipeline/step_cache.hpp"

#include "api/time.hpp"
#include "artifact/sha256.hpp"
#include "util/build_info.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <chrono>

namespace mlctl::pipeline {

namespace fs = std::filesystem;

namespace {

std::string build_id() {
  return std::string(build::version()) + " (" + std::string(build::git_commit()) + ")";
}

bool is_hex_key(std::string_view key) {
  return key.size() == 64 && std::all_of(key.begin(), key.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string_view hex_of(std::string_view key) {
  constexpr std::string_view prefix = "sha256:";
  if (key.substr(0, prefix.size()) == prefix) {
    key.remove_prefix(prefix.size());
  }
  return key;
}

template <class T> T field(const nlohmann::json& j, const char* name, std::string_view what) {
  if (!j.contains(name)) {
    throw Error(ErrorKind::corrupt, std::string(what) + ": " + name + ": missing");
  }
  try {
    return j.at(name).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorKind::corrupt, std::string(what) + ": " + name + ": wrong type");
  }
}

} // namespace

std::string path_digest(const fs::path& path) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (!fs::exists(st)) {
    throw Error(ErrorKind::not_found, path.string() + ": no such file or directory");
  }
  if (fs::is_regular_file(st)) {
    return "sha256:" + artifact::sha256_file(path);
  }
  if (!fs::is_directory(st)) {
    throw Error(ErrorKind::invalid_input, path.string() + ": not a file or directory");
  }
  std::vector<std::string> names;
  fs::recursive_directory_iterator it(path, ec);
  if (ec) {
    throw Error(ErrorKind::io, path.string() + ": cannot list: " + ec.message());
  }
  for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
    if (ec) {
      throw Error(ErrorKind::io, path.string() + ": cannot list: " + ec.message());
    }
    if (it->is_symlink(ec) || !it->is_regular_file(ec)) {
      continue;
    }
    names.push_back(it->path().lexically_relative(path).generic_string());
  }
  if (ec) {
    throw Error(ErrorKind::io, path.string() + ": cannot list: " + ec.message());
  }
  std::sort(names.begin(), names.end());
  std::string listing;
  for (const auto& name : names) {
    listing += artifact::sha256_file(path / name) + "  " + name + "\n";
  }
  return "sha256:" + artifact::sha256_hex(listing);
}

fs::path key_path(const fs::path& path) {
  auto p = fs::weakly_canonical(fs::absolute(path));
  if (!p.has_filename() && p.has_relative_path()) {
    p = p.parent_path();
  }
  return p;
}

std::string cache_key(const StepSpec& spec) {
  const nlohmann::json canonical = {{"format", k_record_format},
                                    {"step", spec.step},
                                    {"mlctl", build_id()},
                                    {"inputs", spec.inputs},
                                    {"parameters", spec.parameters}};
  // nlohmann::json keeps object keys sorted, so dump() is canonical.
  return "sha256:" + artifact::sha256_hex(canonical.dump());
}

nlohmann::json record_to_json(const StepRecord& r) {
  nlohmann::json outputs = nlohmann::json::array();
  for (const auto& o : r.outputs) {
    outputs.push_back({{"name", o.name}, {"path", o.path.string()}, {"digest", o.digest}});
  }
  return {{"format", k_record_format},
          {"key", r.key},
          {"step", r.step},
          {"created_at", r.created_at},
          {"mlctl", r.mlctl},
          {"seconds", r.seconds},
          {"inputs", r.inputs},
          {"parameters", r.parameters},
          {"outputs", outputs},
          {"result", r.result}};
}

StepRecord record_from_json(const nlohmann::json& j, std::string_view what) {
  if (!j.is_object()) {
    throw Error(ErrorKind::corrupt, std::string(what) + ": expected a JSON object");
  }
  const auto format = field<std::string>(j, "format", what);
  if (format != k_record_format) {
    throw Error(ErrorKind::corrupt, std::string(what) + ": format: expected " +
                                        std::string(k_record_format) + ", got '" + format + "'");
  }
  StepRecord r;
  r.key = field<std::string>(j, "key", what);
  r.step = field<std::string>(j, "step", what);
  r.created_at = field<std::string>(j, "created_at", what);
  r.mlctl = field<std::string>(j, "mlctl", what);
  r.seconds = j.contains("seconds") ? field<double>(j, "seconds", what) : 0.0;
  r.inputs = j.value("inputs", nlohmann::json::object());
  r.parameters = j.value("parameters", nlohmann::json::object());
  r.result = j.value("result", nlohmann::json());
  const auto outputs = field<nlohmann::json>(j, "outputs", what);
  if (!outputs.is_array()) {
    throw Error(ErrorKind::corrupt, std::string(what) + ": outputs: expected a list");
  }
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const std::string where = std::string(what) + ": outputs[" + std::to_string(i) + "]";
    StepOutput o;
    o.name = field<std::string>(outputs[i], "name", where);
    o.path = field<std::string>(outputs[i], "path", where);
    o.digest = field<std::string>(outputs[i], "digest", where);
    r.outputs.push_back(std::move(o));
  }
  return r;
}

StepCache::StepCache(fs::path root, bool enabled) : m_root(std::move(root)), m_enabled(enabled) {}

fs::path StepCache::record_path(std::string_view step, std::string_view key) const {
  return m_root / "steps" / std::string(step) / (std::string(hex_of(key)) + ".json");
}

Lookup StepCache::lookup(std::string_view step, std::string_view key) const {
  Lookup out;
  if (!m_enabled) {
    out.miss = "caching disabled";
    return out;
  }
  if (!is_hex_key(hex_of(key))) {
    out.miss = "malformed key";
    return out;
  }
  const auto file = record_path(step, key);
  std::string text;
  try {
    text = util::read_file(file);
  } catch (const Error& e) {
    out.miss = e.kind() == ErrorKind::not_found ? "no record" : std::string(e.what());
    return out;
  }
  StepRecord record;
  try {
    record = record_from_json(nlohmann::json::parse(text), file.string());
  } catch (const nlohmann::json::exception&) {
    out.miss = file.string() + ": not valid JSON (ignored)";
    return out;
  } catch (const Error& e) {
    out.miss = std::string(e.what()) + " (ignored)";
    return out;
  }
  if (record.key != key || record.step != step) {
    out.miss = file.string() + ": records another key (ignored)";
    return out;
  }
  for (const auto& o : record.outputs) {
    std::error_code ec;
    if (!fs::exists(o.path, ec)) {
      out.miss = o.path.string() + ": recorded output is gone";
      return out;
    }
    if (path_digest(o.path) != o.digest) {
      out.miss = o.path.string() + ": changed since the recorded run";
      return out;
    }
  }
  out.record = std::move(record);
  return out;
}

void StepCache::store(const StepRecord& record) const {
  util::write_file_atomic(record_path(record.step, record.key), record_to_json(record).dump(2) + "\n");
}

StepRun run_step(const StepCache& cache, const StepSpec& spec,
                 const std::function<StepOutcome()>& body,
                 const std::function<bool(const StepRecord&)>& still_valid,
                 const util::LogFn& log, const util::LogFn& debug) {
  StepRun run;
  run.key = cache_key(spec);
  const std::string short_key = std::string(hex_of(run.key).substr(0, 12));
  auto hit = cache.lookup(spec.step, run.key);
  if (hit.record && still_valid && !still_valid(*hit.record)) {
    hit.miss = "the recorded result is no longer valid";
    hit.record.reset();
  }
  if (hit.record) {
    run.cached = true;
    run.result = hit.record->result;
    run.note = "key " + short_key + ", recorded " + hit.record->created_at;
    if (log) {
      log(spec.step + ": cached (" + run.note + "; --no-cache to run it again)");
    }
    return run;
  }
  if (debug) {
    debug(spec.step + ": not cached: " + hit.miss + " (key " + short_key + ")");
  }
  const auto start = std::chrono::steady_clock::now();
  StepOutcome outcome = body();
  StepRecord record;
  record.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  record.key = run.key;
  record.step = spec.step;
  record.created_at = api::format_time(std::chrono::system_clock::now());
  record.mlctl = build_id();
  record.inputs = spec.inputs;
  record.parameters = spec.parameters;
  record.result = outcome.result;
  for (auto& [name, path] : outcome.outputs) {
    const auto absolute = key_path(path);
    record.outputs.push_back({name, absolute, path_digest(absolute)});
  }
  // The step succeeded: a cache that cannot be written must not turn that into a failure.
  try {
    cache.store(record);
  } catch (const Error& e) {
    if (log) {
      log(spec.step + ": not recorded in the step cache: " + e.what());
    }
  }
  run.result = std::move(outcome.result);
  return run;
}

} // namespace mlctl::pipeline
