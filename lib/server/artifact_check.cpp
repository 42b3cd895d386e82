#include "server/artifact_check.hpp"

#include "artifact/tar.hpp"
#include "model/card.hpp"
#include "onnx/runtime.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/yaml_json.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <set>
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

// Messages from the loaders name the scratch path; the uploader knows the file by its name
// inside the artifact.
Error as_input_error(const Error& e, const fs::path& path, const std::string& name) {
  std::string what = e.what();
  for (const auto& prefix : {path.string() + ": ", name + ": "}) {
    if (what.rfind(prefix, 0) == 0) {
      what = what.substr(prefix.size());
    }
  }
  return Error(e.kind() == ErrorKind::io ? ErrorKind::io : ErrorKind::invalid_input, name + ": " + what);
}

// A read-only mapping of a whole file: the runtime parses the page cache directly (no copy
// into a fresh heap buffer, whose page faults cost more than the parse on some VMs).
class MappedFile {
public:
  explicit MappedFile(const fs::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      throw Error(ErrorKind::io, path.filename().string() + ": cannot open: " + std::strerror(errno));
    }
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      m_size = static_cast<std::size_t>(st.st_size);
      m_data = ::mmap(nullptr, m_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    }
    const int saved = errno;
    ::close(fd);
    if (m_data == MAP_FAILED) {
      throw Error(ErrorKind::io, path.filename().string() + ": cannot map: " + std::strerror(saved));
    }
  }
  ~MappedFile() {
    if (m_data != MAP_FAILED && m_data != nullptr) {
      ::munmap(m_data, m_size);
    }
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view bytes() const {
    return m_data == nullptr ? std::string_view() : std::string_view(static_cast<const char*>(m_data), m_size);
  }

private:
  void* m_data = nullptr;
  std::size_t m_size = 0;
};

onnx::Model load_onnx(const fs::path& path, const std::string& name) {
  try {
    const MappedFile file(path);
    return onnx::Model::load(file.bytes(), name);
  } catch (const Error& e) {
    throw as_input_error(e, path, name);
  }
}

} // namespace

json yaml_to_json(std::string_view yaml, std::string_view name) {
  try {
    return util::yaml_to_json(YAML::Load(std::string(yaml)));
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::invalid_input, std::string(name) + ": " + e.what());
  }
}

CheckedArtifact check_artifact(const fs::path& tgz, const fs::path& scratch, const ArtifactLimits& limits) {
  return with_context(
      "artifact",
      [&] {
        CheckedArtifact out;
        artifact::UnpackLimits unpack_limits;
        unpack_limits.max_total_bytes = limits.max_unpacked_bytes;
        unpack_limits.max_entries = limits.max_entries;
        try {
          out.files = artifact::unpack_safely(tgz, scratch, unpack_limits);
        } catch (const Error& e) {
          // unpack_safely names the temporary file; the uploader knows it as "artifact".
          std::string what = e.what();
          if (const auto prefix = tgz.string() + ": "; what.rfind(prefix, 0) == 0) {
            what = what.substr(prefix.size());
          }
          throw Error(e.kind() == ErrorKind::io ? ErrorKind::io : ErrorKind::invalid_input, what);
        }
        std::sort(out.files.begin(), out.files.end());
        const auto has = [&](std::string_view f) { return std::binary_search(out.files.begin(), out.files.end(), f); };
        for (const char* required : {"model.yaml", "model.onnx"}) {
          if (!has(required)) {
            throw Error(ErrorKind::invalid_input,
                        "missing " + std::string(required) + " (a model directory holds model.yaml and model.onnx)");
          }
        }
        // The card first: its loader names the field that is wrong.
        try {
          (void)model::load_card(scratch / "model.yaml");
        } catch (const Error& e) {
          throw as_input_error(e, scratch / "model.yaml", "model.yaml");
        }
        out.card = yaml_to_json(util::read_file(scratch / "model.yaml"), "model.yaml");
        const auto model = load_onnx(scratch / "model.onnx", "model.onnx");
        const json spec = out.card.is_object() ? out.card.value("spec", json::object()) : json::object();
        const json contract = spec.is_object() ? spec.value("contract", json::object()) : json::object();
        if (contract.is_object()) {
          check_tensor_names(contract, "inputs", model.inputs());
          check_tensor_names(contract, "outputs", model.outputs());
        }
        if (spec.is_object() && spec.contains("monitoring") && spec["monitoring"].is_object()) {
          const auto& mon = spec["monitoring"];
          if (mon.contains("autoencoder") && mon["autoencoder"].is_string()) {
            const auto ae = mon["autoencoder"].get<std::string>();
            if (!has(ae)) {
              throw Error(ErrorKind::invalid_input,
                          "model.yaml: spec.monitoring.autoencoder: '" + ae + "' is not in the artifact");
            }
            (void)load_onnx(scratch / ae, ae);
          }
        }
        return out;
      },
      ErrorKind::invalid_input);
}

} // namespace mlctl::server
