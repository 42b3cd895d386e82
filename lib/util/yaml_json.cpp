#include "util/yaml_json.hpp"

#include <yaml-cpp/depthguard.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>

namespace mlctl::util {

using nlohmann::json;

namespace {

json plain_scalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") {
    return nullptr;
  }
  if (s == "true" || s == "True" || s == "TRUE") {
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    return false;
  }
  const char* begin = s.data() + (s.front() == '+' ? 1 : 0);
  const char* end = s.data() + s.size();
  std::int64_t i = 0;
  if (auto [p, ec] = std::from_chars(begin, end, i); ec == std::errc() && p == end) {
    return i;
  }
  double d = 0;
  if (auto [p, ec] = std::from_chars(begin, end, d); ec == std::errc() && p == end) {
    return d;
  }
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf") {
    return std::numeric_limits<double>::infinity();
  }
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") {
    return -std::numeric_limits<double>::infinity();
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return s;
}

} // namespace

std::string format_yaml_double(double value) {
  if (std::isnan(value)) {
    return ".nan";
  }
  if (std::isinf(value)) {
    return value > 0 ? ".inf" : "-.inf";
  }
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  std::string s(buf, ec == std::errc() ? end : buf);
  const auto exponent = s.find('e');
  if (s.find('.') == std::string::npos) {
    s.insert(exponent == std::string::npos ? s.size() : exponent, ".0");
  }
  return s;
}

void emit_yaml(YAML::Emitter& out, const json& value) {
  switch (value.type()) {
  case json::value_t::object:
    out << YAML::BeginMap;
    for (const auto& [key, item] : value.items()) {
      out << YAML::Key << key << YAML::Value;
      emit_yaml(out, item);
    }
    out << YAML::EndMap;
    break;
  case json::value_t::array:
    out << YAML::BeginSeq;
    for (const auto& item : value) {
      emit_yaml(out, item);
    }
    out << YAML::EndSeq;
    break;
  case json::value_t::string:
    out << YAML::DoubleQuoted << value.get<std::string>();
    break;
  case json::value_t::null:
    out << YAML::Null;
    break;
  case json::value_t::boolean:
    out << (value.get<bool>() ? "true" : "false");
    break;
  case json::value_t::number_float:
    out << format_yaml_double(value.get<double>());
    break;
  default:
    out << value.dump();
    break;
  }
}

std::string yaml_error(const YAML::Exception& e) {
  const auto* deep = dynamic_cast<const YAML::DeepRecursion*>(&e);
  const std::string what =
      deep != nullptr ? "nested more than " + std::to_string(deep->depth() - 1) + " levels deep"
                      : e.msg;
  if (e.mark.is_null()) {
    return what;
  }
  return "line " + std::to_string(e.mark.line + 1) + ", column " +
         std::to_string(e.mark.column + 1) + ": " + what;
}

json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
  case YAML::NodeType::Map: {
    json obj = json::object();
    for (const auto& kv : node) {
      obj[kv.first.as<std::string>()] = yaml_to_json(kv.second);
    }
    return obj;
  }
  case YAML::NodeType::Sequence: {
    json arr = json::array();
    for (const auto& item : node) {
      arr.push_back(yaml_to_json(item));
    }
    return arr;
  }
  case YAML::NodeType::Scalar:
    // yaml-cpp tags quoted scalars "!" and plain ones "?".
    return node.Tag() == "!" ? json(node.Scalar()) : plain_scalar(node.Scalar());
  default:
    return nullptr;
  }
}

} // namespace mlctl::util
