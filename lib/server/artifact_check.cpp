#include "server/artifact_check.hpp"

#include "artifact/tar.hpp"
#include "model/card.hpp"
#include "onnx/runtime.hpp"
#include "util/error.hpp"
#include "util/yaml_json.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <yaml-cpp/yaml.h>

namespace mlctl::server {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void check_tensor_names(const json& contract, const char* field, const std::vector<onnx::TensorInfo>& graph) {
  const auto it = contract.find(field);
  if (it == contract.end() || !it->is_array()) {
    return;
  }
  std::set<std::string> names;
  std::string listing;
  for (const auto& t : graph) {
    names.insert(t.name);
    listing += (listing.empty() ? "" : ", ") + t.name;
  }
  for (std::size_t i = 0; i < it->size(); ++i) {
    const auto& entry = (*it)[i];
    if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string()) {
      continue; // the card loader already reported malformed entries
    }
    const auto name = entry["name"].get<std::string>();
    if (names.count(name) == 0) {
      throw Error(ErrorKind::invalid_input, "model.yaml: spec.contract." + std::string(field) + "[" +
                                                std::to_string(i) + "].name: '" + name + "' is not " +
                                                (std::string(field) == "inputs" ? "an input" : "an output") +
                                                " of model.onnx (it has: " + listing + ")");
    }
  }
}

// The loaders' messages start with the file's name; the uploader's error says the same once.
Error as_input_error(const Error& e, const std::string& name) {
  std::string what = e.what();
  if (const auto prefix = name + ": "; what.rfind(prefix, 0) == 0) {
    what = what.substr(prefix.size());
  }
  return Error(e.kind() == ErrorKind::io ? ErrorKind::io : ErrorKind::invalid_input, name + ": " + what);
}

// The archive scan names its input by `where` (a temporary path); the uploader knows it as
// "artifact", which `with_context` adds.
Error as_scan_error(const Error& e, const std::string& where) {
  std::string what = e.what();
  if (const auto prefix = where + ": "; what.rfind(prefix, 0) == 0) {
    what = what.substr(prefix.size());
  }
  return Error(e.kind() == ErrorKind::io ? ErrorKind::io : ErrorKind::invalid_input, what);
}

onnx::Model load_onnx(std::string_view bytes, const std::string& name) {
  try {
    return onnx::Model::load(bytes, name);
  } catch (const Error& e) {
    throw as_input_error(e, name);
  }
}

artifact::UnpackLimits unpack_limits(const ArtifactLimits& limits) {
  artifact::UnpackLimits out;
  out.max_total_bytes = limits.max_unpacked_bytes;
  out.max_entries = limits.max_entries;
  return out;
}

// The files the single pass keeps in memory: the card and every ONNX file (the card, which
// may come last in the archive, names the autoencoder). Others are counted and dropped.
bool kept_in_memory(const std::string& path) {
  return path == "model.yaml" || (path.size() > 5 && path.ends_with(".onnx"));
}

struct Validation {
  CheckedArtifact out;
  std::string pending; // an autoencoder whose bytes were not kept: loaded from the file
};

// Everything after the archive scan, in the order of the messages users read: required files,
// the card (its loader names the wrong field), the graph, the contract, the autoencoder.
Validation validate(artifact::ScannedArchive& scanned) {
  Validation v;
  auto& out = v.out;
  out.files = std::move(scanned.files);
  std::sort(out.files.begin(), out.files.end());
  const auto has = [&](std::string_view f) {
    return std::binary_search(out.files.begin(), out.files.end(), f);
  };
  for (const char* required : {"model.yaml", "model.onnx"}) {
    if (!has(required)) {
      throw Error(ErrorKind::invalid_input,
                  "missing " + std::string(required) +
                      " (a model directory holds model.yaml and model.onnx)");
    }
  }
  const std::string& yaml = scanned.kept.at("model.yaml");
  try {
    (void)model::card_from_yaml(yaml, "model.yaml");
  } catch (const Error& e) {
    throw as_input_error(e, "model.yaml");
  }
  out.card = yaml_to_json(yaml, "model.yaml");
  const json spec = out.card.is_object() ? out.card.value("spec", json::object()) : json::object();
  {
    const auto model = load_onnx(scanned.kept.at("model.onnx"), "model.onnx");
    const json contract =
        spec.is_object() ? spec.value("contract", json::object()) : json::object();
    if (contract.is_object()) {
      check_tensor_names(contract, "inputs", model.inputs());
      check_tensor_names(contract, "outputs", model.outputs());
    }
  }
  scanned.kept.erase("model.onnx"); // the largest buffer: not needed any more
  if (spec.is_object() && spec.contains("monitoring") && spec["monitoring"].is_object()) {
    const auto& mon = spec["monitoring"];
    if (mon.contains("autoencoder") && mon["autoencoder"].is_string()) {
      const auto ae = mon["autoencoder"].get<std::string>();
      if (!has(ae)) {
        throw Error(ErrorKind::invalid_input,
                    "model.yaml: spec.monitoring.autoencoder: '" + ae + "' is not in the artifact");
      }
      if (const auto it = scanned.kept.find(ae); it != scanned.kept.end()) {
        (void)load_onnx(it->second, ae);
      } else {
        v.pending = ae;
      }
    }
  }
  return v;
}

artifact::ScannedArchive scan_file(const fs::path& tgz,
                                   const std::function<bool(const std::string&)>& keep,
                                   const ArtifactLimits& limits) {
  try {
    return artifact::scan_safely(tgz, keep, unpack_limits(limits));
  } catch (const Error& e) {
    throw as_scan_error(e, tgz.string());
  }
}

