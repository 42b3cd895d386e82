#pragma once
// Checks of numeric options whose messages read as the rest of mlctl's usage errors:
// "--threads: must be 1..1024, got 0". CLI11's own Range, PositiveNumber and NonNegativeNumber
// print their bounds with std::to_string ("not in range 0.000000 to 1797693134862315708...").
// A value that is not a number of the check's type is refused the same way ("got abc").

#include "util/text.hpp"

#include <CLI/CLI.hpp>
#include <concepts>
#include <string>

namespace mlctl::cli {

namespace detail {

template <typename T> std::string number_text(T v) {
  if constexpr (std::integral<T>) {
    return std::to_string(v);
  } else {
    return util::shortest_number(v);
  }
}

template <typename T, typename Accept>
CLI::Validator number_check(std::string description, std::string expected, Accept accept) {
  return CLI::Validator(
      [expected = std::move(expected), accept](std::string& input) -> std::string {
        T value{};
        const bool ok = CLI::detail::lexical_cast(input, value) && accept(value);
        return ok ? std::string() : "must be " + expected + ", got " + input;
      },
      std::move(description));
}

} // namespace detail

// min..max, both included.
template <typename T> CLI::Validator in_range(T min, T max) {
  const auto bounds = detail::number_text(min) + ".." + detail::number_text(max);
  return detail::number_check<T>(bounds, bounds, [min, max](T v) { return v >= min && v <= max; });
}

// A share strictly between 0 and 1, or from 0 (included) with `zero_allowed`.
inline CLI::Validator fraction(bool zero_allowed) {
  return zero_allowed ? detail::number_check<double>("[0,1)", ">= 0 and < 1",
                                                     [](double v) { return v >= 0 && v < 1; })
                      : detail::number_check<double>("(0,1)", "> 0 and < 1",
                                                     [](double v) { return v > 0 && v < 1; });
}

// A number > 0.
inline CLI::Validator positive() {
  return detail::number_check<double>("POSITIVE", "> 0", [](double v) { return v > 0; });
}

// A number >= 0.
inline CLI::Validator non_negative() {
  return detail::number_check<double>("NONNEGATIVE", ">= 0", [](double v) { return v >= 0; });
}

// Adds to every option of `app` and its subcommands whose type is unsigned a check that
// refuses a negative value: CLI11 2.1 converts "--seed -3" to 18446744073709551613.
inline void refuse_negative_unsigned(CLI::App& app) {
  for (CLI::Option* option : app.get_options()) {
    if (option->get_type_name().starts_with("UINT")) {
      option->check(CLI::Validator(
          [](std::string& input) -> std::string {
            const auto first = input.find_first_not_of(" \t");
            return first != std::string::npos && input[first] == '-'
                       ? "must be a whole number >= 0, got " + input
                       : std::string();
          },
          ""));
    }
  }
  for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    refuse_negative_unsigned(*sub);
  }
}

} // namespace mlctl::cli
