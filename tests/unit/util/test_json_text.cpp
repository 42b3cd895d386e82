#include "util/json_text.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using mlctl::util::read_short_numbers;

namespace {

// The numbers read_short_numbers reads from `text`, or nothing when it declines.
std::vector<double> read(const std::string& text, std::size_t limit = 1000) {
  std::vector<double> out;
  const char* end = read_short_numbers(text.c_str(), out, limit);
  return end == nullptr ? std::vector<double>{} : out;
}

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

} // namespace

TEST_CASE("read_short_numbers reads every decimal of up to 15 digits as strtod does, bit for bit") {
  std::mt19937_64 rng(42);
  std::string text = "[";
  std::vector<std::string> tokens;
  const auto digit = [&rng] { return static_cast<char>('0' + rng() % 10); };
  for (int i = 0; i < 20000; ++i) {
    // 1-15 digits in all, as JSON writes them: an integer part (0, or no leading zero) and
    // perhaps a fraction; a sign now and then.
    const auto digits = 1 + rng() % 15;
    const auto integer = rng() % (digits + 1); // 0: the integer part is a single 0
    std::string token = integer == 0 ? "0" : std::string(1, static_cast<char>('1' + rng() % 9));
    for (std::size_t d = 1; d < integer; ++d) {
      token += digit();
    }
    const auto fraction = digits - std::max<std::size_t>(integer, 1);
    if (fraction > 0) {
      token += '.';
      for (std::size_t d = 0; d < fraction; ++d) {
        token += digit();
      }
    }
    if (rng() % 8 == 0) {
      token = "-" + token;
    }
    tokens.push_back(token);
    text += (i ? (rng() % 2 ? ", " : ",") : "") + token;
  }
  text += "]";
  const auto got = read(text, tokens.size());
  REQUIRE(got.size() == tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    INFO(tokens[i]);
    CHECK(same_bits(got[i], std::strtod(tokens[i].c_str(), nullptr)));
  }
}

TEST_CASE(
    "read_short_numbers: zeros keep their sign, spacing is JSON's, and it stops after the list") {
  const auto zeros = read("[0, -0, 0.0, -0.000]");
  REQUIRE(zeros.size() == 4);
  CHECK(!std::signbit(zeros[0]));
  CHECK(std::signbit(zeros[1]));
  CHECK(!std::signbit(zeros[2]));
  CHECK(std::signbit(zeros[3]));
  CHECK(read("[ \n\t1 ,\r\n 255\t]") == std::vector<double>{1, 255});
  CHECK(read("[123456789012345]") == std::vector<double>{123456789012345.0});
  const std::string text = "[1,2] , [3]";
  std::vector<double> out;
  CHECK(read_short_numbers(text.c_str(), out, 10) == text.c_str() + 5);
  const char* spaced = " \t\r\n x";
  CHECK(mlctl::util::skip_json_space(spaced) == spaced + 5);
}

TEST_CASE(
    "read_short_numbers declines what a general parser must read, and text that is not JSON") {
  for (const char* text : {"[]",
                           "[1,]",
                           "[,1]",
                           "[01]",
                           "[-01]",
                           "[1.]",
                           "[.5]",
                           "[+1]",
                           "[-]",
                           "[1e3]",
                           "[1E3]",
                           "[0.5e-1]",
                           "[1 2]",
                           "[[1]]",
                           "[\"1\"]",
                           "[NaN]",
                           "[Infinity]",
                           "[true]",
                           "[1,2",
                           "[1",
                           "[",
                           "",
                           "1",
                           " [1]",
                           "[1234567890123456]",
                           "[0.000000000000001]",
                           "[12345678901234567890123]",
                           "[0x1]",
                           "[1}"}) {
    INFO(text);
    std::vector<double> out;
    CHECK(read_short_numbers(text, out, 100) == nullptr);
  }
  std::vector<double> out = {7};
  CHECK(read_short_numbers("[1,2,3]", out, 3) == nullptr); // 7 is there already: a fourth value
  out = {7};
  CHECK(read_short_numbers("[1,2]", out, 3) != nullptr);
  CHECK(out == std::vector<double>{7, 1, 2});
}
