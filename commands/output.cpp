#include "commands/output.hpp"

#include "util/yaml_json.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

namespace mlctl::cli {

OutputFormat Context::format() const {
  if (m_options.output == "json") {
    return OutputFormat::json;
  }
  if (m_options.output == "yaml") {
    return OutputFormat::yaml;
  }
  return OutputFormat::table;
}

namespace {

class ProgressPrinter {
public:
  explicit ProgressPrinter(bool tty) : m_tty(tty) {}

  void operator()(const util::Progress& p) {
    const std::lock_guard lock(m_mutex);
    const auto now = std::chrono::steady_clock::now();
    const bool finished = p.total != 0 && p.done >= p.total;
    const bool new_stage = p.stage != m_stage;
    if (new_stage) {
      if (m_tty && m_bar_open) {
        std::fputc('\n', stderr);
      }
      m_stage = p.stage;
      m_bar_open = false;
      m_last_line = now - std::chrono::hours(1);
    }
    if (m_tty) {
      if (!finished && now - m_last_draw < std::chrono::milliseconds(100) && !new_stage) {
        return;
      }
      m_last_draw = now;
      draw_bar(p);
      m_bar_open = !finished;
      if (finished) {
        std::fputc('\n', stderr);
      }
    } else if (finished || new_stage || now - m_last_line >= std::chrono::seconds(5)) {
      m_last_line = now;
      std::fprintf(stderr, "mlctl: %s: %s%s%s\n", p.stage.c_str(), amount(p).c_str(),
                   p.detail.empty() ? "" : " ", p.detail.c_str());
    }
    std::fflush(stderr);
  }

private:
  static std::string amount(const util::Progress& p) {
    auto fmt = [&](std::uint64_t v) {
      return p.unit == "B" ? format_bytes(static_cast<double>(v)) : std::to_string(v) + (p.unit.empty() ? "" : " " + p.unit);
    };
    if (p.total == 0) {
      return fmt(p.done);
    }
    const double pct = 100.0 * static_cast<double>(p.done) / static_cast<double>(p.total);
    return fmt(p.done) + " / " + fmt(p.total) + " (" + format_fixed(pct, 0) + "%)";
  }

  void draw_bar(const util::Progress& p) {
    constexpr int k_width = 30;
    std::string bar;
    if (p.total != 0) {
      const auto filled = static_cast<int>(k_width * std::min<double>(1.0, static_cast<double>(p.done) / static_cast<double>(p.total)));
      bar = "[" + std::string(static_cast<std::size_t>(filled), '#') + std::string(static_cast<std::size_t>(k_width - filled), '.') + "] ";
    }
    std::fprintf(stderr, "\r\033[K%s %s%s%s%s", p.stage.c_str(), bar.c_str(), amount(p).c_str(),
                 p.detail.empty() ? "" : "  ", p.detail.c_str());
  }

  std::mutex m_mutex;
  bool m_tty;
  bool m_bar_open = false;
  std::string m_stage;
  std::chrono::steady_clock::time_point m_last_draw{};
  std::chrono::steady_clock::time_point m_last_line{};
};

} // namespace

util::ProgressFn Context::progress() const {
  if (m_options.quiet) {
    return [](const util::Progress&) {};
  }
  auto printer = std::make_shared<ProgressPrinter>(::isatty(STDERR_FILENO) != 0);
  return [printer](const util::Progress& p) { (*printer)(p); };
}

util::LogFn Context::log() const {
  if (m_options.quiet) {
    return [](const std::string&) {};
  }
  return [](const std::string& message) { std::fprintf(stderr, "mlctl: %s\n", message.c_str()); };
}

void Context::debug(const std::string& message) const {
  if (m_options.verbose) {
    std::fprintf(stderr, "mlctl: debug: %s\n", message.c_str());
  }
}

std::string to_yaml(const nlohmann::json& value) {
  YAML::Emitter out;
  util::emit_yaml(out, value);
  return std::string(out.c_str()) + "\n";
}

void print_result(const Context& ctx, const nlohmann::json& value, const std::function<void()>& table) {
  switch (ctx.format()) {
  case OutputFormat::json:
    std::cout << value.dump(2) << '\n';
    break;
  case OutputFormat::yaml:
    std::cout << to_yaml(value);
    break;
  case OutputFormat::table:
    table();
    break;
  }
  std::cout.flush();
}

void Table::print() const {
  std::vector<std::size_t> width(m_headers.size());
  for (std::size_t i = 0; i < m_headers.size(); ++i) {
    width[i] = m_headers[i].size();
  }
  for (const auto& row : m_rows) {
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (std::size_t i = 0; i < width.size(); ++i) {
      const std::string cell = i < cells.size() ? cells[i] : "";
      s += cell;
      if (i + 1 < width.size()) {
        s += std::string(width[i] - cell.size() + 2, ' ');
      }
    }
    std::cout << s << '\n';
  };
  line(m_headers);
  for (const auto& row : m_rows) {
    line(row);
  }
}

void print_fields(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::size_t width = 0;
  for (const auto& [k, v] : fields) {
    width = std::max(width, k.size());
  }
  for (const auto& [k, v] : fields) {
    std::cout << k << ':' << std::string(width - k.size() + 1, ' ') << v << '\n';
  }
}

std::string format_bytes(double bytes) {
  static constexpr const char* k_units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  return format_fixed(bytes, u == 0 ? 0 : 1) + " " + k_units[u];
}

std::string format_fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

} // namespace mlctl::cli
