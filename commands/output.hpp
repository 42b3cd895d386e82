#pragma once
// Shared printing for every command: results go to stdout as a table, JSON or YAML;
// the JSON/YAML shapes are stable contracts (documented in the README).

#include "commands/context.hpp"

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mlctl::cli {

// Prints `value` as JSON or YAML when the output format asks for it; otherwise calls `table`.
void print_result(const Context& ctx, const nlohmann::json& value, const std::function<void()>& table);

// Converts JSON to a YAML document (block style, keys in the JSON's order).
std::string to_yaml(const nlohmann::json& value);

// An aligned plain-text table.
class Table {
public:
  explicit Table(std::vector<std::string> headers) : m_headers(std::move(headers)) {}
  void add(std::vector<std::string> row) { m_rows.push_back(std::move(row)); }
  bool empty() const noexcept { return m_rows.empty(); }
  void print() const;

private:
  std::vector<std::string> m_headers;
  std::vector<std::vector<std::string>> m_rows;
};

// Prints `key: value` lines with the keys aligned.
void print_fields(const std::vector<std::pair<std::string, std::string>>& fields);

// Formats helpers shared by table output.
std::string format_bytes(double bytes);
std::string format_fixed(double value, int decimals);

} // namespace mlctl::cli
