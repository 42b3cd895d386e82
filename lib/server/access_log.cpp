#include "server/access_log.hpp"

#include "util/error.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

namespace mlctl::server {

AccessLog::AccessLog(const std::filesystem::path& path) : m_file(stderr), m_owned(false) {
  if (!path.empty()) {
    m_file = std::fopen(path.c_str(), "ae");
    if (m_file == nullptr) {
      throw Error(ErrorKind::io, path.string() + ": cannot open the log file: " + std::strerror(errno));
    }
    m_owned = true;
  }
}

AccessLog::~AccessLog() {
  if (m_owned) {
    std::fclose(m_file);
  }
}

std::string AccessLog::format(const AccessRecord& r) {
  const nlohmann::json j = {{"time", r.time},
                            {"method", r.method},
                            {"path", r.path},
                            {"status", r.status},
                            {"latency_ms", std::round(r.latency_ms * 1000.0) / 1000.0},
                            {"trace_id", r.trace_id},
                            {"remote", r.remote},
                            {"bytes_in", r.bytes_in},
                            {"bytes_out", r.bytes_out}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void AccessLog::write(const AccessRecord& record) {
  auto line = format(record);
  line += '\n';
  const std::lock_guard lock(m_mutex);
  std::fwrite(line.data(), 1, line.size(), m_file);
  std::fflush(m_file);
}

} // namespace mlctl::server