// Loads the autoencoder `name` from the complete artifact at `tgz` (a second pass, only for an
// autoencoder the first pass did not keep).
void load_pending(const fs::path& tgz, const std::string& name, const ArtifactLimits& limits) {
  auto scanned = scan_file(
      tgz, [&](const std::string& path) { return path == name; }, limits);
  (void)load_onnx(scanned.kept.at(name), name);
}

constexpr std::size_t k_block = 1 << 20; // bytes handed to the check thread at a time
constexpr std::size_t k_depth = 8;       // blocks in flight before `feed` waits

} // namespace

json yaml_to_json(std::string_view yaml, std::string_view name) {
  try {
    return util::yaml_to_json(YAML::Load(std::string(yaml)));
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::invalid_input, std::string(name) + ": " + util::yaml_error(e));
  }
}

CheckedArtifact check_artifact(const fs::path& tgz, const ArtifactLimits& limits) {
  return with_context(
      "artifact",
      [&] {
        auto scanned = scan_file(tgz, kept_in_memory, limits);
        auto v = validate(scanned);
        if (!v.pending.empty()) {
          load_pending(tgz, v.pending, limits);
        }
        return std::move(v.out);
      },
      ErrorKind::invalid_input);
}

// --- ArtifactCheck: the feeding thread fills 1 MiB blocks and queues them; the check thread
// hands them to libarchive one by one and returns them for reuse (no fresh pages per block).

struct ArtifactCheck::State {
  explicit State(ArtifactLimits l) : limits(l) {}

  ArtifactLimits limits;
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<std::vector<char>> full;   // filled blocks, in order
  std::vector<std::vector<char>> spare; // blocks to reuse
  std::vector<char> filling;            // feeding thread only
  std::vector<char> reading;            // check thread only: the block libarchive is reading
  bool ended = false;                   // no more input
  bool abandoned = false;               // nobody wants the result
  std::atomic<bool> done{false};        // the check thread has a result or an error
  std::optional<Validation> result;
  std::exception_ptr error;
  std::thread thread;

  std::string_view next_block() {
    std::unique_lock lock(mutex);
    if (reading.capacity() != 0) {
      spare.push_back(std::move(reading));
      reading = {};
    }
    cv.wait(lock, [&] { return !full.empty() || ended || abandoned; });
    if (abandoned || full.empty()) {
      return {}; // the end (libarchive reports a truncated archive if it wanted more)
    }
    reading = std::move(full.front());
    full.pop_front();
    cv.notify_all();
    return {reading.data(), reading.size()};
  }

  void push(std::vector<char>&& block) {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return full.size() < k_depth || done.load(); });
    if (done.load()) {
      spare.push_back(std::move(block));
      return;
    }
    full.push_back(std::move(block));
    cv.notify_all();
  }

  std::vector<char> fresh_block() {
    std::unique_lock lock(mutex);
    if (!spare.empty()) {
      auto block = std::move(spare.back());
      spare.pop_back();
      block.clear();
      return block;
    }
    lock.unlock();
    std::vector<char> block;
    block.reserve(k_block);
    return block;
  }

  void run() {
    std::optional<Validation> v;
    std::exception_ptr e;
    try {
      v = with_context(
          "artifact",
          [&] {
            const artifact::ByteSource source = [this]() noexcept -> std::string_view {
              try {
                return next_block();
              } catch (...) {
                return {};
              }
            };
            artifact::ScannedArchive scanned;
            try {
              scanned =
                  artifact::scan_safely(source, "upload", kept_in_memory, unpack_limits(limits));
            } catch (const Error& err) {
              throw as_scan_error(err, "upload");
            }
            return validate(scanned);
          },
          ErrorKind::invalid_input);
    } catch (...) {
      e = std::current_exception();
    }
    const std::lock_guard lock(mutex);
    result = std::move(v);
    error = e;
    done = true;
    cv.notify_all();
  }
};

ArtifactCheck::ArtifactCheck(ArtifactLimits limits) : m_state(std::make_unique<State>(limits)) {
  m_state->thread = std::thread([state = m_state.get()] { state->run(); });
}

ArtifactCheck::~ArtifactCheck() {
  if (m_state->thread.joinable()) {
    {
      const std::lock_guard lock(m_state->mutex);
      m_state->abandoned = true;
    }
    m_state->cv.notify_all();
    m_state->thread.join();
  }
}

void ArtifactCheck::feed(const char* data, std::size_t size) {
  auto& s = *m_state;
  while (size > 0 && !s.done.load(std::memory_order_relaxed)) {
    if (s.filling.capacity() == 0) {
      s.filling = s.fresh_block();
    }
    const auto n = std::min(size, k_block - s.filling.size());
    s.filling.insert(s.filling.end(), data, data + n);
    data += n;
    size -= n;
    if (s.filling.size() == k_block) {
      s.push(std::move(s.filling));
      s.filling = {};
    }
  }
}

void ArtifactCheck::end_input() {
  auto& s = *m_state;
  if (!s.filling.empty()) {
    s.push(std::move(s.filling));
    s.filling = {};
  }
  {
    const std::lock_guard lock(s.mutex);
    s.ended = true;
  }
  s.cv.notify_all();
}

CheckedArtifact ArtifactCheck::finish(const fs::path& tgz) {
  auto& s = *m_state;
  if (!s.ended) {
    end_input();
  }
  s.thread.join();
  if (s.error) {
    std::rethrow_exception(s.error);
  }
  auto& v = *s.result;
  if (!v.pending.empty()) {
    with_context(
        "artifact", [&] { load_pending(tgz, v.pending, s.limits); }, ErrorKind::invalid_input);
  }
  return std::move(v.out);
}

} // namespace mlctl::server
