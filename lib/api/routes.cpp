#include "api/routes.hpp"

namespace mlctl::api::routes {

namespace {
std::string join(std::string_view a, std::string_view b) {
  std::string out(a);
  out += '/';
  out += b;
  return out;
}
} // namespace

std::string models() { return std::string(k_api_prefix) + "/models"; }
std::string model(std::string_view name) { return join(models(), url_encode(name)); }
std::string versions(std::string_view name) { return model(name) + "/versions"; }
std::string version(std::string_view name, std::string_view selector) {
  return join(versions(name), url_encode(selector));
}
std::string artifact(std::string_view name, std::string_view selector) {
  return version(name, selector) + "/artifact";
}
std::string tags(std::string_view name, std::string_view selector) { return version(name, selector) + "/tags"; }
std::string aliases(std::string_view name) { return model(name) + "/aliases"; }
std::string alias(std::string_view name, std::string_view alias) { return join(aliases(name), url_encode(alias)); }
std::string events() { return std::string(k_api_prefix) + "/events"; }
std::string gc() { return std::string(k_api_prefix) + "/gc"; }

std::string url_encode(std::string_view text) {
  static constexpr char k_hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += k_hex[c >> 4];
      out += k_hex[c & 15];
    }
  }
  return out;
}

std::string query(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (v.empty()) {
      continue;
    }
    out += out.empty() ? '?' : '&';
    out += url_encode(k);
    out += '=';
    out += url_encode(v);
  }
  return out;
}

} // namespace mlctl::api::routes
